"""Signing in to the workbench: passwords (argon2), server-side sessions, and login throttling.

Tables are created by migration 0006.  Bearer tokens for the API stay in ``casestore.users``.
"""
