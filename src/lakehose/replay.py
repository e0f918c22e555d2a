"""``lakehose rejected replay``: validate rejected events again, land those that now pass.

Typical use: events were rejected for a field the schema lacked; the schema is
updated; the rejected rows are replayed. Each pass is exactly once:

1. the rows that now validate are appended to the stream's table in one commit
   that also records, as table property ``lakehose.replay.<batch>``, the
   rejection ids it carries;
2. the rejected rows are rewritten in one commit: replayed ones get
   ``replayed_at``, the others their new reason;
3. the batch property is removed.

A crash after 1 leaves the property behind; the next replay finds it, marks
those rows as replayed without appending them again, and removes it. Event ids
are the client's, else the rejection id, so a replayed event has a stable id.

Rows that hold no event are skipped, left as they are and counted by reason:
requests refused as a whole (their payload is the start of a body that was not
JSON, empty, too large, ...) and events whose stored payload was cut short.
They are never parsed as events, so one bad request cannot block a replay.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import pyarrow as pa
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.expressions import And, BooleanExpression, EqualTo, GreaterThanOrEqual, IsNull, Reference
from pyiceberg.expressions.literals import literal
from pyiceberg.table import Table

from lakehose.collector.rejects import WHOLE_REQUEST_REASONS, message
from lakehose.collector.validate import StreamValidator
from lakehose.config import Settings
from lakehose.delivery.convert import Converter
from lakehose.lake.catalog import open_catalog, table_identifier
from lakehose.lake.rejected import ensure_rejected_table
from lakehose.log import Record
from lakehose.registry.store import Registry

BATCH_PROPERTY = "lakehose.replay."
RETRIES = 5
_JSON = msgspec.json.Decoder(msgspec.Raw)


@dataclass(frozen=True)
class ReplayResult:
    replayed: int
    still_rejected: dict[str, int]
    recovered: int
    skipped: dict[str, int]  # rows that hold no event, by reason


def _holds_event(reason: str, payload: str | None) -> bool:
    """Whether a rejected row's payload is one whole event (a whole-request refusal is not)."""
    if reason in WHOLE_REQUEST_REASONS or payload is None:
        return False
    try:
        _JSON.decode(payload)
    except msgspec.DecodeError:  # cut at the payload cap when it was recorded
        return False
    return True


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _ids_filter(ids: Sequence[str]) -> str:
    """A row filter (pyiceberg's expression syntax) selecting these rejection ids."""
    return f"rejection_id IN ({', '.join(_quote(i) for i in sorted(set(ids)))})"


def _retry(action: Any, *tables: Table) -> Any:
    for attempt in range(RETRIES):
        try:
            return action()
        except CommitFailedException:
            if attempt == RETRIES - 1:
                raise
            for table in tables:
                table.refresh()
    return None


def _mark_replayed(rejected: Table, ids: Sequence[str], when: dt.datetime) -> None:
    """Set ``replayed_at`` on the rows with these rejection ids (copy on write, one commit)."""
    if not ids:
        return
    rows = rejected.scan(row_filter=f"{_ids_filter(ids)} AND replayed_at IS NULL").to_arrow()
    if rows.num_rows == 0:
        return
    rows = rows.set_column(rows.schema.get_field_index("replayed_at"), "replayed_at",
                           pa.array([when] * rows.num_rows, pa.timestamp("us", tz="UTC")))
    rejected.overwrite(rows, overwrite_filter=_ids_filter(rows.column("rejection_id").to_pylist()))


def _recover(table: Table, rejected: Table, now: dt.datetime) -> int:
    """Finish batches a crashed replay appended but did not mark."""
    recovered = 0
    for key, value in list(table.properties.items()):
        if key.startswith(BATCH_PROPERTY):
            ids = json.loads(value)
            _retry(lambda: _mark_replayed(rejected, ids, now), rejected)
            _retry(lambda: table.transaction().remove_properties(key).commit_transaction(), table)
            recovered += len(ids)
    return recovered


