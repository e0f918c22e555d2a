"""A PostgreSQL wire-protocol endpoint over the query engine, so BI tools connect to the lake."""
