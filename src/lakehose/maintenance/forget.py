"""``lakehose forget``: delete every row of a user (or of any ``COLUMN=VALUE``) so its bytes are gone.

Which rows match, table by table:

* a table with a top-level column of that name: rows whose column equals the
  value, typed by that table's column (``level=3`` is the integer 3). The files
  whose column bounds may hold the value are read by DuckDB;
* a stream table without the column but keeping unknown fields as JSON in
  ``_extra``: rows whose ``_extra`` has that field with that value;
* ``events._rejected``: rows whose raw ``payload`` holds an event with that
  field and value. The payload is parsed — one JSON document (an event, an
  array of events, ``{"events": [...]}``) or NDJSON lines — and only top-level
  fields of events count, so ``u1`` does not match ``u10`` nor a ``friend_id``.
  A payload that is not JSON (a request refused whole, or one cut at 64 KiB)
  matches when it holds ``"COLUMN": VALUE`` as JSON tokens.

The matching rows are removed with ``rewrite.remove_rows`` (copy on write:
only files holding a match are rewritten, one commit per table, appends by
delivery meanwhile kept). Then the bytes are made physically gone: the tables
the run changed have every snapshot but the current one expired, and the
files only those snapshots referenced are deleted (``expire``): the replaced
Parquet files, and the manifests that listed them with column bounds that may
hold the value.

A second run finds nothing, removes nothing and says so. What forget cannot
reach: events of the user acknowledged but not yet delivered (they land
after the run: run it again once delivery has caught up), and the log's own
copy of delivered events until the log frees it (a WAL segment once fully
delivered and full; Kafka after its retention).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import duckdb
from pyiceberg.expressions import EqualTo, Reference
from pyiceberg.expressions.literals import literal
from pyiceberg.manifest import DataFile
from pyiceberg.table import Table
from pyiceberg.types import (
    BooleanType,
    DoubleType,
    IcebergType,
    LongType,
    NestedField,
    StringType,
    TimestamptzType,
)

from lakehose.config import Settings
from lakehose.errors import NotFound
from lakehose.lake.catalog import open_catalog
from lakehose.lake.rejected import REJECTED_TABLE
from lakehose.maintenance.expire import expire_snapshots
from lakehose.maintenance.jobs import Outcome, load_tables, run_on_tables, table_name
from lakehose.maintenance.rewrite import JOB_PROPERTY, Rows, live_files, remove_rows, replanning
from lakehose.query.engine import QueryEngine
from lakehose.registry.schema import EXTRA_COLUMN

JOB = "forget"
Value = str | int | float | bool | dt.datetime
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _boolean(text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise ValueError(text)
    return text.lower() == "true"


def _moment(text: str) -> dt.datetime:
    """ISO 8601, naive meaning UTC, as the collector reads ``ts``."""
    moment = dt.datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


# the column types lakehose writes, and how a command-line value becomes one
_PARSERS: dict[type[IcebergType], Callable[[str], Value]] = {
    StringType: str, LongType: int, DoubleType: float, BooleanType: _boolean, TimestamptzType: _moment}


@dataclass(frozen=True)
class Condition:
    """``column = value``, the value still as typed on the command line."""

    column: str
    text: str

    @classmethod
    def parse(cls, where: str) -> Condition:
        column, equals, text = where.partition("=")
        column = column.strip()
        if not equals or not _NAME.fullmatch(column):
            raise ValueError(f"--where wants COLUMN=VALUE with a top-level column name, got {where!r}")
        return cls(column, text)

    def typed(self, kind: IcebergType, table: str) -> Value:
        """The value as the column's type, or a ValueError naming both."""
        parser = _PARSERS.get(type(kind))
        if parser is None:
            raise ValueError(f"{table}.{self.column} is a {kind} column; forget matches columns of "
                             "strings, numbers, booleans and date-times")
        try:
            return parser(self.text if parser is str else self.text.strip())
        except ValueError:
            raise ValueError(f"{table}.{self.column} is a {kind} column and {self.text!r} "
                             f"is not a {kind}") from None


def _json_equals(found: object, target: Value) -> bool:
    if isinstance(target, bool) or isinstance(found, bool):
        return found is target
    if isinstance(target, dt.datetime):
        try:
            if isinstance(found, (int, float)):  # epoch milliseconds
                return dt.datetime.fromtimestamp(found / 1000, dt.timezone.utc) == target
            return isinstance(found, str) and _moment(found) == target
        except (ValueError, OverflowError, OSError):  # not a date-time, or out of range
            return False
    if isinstance(target, (int, float)):
        return isinstance(found, (int, float)) and found == target
    return found == target


