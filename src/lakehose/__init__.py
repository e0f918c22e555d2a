"""lakehose: a self-hosted event-data pipeline (HTTP → durable log → Iceberg → SQL)."""

__version__ = "0.1.0"
