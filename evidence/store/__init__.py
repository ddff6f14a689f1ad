"""The store: the ORM models, the engine and sessions, the Alembic migrations and the bulk inserter.
Below every service: nothing here imports `evidence.records`, the importer, the formats or Crossref."""
