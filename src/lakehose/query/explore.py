"""Explore: a chart question (stream, metric, group-by, grain, range, filters) as one SQL query.

Why it is built here and not in the browser: nothing a user picks or types ever
becomes SQL text on its own. Field names are looked up in the stream's schema
and quoted; every value is parsed into the field's type and bound as a
parameter. The same query is also rendered with those parsed values written as
literals (strings quoted, numbers and times printed from their parsed form);
that text is what the UI shows and opens in the SQL editor, and running it
gives the same rows as the bound form (tests check both).

Times: the range and the grain apply to ``ts``, the event time the table is
partitioned by. A relative range (``24h``) is written as ``now() - INTERVAL``
so a saved chart keeps moving with time; an absolute one (``START/END``, ISO
8601) is bound.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import msgspec

from lakehose.registry.schema import Field, StreamSchema

Metric = Literal["count", "unique", "sum", "avg", "min", "max", "p50", "p90", "p95", "p99"]
Grain = Literal["none", "minute", "hour", "day", "week", "month"]
Op = Literal["=", "!=", "<", "<=", ">", ">=", "in", "not_in", "contains", "is_null", "not_null"]
Scalar = str | int | float | bool

RANGES = {"15m": "15 minutes", "1h": "1 hour", "6h": "6 hours", "24h": "24 hours",
          "7d": "7 days", "30d": "30 days", "90d": "90 days", "1y": "1 year"}
TIME_FIELD = "ts"
MAX_GROUPS, MAX_FILTERS, MAX_VALUES, MAX_LIMIT = 3, 20, 1000, 100_000
_NUMERIC = ("integer", "number")
_QUANTILES = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}
_COMPARE = {"=": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


class Filter(msgspec.Struct, forbid_unknown_fields=True):
    field: str
    op: Op
    value: Scalar | list[Scalar] | None = None


class ExploreSpec(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """What a chart asks; stored as it is in saved charts and in Explore's URL."""

    stream: str
    metric: Metric = "count"
    field: str | None = None  # what the metric is of; unique counts user_id unless told
    group_by: list[str] = []
    grain: Grain = "none"
    range: str = "24h"  # a key of RANGES, "all", or "START/END" (ISO 8601; either side may be empty)
    filters: list[Filter] = []
    limit: int = 1000


@dataclass(frozen=True)
class Column:
    """A field of a stream's table: its dotted path and kind (an array's ``items`` kind too)."""

    path: str
    kind: str
    enum: tuple[Scalar, ...] | None = None
    items: str | None = None


@dataclass(frozen=True)
class Built:
    sql: str  # with ? placeholders, run with params
    params: list[object]
    text: str  # the same query with the values as literals: shown, and runnable as it is


def columns(schema: StreamSchema) -> dict[str, Column]:
    """Every field at any depth of objects, by path, the envelope first: arrays too, so a
    person sees all a stream holds; a chart refuses them (``_column``)."""

    def walk(fields: Sequence[Field], prefix: str) -> Iterator[Column]:
        for f in fields:
            if f.kind == "object":
                yield from walk(f.properties, f"{prefix}{f.name}.")
            else:
                yield Column(prefix + f.name, f.kind, f.enum, f.items.kind if f.items else None)

    envelope = [Column("event_id", "string"), Column("ts", "datetime"), Column("received_at", "datetime")]
    return {c.path: c for c in [*envelope, *walk(schema.fields, "")]}


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def literal(value: object) -> str:
    """A parsed value as DuckDB literal text (only values ``_coerce`` produced reach here)."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, dt.datetime):
        return f"TIMESTAMPTZ '{value.isoformat(sep=' ')}'"
    assert isinstance(value, str)
    return "'" + value.replace("'", "''") + "'"


def _expression(path: str) -> str:
    """A column, or a field inside struct columns (bracket access: never read as a table name)."""
    head, *rest = path.split(".")
    return _quote(head) + "".join(f"[{literal(part)}]" for part in rest)


def _timestamp(text: str, what: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{what}: {text!r} is not an ISO 8601 date-time") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.timezone.utc)


def _coerce(value: Scalar, column: Column, what: str) -> Scalar | dt.datetime:
    """``value`` as the column's type; strings typed into a form are parsed, nothing is guessed."""
    kind = column.kind
    try:
        if kind == "string" and isinstance(value, str):
            if "\x00" in value:
                raise ValueError("NUL characters are not allowed")
            return value
        if kind == "boolean":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.strip().lower() in ("true", "false"):
                return value.strip().lower() == "true"
        if kind == "integer" and not isinstance(value, bool):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            if isinstance(value, (int, str)):
                return int(value)
        if kind == "number" and not isinstance(value, bool) and isinstance(value, (int, float, str)):
            number = float(value)
            if not math.isfinite(number):
                raise ValueError("must be finite")
            return number
        if kind == "datetime" and isinstance(value, str):
            return _timestamp(value, what)
    except ValueError as exc:
        raise ValueError(f"{what}: {value!r} is not a valid {kind} ({exc})") from None
    raise ValueError(f"{what}: {value!r} is not a valid {kind}")


