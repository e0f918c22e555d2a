"""Streams, their schemas and write keys, kept in the catalog database."""
