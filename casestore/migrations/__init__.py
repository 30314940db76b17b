"""Alembic migrations of the case store (a package so that env.py is installed with it)."""
