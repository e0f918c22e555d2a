"""Creating and changing streams: the registry row and the Iceberg table move together.

The table is changed first, then the registry: collectors accept events of a
new version only once the registry shows it, and by then the table already
has the new columns, so delivery never sees a field its table lacks (it also
re-reads the registry when a batch does not fit the table).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lakehose.config import Settings
from lakehose.errors import IncompatibleSchema
from lakehose.lake.catalog import ensure_table, evolve_table, open_catalog
from lakehose.lake.rejected import ensure_rejected_table
from lakehose.registry.compat import incompatibilities
from lakehose.registry.schema import parse_schema
from lakehose.registry.store import Registry, Stream


def create_stream(settings: Settings, name: str, document: Any,
                  hints: Mapping[str, Any] | None = None) -> Stream:
    stream = Registry(settings.catalog_uri).create_stream(name, document, hints)
    catalog = open_catalog(settings)
    ensure_table(catalog, settings, stream)
    ensure_rejected_table(catalog, settings)
    return stream


def update_stream(settings: Settings, name: str, document: Any) -> tuple[Stream, Stream]:
    """Check ``document`` against the current version, evolve the table, record the version."""
    registry = Registry(settings.catalog_uri)
    current = registry.get_stream(name)
    proposed = parse_schema(document)
    problems = incompatibilities(current.schema, proposed)
    if problems:
        raise IncompatibleSchema(name, problems)
    if proposed.document == current.schema.document:
        return current, current
    evolve_table(open_catalog(settings), settings, name, proposed)
    return current, registry.add_version(current, document)