def replay(settings: Settings, stream: str, since: dt.datetime | None = None,
           reason: str | None = None) -> ReplayResult:
    current = Registry(settings.catalog_uri).get_stream(stream)
    catalog = open_catalog(settings)
    rejected = ensure_rejected_table(catalog, settings)
    table = catalog.load_table(table_identifier(settings, stream))
    now = dt.datetime.now(dt.timezone.utc)
    recovered = _recover(table, rejected, now)
    rejected.refresh()

    # expressions, not filter text: a reason is the caller's string (pyiceberg's parser
    # refuses a newline inside quotes, and that was a 500)
    condition: BooleanExpression = And(EqualTo(term=Reference("stream"), value=literal(stream)),
                                       IsNull(term=Reference("replayed_at")))
    if since is not None:
        condition = And(condition, GreaterThanOrEqual(term=Reference("received_at"),
                                                      value=literal(since.isoformat())))
    if reason is not None:
        condition = And(condition, EqualTo(term=Reference("reason"), value=literal(reason)))
    rows = rejected.scan(row_filter=condition).to_arrow()
    reasons = rows.column("reason").to_pylist()
    events_at = [i for i, (why, payload) in enumerate(zip(reasons, rows.column("payload").to_pylist()))
                 if _holds_event(why, payload)]
    skipped = dict(Counter(reasons) - Counter(reasons[i] for i in events_at))
    rows = rows.take(pa.array(events_at, pa.int64()))  # typed: an empty list would be null
    if rows.num_rows == 0:
        return ReplayResult(0, {}, recovered, skipped)

    validator = StreamValidator(stream, current.schema, current.version)
    payloads = [p.encode() for p in rows.column("payload").to_pylist()]
    events, errors = validator.decode_each(payloads, range(len(payloads)))
    failed = {e.index: e for e in errors}
    passing = [i for i in range(len(payloads)) if i not in failed]
    ids = rows.column("rejection_id").to_pylist()
    received = rows.column("received_at").to_pylist()
    for event, index in zip(events, passing):
        if event.event_id is msgspec.UNSET:
            event.event_id = ids[index]
        if event.ts is msgspec.UNSET or event.ts is None:
            event.ts = received[index]  # event time defaults to when it first arrived
    window_us = int(settings.collector.future_window_seconds * 1_000_000)
    kept, late = validator.stamp(events, passing, now, window_us)
    failed.update({e.index: e for e in late})
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    for event, index in zip(kept, [i for i in passing if i not in failed]):
        event.received_at = (received[index] - epoch) // dt.timedelta(microseconds=1)
    replayed_ids = [ids[i] for i in passing if i not in failed]

    batch = uuid.uuid4().hex
    if kept:
        converter = Converter(table.schema().as_arrow())
        data, unconvertible = converter.convert([Record(0, 0, 0, len(kept), 0, validator.encode(kept))])
        if unconvertible:
            first = unconvertible[0]
            raise ValueError(f"{len(unconvertible)} replayed events do not fit the table "
                             f"{'.'.join(table_identifier(settings, stream))}; the first is rejected row "
                             f"{replayed_ids[first.line]}: {first.reason}")

        def append() -> None:
            with table.transaction() as tx:
                tx.append(data)
                tx.set_properties({BATCH_PROPERTY + batch: json.dumps(replayed_ids)})

        _retry(append, table)

    def rewrite() -> None:
        fresh = rejected.scan(row_filter=_ids_filter(ids)).to_arrow()
        by_id = {rid: i for i, rid in enumerate(ids)}
        updated = fresh.to_pylist()
        for row in updated:
            index = by_id[row["rejection_id"]]
            if index in failed:
                row["reason"], row["message"], row["path"] = (
                    failed[index].code, message(failed[index]), failed[index].path)
            elif row["replayed_at"] is None:
                row["replayed_at"] = now
        rejected.overwrite(pa.Table.from_pylist(updated, schema=fresh.schema),
                           overwrite_filter=_ids_filter(ids))

    _retry(rewrite, rejected)
    if kept:
        _retry(lambda: table.transaction().remove_properties(BATCH_PROPERTY + batch).commit_transaction(),
               table)
    still: dict[str, int] = {}
    for error in failed.values():
        still[error.code] = still.get(error.code, 0) + 1
    return ReplayResult(len(replayed_ids), still, recovered, skipped)

