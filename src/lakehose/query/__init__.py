"""SQL over the lake: a read-only DuckDB engine, its HTTP API and the CLI."""