class _Query:
    """SQL text built twice at once: with placeholders, and with literals."""

    def __init__(self) -> None:
        self.bound: list[str] = []
        self.shown: list[str] = []
        self.params: list[object] = []

    def sql(self, text: str) -> None:
        self.bound.append(text)
        self.shown.append(text)

    def value(self, value: object) -> None:
        self.bound.append("?")
        self.shown.append(literal(value))
        self.params.append(value)

    def values(self, values: Sequence[object]) -> None:
        for n, value in enumerate(values):
            self.sql(", " if n else "")
            self.value(value)

    def join(self, parts: Sequence[_Query], separator: str) -> None:
        for n, part in enumerate(parts):
            self.sql(separator if n else "")
            self.bound += part.bound
            self.shown += part.shown
            self.params += part.params

    def built(self) -> Built:
        return Built("".join(self.bound), self.params, "".join(self.shown))


def _column(known: dict[str, Column], path: str, what: str) -> Column:
    """The scalar field at ``path``: an array is no metric, group or filter value."""
    column = known.get(path)
    if column is None or column.kind == "array":
        scalars = ", ".join(sorted(c.path for c in known.values() if c.kind != "array"))
        problem = f"{path!r} is an array" if column else f"the stream has no field {path!r}"
        raise ValueError(f"{what}: {problem} (scalar fields: {scalars})")
    return column


def value_label(spec: ExploreSpec) -> str:
    """The name of the metric's column, e.g. ``count`` or ``p90 duration_ms``."""
    if spec.metric == "count":
        return "count"
    return f"{spec.metric} {spec.field or 'user_id'}"


def _metric(spec: ExploreSpec, known: dict[str, Column]) -> str:
    if spec.metric == "count":
        if spec.field is not None:
            raise ValueError("field: count counts events; leave the field out")
        return "count(*)"
    column = _column(known, spec.field or "user_id", f"field of {spec.metric}")
    expression = _expression(column.path)
    if spec.metric == "unique":
        return f"count(DISTINCT {expression})"
    allowed = _NUMERIC + (("datetime",) if spec.metric in ("min", "max") else ())
    if column.kind not in allowed:
        raise ValueError(f"field: {spec.metric} needs a numeric field; {column.path!r} is {column.kind}")
    if spec.metric in _QUANTILES:
        return f"quantile_cont({expression}, {_QUANTILES[spec.metric]})"
    return f"{spec.metric}({expression})"


def _range(spec: ExploreSpec) -> list[_Query]:
    """The time range's conditions: none for ``all``, one or two otherwise."""
    time = _quote(TIME_FIELD)
    if spec.range == "all":
        return []
    query = _Query()
    if spec.range in RANGES:
        query.sql(f"{time} >= now() - INTERVAL '{RANGES[spec.range]}'")
        return [query]
    start, slash, end = (part.strip() for part in spec.range.partition("/"))
    if not slash or not (start or end):
        raise ValueError(f"range: {spec.range!r} is not one of {', '.join(RANGES)}, all, or START/END")
    bounds = []
    for op, text, what in ((">=", start, "range start"), ("<", end, "range end")):
        if text:
            bound = _Query()
            bound.sql(f"{time} {op} ")
            bound.value(_timestamp(text, what))
            bounds.append(bound)
    return bounds


