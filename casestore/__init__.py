"""The case store: SQL models and services for customers, cases, items, documents, notes, the
audit log and users, with Alembic migrations; SQLite (embedded) and PostgreSQL (production).

Services are keyword-only functions taking ``session`` first; they may flush but never commit.
Errors derive from ``casestore.errors.CaseStoreError``.  casestore imports neither ingest,
classify nor api.
"""
