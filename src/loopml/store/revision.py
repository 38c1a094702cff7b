"""The schema revision this code reads and writes (kept apart so reading it is free)."""

#: The newest migration; a test checks it against Alembic's script directory.
SCHEMA_HEAD = "0013"
