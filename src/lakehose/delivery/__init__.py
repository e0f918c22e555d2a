"""Delivery: log → Arrow → Parquet → Iceberg commit carrying the consumed log offsets."""
