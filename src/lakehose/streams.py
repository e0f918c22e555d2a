"""Creating and changing streams: the registry row and the Iceberg table move together.

The table is changed first, then the registry: collectors accept events of a
new version only once the registry shows it, and by then the table already
has the new columns, so delivery never sees a field its table lacks (it also
re-reads the registry when a batch does not fit the table).

Both paths enforce the ``[registry]`` limits: how many streams may exist, how
many columns a schema may have and how deeply it may nest. An update may keep
a schema that is over a limit lowered since it was made, but not grow it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pyiceberg.exceptions import NoSuchTableError

from lakehose.config import Settings
from lakehose.errors import IncompatibleSchema, LimitReached, NotFound, SchemaError
from lakehose.lake.catalog import ensure_table, evolve_table, open_catalog, table_identifier
from lakehose.lake.rejected import ensure_rejected_table
from lakehose.log import REJECTED_TOPIC, open_log
from lakehose.registry.compat import incompatibilities
from lakehose.registry.infer import infer_schema, with_new_fields
from lakehose.registry.schema import StreamSchema, count_columns, deepest_field, parse_schema
from lakehose.registry.store import Registry, Stream


def check_schema_limits(settings: Settings, schema: StreamSchema,
                        current: StreamSchema | None = None) -> None:
    """Raise LimitReached if ``schema`` has too many columns or nests too deeply.

    With ``current`` (an update), a measure already over its limit may stay as it is.
    """
    limits = settings.registry
    breaches: list[tuple[str, str]] = []
    columns = count_columns(schema)
    if columns > limits.max_columns and (current is None or columns > count_columns(current)):
        breaches.append(("max_columns", f"$: the schema has {columns} columns (fields at every depth), "
                                        f"over the limit of {limits.max_columns}"))
    depth, path = deepest_field(schema)
    if depth > limits.max_depth and (current is None or depth > deepest_field(current)[0]):
        breaches.append(("max_depth", f"{path}: nested {depth} levels deep (objects and arrays), "
                                      f"over the limit of {limits.max_depth}"))
    if breaches:
        raise LimitReached(breaches)


def create_stream(settings: Settings, name: str, document: Any,
                  hints: Mapping[str, Any] | None = None, unknown_fields: str = "reject") -> Stream:
    check_schema_limits(settings, parse_schema(document))
    # the stream's topic first: if the log cannot take it, nothing is registered
    open_log(settings.log_uri, options=settings.log).ensure_topics([name, REJECTED_TOPIC])
    stream = Registry(settings.catalog_uri).create_stream(
        name, document, hints, max_streams=settings.registry.max_streams,
        unknown_fields=unknown_fields)
    catalog = open_catalog(settings)
    ensure_table(catalog, settings, stream)
    ensure_rejected_table(catalog, settings)
    return stream


def delete_stream(settings: Settings, name: str) -> None:
    """Drop the stream: registry row first (collectors then refuse its events), its table, its log.

    A delete that stops half-way is finished by running it again. Its rows in
    ``events._rejected`` stay: they are evidence of what was sent.
    """
    registered = table = True
    try:
        Registry(settings.catalog_uri).delete_stream(name)
    except NotFound:  # gone already, or an earlier delete stopped half-way: finish it
        registered = False
    try:
        open_catalog(settings).purge_table(table_identifier(settings, name))
    except NoSuchTableError:
        table = False
    log = open_log(settings.log_uri, options=settings.log)
    try:
        log.drop_stream(name)
    finally:
        log.close()
    if not registered and not table:
        raise NotFound(f"no stream named {name!r}")


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
    check_schema_limits(settings, proposed, current.schema)
    evolve_table(open_catalog(settings), settings, name, proposed, current.unknown_fields == "keep")
    return current, registry.add_version(current, document)


def auto_create_stream(settings: Settings, name: str, events: list[Any]) -> Stream:
    """A new stream whose schema is inferred from its first events (every field optional)."""
    document, _ = infer_schema(e for e in events if isinstance(e, dict))
    return create_stream(settings, name, document,
                         unknown_fields=settings.registry.auto_create_unknown_fields)


def evolve_stream(settings: Settings, name: str, events: list[Any]) -> Stream:
    """Add, as optional columns, the fields these events carry and the stream lacks."""
    current = Registry(settings.catalog_uri).get_stream(name)
    document, problems = with_new_fields(current.schema.document,
                                         [e for e in events if isinstance(e, dict)])
    if document == current.schema.document:
        raise SchemaError(problems or ["no field to add"])
    return update_stream(settings, name, document)[1]


def set_unknown_fields(settings: Settings, name: str, policy: str) -> None:
    """Change the policy; ``keep`` first gives the table its ``_extra`` column."""
    registry = Registry(settings.catalog_uri)
    current = registry.get_stream(name)
    if policy == "keep":
        evolve_table(open_catalog(settings), settings, name, current.schema, extra_column=True)
    registry.set_unknown_fields(name, policy)
