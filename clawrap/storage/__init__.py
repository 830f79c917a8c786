"""Storage: the database interface the stores share, its two engines (SQLite, the
default, and PostgreSQL for several instances) and versioned schema migrations.
Knows nothing of sessions, responses or accounting: they bring their own queries.
"""