def check_range(range_: str) -> None:
    """Raise ValueError unless ``range_`` is a range a spec may have (a dashboard's override)."""
    _range(ExploreSpec(stream="", range=range_))


def _filter(f: Filter, known: dict[str, Column], n: int) -> _Query:
    what = f"filter {n + 1}"
    query = _Query()
    column = _column(known, f.field, what)
    expression = _expression(column.path)
    if f.op in ("is_null", "not_null"):
        query.sql(f"{expression} IS {'NOT ' if f.op == 'not_null' else ''}NULL")
        return query
    if f.value is None:
        raise ValueError(f"{what}: {f.op} needs a value")
    if f.op in ("in", "not_in"):
        values = f.value if isinstance(f.value, list) else [f.value]
        if not 0 < len(values) <= MAX_VALUES:
            raise ValueError(f"{what}: {f.op} takes 1 to {MAX_VALUES} values")
        query.sql(f"{expression} {'NOT IN' if f.op == 'not_in' else 'IN'} (")
        query.values([_coerce(v, column, what) for v in values])
        query.sql(")")
        return query
    if isinstance(f.value, list):
        raise ValueError(f"{what}: {f.op} takes one value, not a list")
    if f.op == "contains":
        if column.kind != "string":
            raise ValueError(f"{what}: contains works on text; {column.path!r} is {column.kind}")
        query.sql(f"contains({expression}, ")
        query.value(_coerce(f.value, column, what))
        query.sql(")")
        return query
    if column.kind == "boolean" and f.op not in ("=", "!="):
        raise ValueError(f"{what}: a boolean can only be = or !=")
    query.sql(f"{expression} {_COMPARE[f.op]} ")
    query.value(_coerce(f.value, column, what))
    return query


def build(spec: ExploreSpec, schema: StreamSchema, namespace: str) -> Built:
    """The query for ``spec`` over ``namespace.stream``; raises ValueError naming what is wrong."""
    known = columns(schema)
    if len(spec.group_by) > MAX_GROUPS:
        raise ValueError(f"group_by: at most {MAX_GROUPS} fields")
    if len(spec.filters) > MAX_FILTERS:
        raise ValueError(f"filters: at most {MAX_FILTERS}")
    if not 0 < spec.limit <= MAX_LIMIT:
        raise ValueError(f"limit: between 1 and {MAX_LIMIT}")
    groups = [_expression(_column(known, path, "group_by").path) for path in spec.group_by]
    select = [f"date_trunc('{spec.grain}', {_quote(TIME_FIELD)}) AS {_quote('time')}"] \
        if spec.grain != "none" else []
    select += [f"{g} AS {_quote(path)}" if "." in path else g for g, path in zip(groups, spec.group_by)]
    select.append(f"{_metric(spec, known)} AS {_quote(value_label(spec))}")

    query = _Query()
    query.sql(f"SELECT {', '.join(select)}\nFROM {_quote(namespace)}.{_quote(spec.stream)}")
    conditions = _range(spec) + [_filter(f, known, n) for n, f in enumerate(spec.filters)]
    if conditions:
        query.sql("\nWHERE ")
        query.join(conditions, "\n  AND ")
    keys = len(select) - 1
    if keys:
        query.sql("\nGROUP BY ALL\nORDER BY ")
        if spec.grain != "none":  # a time series: in time order
            query.sql(", ".join(str(i) for i in range(1, keys + 1)))
        else:  # categories: biggest first, ties in a fixed order
            query.sql(", ".join([f"{keys + 1} DESC NULLS LAST"] + [str(i) for i in range(1, keys + 1)]))
    query.sql(f"\nLIMIT {spec.limit}")
    return query.built()
