"""Log offsets kept in table properties, and the commit that moves them with the rows.

Each log partition has its own property (``<prefix><partition>`` = next offset
to read), so workers that deliver different partitions of one stream never
overwrite each other's offsets: a commit sets only the partitions it read.

A commit also *requires* that those properties still hold the values its rows
start from (``AssertProperties``). The catalog checks that against the table's
current metadata in the same compare-and-swap that publishes the commit, and
pyiceberg's own retries keep the check. So if another worker delivered one of
those partitions meanwhile (a rebalance, or a worker that was presumed dead),
the commit fails with ``OffsetsMoved`` instead of writing the rows twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import pyarrow as pa
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.table import Table
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.update import ValidatableTableRequirement

from lakehose.lake.commit_lock import commit_lock

OFFSET_PREFIX = "lakehose.log-offset."
COMMIT_ATTEMPTS = 8


class OffsetsMoved(Exception):
    """Another writer moved offsets this commit starts from: its rows are already in."""


class AssertProperties(ValidatableTableRequirement):
    """The table's properties hold these values (``None``: the property is absent)."""

    type: Literal["assert-lakehose-properties"] = "assert-lakehose-properties"
    expected: dict[str, str | None]

    def validate(self, base_metadata: TableMetadata | None) -> None:  # type: ignore[override]
        properties = base_metadata.properties if base_metadata is not None else {}
        for key, value in self.expected.items():
            if properties.get(key) != value:
                raise CommitFailedException(f"Requirement failed: property {key} is "
                                            f"{properties.get(key)!r}, expected {value!r}")


def read_offsets(table: Table, prefix: str = OFFSET_PREFIX) -> dict[int, int]:
    """``{partition: next offset}`` recorded under ``prefix``; empty for a new table."""
    return {int(key[len(prefix):]): int(value) for key, value in table.properties.items()
            if key.startswith(prefix)}


def commit_with_offsets(table: Table, data: pa.Table | None, start: Mapping[int, int],
                        end: Mapping[int, int], prefix: str = OFFSET_PREFIX) -> None:
    """Append ``data`` and move each partition's offset from ``start`` to ``end``, atomically.

    Retries commits that lost a race to an unrelated change (another partition's
    rows, maintenance); raises ``OffsetsMoved`` when one of these partitions moved.
    Each attempt holds the table's ``commit_lock``, so maintenance commits get their turn.
    """
    expected = {f"{prefix}{p}": (str(start[p]) if p in start else None) for p in end}
    moved = {f"{prefix}{p}": str(o) for p, o in end.items()}
    for attempt in range(COMMIT_ATTEMPTS):
        if any(table.properties.get(k) != v for k, v in expected.items()):
            raise OffsetsMoved(f"{table.name()}: offsets moved under this commit")
        try:
            with commit_lock(table):
                tx = table.transaction()
                # pyiceberg has no public way to add a requirement; _apply stages it with the updates
                tx._apply((), (AssertProperties(expected=expected),))  # type: ignore[arg-type]
                if data is not None and data.num_rows:
                    tx.append(data)
                tx.set_properties(moved)
                tx.commit_transaction()
            return
        except CommitFailedException:
            if attempt == COMMIT_ATTEMPTS - 1:
                raise
            table.refresh()
