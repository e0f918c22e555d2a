"""Iceberg tables through a pyiceberg SQL catalog, over local files or object storage."""