class JsonMatcher:
    """Whether a JSON text (``payload``, ``_extra``) holds an event with ``column`` equal to a value."""

    def __init__(self, column: str, targets: Sequence[Value]) -> None:
        self.column = column
        self.targets = targets
        tokens = [json.dumps(t, ensure_ascii=False) for t in targets if not isinstance(t, dt.datetime)]
        # for text that is not JSON: the pair as JSON tokens, the value ending where a token ends
        self.pair = re.compile(re.escape(json.dumps(column)) + r"\s*:\s*(?:"
                               + "|".join(map(re.escape, tokens)) + r")(?=\s*[,}\]]|\s*$)") \
            if tokens else None

    def _event_matches(self, value: object) -> bool:
        if isinstance(value, list):
            return any(self._event_matches(v) for v in value)
        if not isinstance(value, dict):
            return False
        if self.column in value and any(_json_equals(value[self.column], t) for t in self.targets):
            return True
        events = value.get("events")
        return isinstance(events, list) and any(self._event_matches(v) for v in events)

    def matches(self, text: str) -> bool:
        try:
            return self._event_matches(json.loads(text))
        except ValueError:
            pass
        try:
            return any(self._event_matches(json.loads(line)) for line in text.splitlines() if line.strip())
        except ValueError:
            return self.pair is not None and self.pair.search(text) is not None


def _column(table: Table, name: str) -> NestedField | None:
    return next((field for field in table.schema().fields if field.name == name), None)


def _holding(files: list[DataFile], column: NestedField) -> list[DataFile]:
    """The files that have the column: files written before it was added do not (their
    metrics say so; a file without metrics is kept)."""
    return [f for f in files if not f.value_counts or column.field_id in f.value_counts]


@dataclass(frozen=True)
class Forgotten:
    """What a forget did to one table."""

    rows: int  # rows removed
    snapshots: int = 0  # snapshots expired after
    files_deleted: int = 0  # files only those snapshots referenced


def _unfinished(table: Table) -> bool:
    """A forget committed here but did not get to expire what came before it (it was stopped)."""
    return any(s.summary is not None and s.summary[JOB_PROPERTY] == JOB
               and s.parent_snapshot_id is not None
               and table.metadata.snapshot_by_id(s.parent_snapshot_id) is not None
               for s in table.snapshots())


def forget_in_table(con: duckdb.DuckDBPyConnection, table: Table, condition: Condition,
                    typed: Value | None, matcher: JsonMatcher) -> int:
    """Remove the matching rows of one table's current snapshot: by its column when ``typed``
    is given, else by the JSON of ``payload`` (``_rejected``) or ``_extra``. The rows removed."""
    if typed is not None:
        column = _column(table, condition.column)
        bound = typed.isoformat() if isinstance(typed, dt.datetime) else typed
        candidates = live_files(table, EqualTo(term=Reference(condition.column), value=literal(bound)))
    else:
        column = _column(table, "payload" if table.name()[-1] == REJECTED_TABLE else EXTRA_COLUMN)
        candidates = live_files(table)
    if column is None:
        return 0
    rows = Rows(con, _holding(candidates, column))
    if typed is not None:
        found = rows.fetch(f'SELECT filename, file_row_number FROM rows WHERE "{column.name}" = $value',
                           {"value": typed})
    else:
        found = [row for row in rows.fetch(f'SELECT filename, file_row_number, "{column.name}" '
                                           f'FROM rows WHERE "{column.name}" IS NOT NULL')
                 if matcher.matches(row[2])]
    return remove_rows(table, rows.positions(found), JOB)


def forget(settings: Settings, where: str) -> list[Outcome[Forgotten]]:
    """Remove every row matching ``where`` from every table, then delete the files that held them.

    One outcome per table that could hold a match: those with the column, with
    ``_extra``, and ``_rejected``.
    """
    condition = Condition.parse(where)
    tables = load_tables(open_catalog(settings), settings, None)
    typed: dict[str, Value] = {}
    for table in tables:
        column = _column(table, condition.column)
        if column is not None and table.name()[-1] != REJECTED_TABLE:  # its own columns are no event's
            typed[table_name(table)] = condition.typed(column.field_type, table_name(table))
    if not typed:
        raise NotFound(f"no table has a column {condition.column!r}")
    searched = set(typed) | {table_name(t) for t in tables
                             if t.name()[-1] == REJECTED_TABLE or _column(t, EXTRA_COLUMN)}
    matcher = JsonMatcher(condition.column, list(typed.values()))
    con = QueryEngine(settings).con

    def work(table: Table) -> Forgotten:
        name = table_name(table)
        if name not in searched:
            return Forgotten(0)
        rows = replanning(table, functools.partial(forget_in_table, con, table, condition,
                                                   typed.get(name), matcher))
        if not rows and not _unfinished(table):
            return Forgotten(0)
        # every snapshot but the current one: none may still reach the replaced files
        snapshots, files, _ = expire_snapshots(table, dt.timedelta(0), keep=1, now=time.time())
        return Forgotten(rows, snapshots, files)

    return [o for o in run_on_tables(JOB, settings, None, work) if o.table in searched]
