"""Collectors' durable accepted counts: absolute totals per process, summed by the audit."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from lakehose.collector.accepted import AcceptedCounter, ensure_table, hour_of, read_accepted
from lakehose.registry.store import make_engine


def test_each_process_writes_its_totals_and_the_audit_sums_them(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'catalog.db'}")
    first, second = AcceptedCounter(engine), AcceptedCounter(engine)
    hour = hour_of(time.time())
    first.add({("s", hour): 3})
    first.flush()
    first.flush()  # nothing new: a repeated flush changes nothing
    first.add({("s", hour): 2, ("s", hour - 3600): 7})
    first.flush()
    second.add({("s", hour): 10, ("t", hour): 1})
    second.flush()
    assert read_accepted(engine, hour - 3600, ["s", "t"]) == {
        ("s", hour): 15, ("s", hour - 3600): 7, ("t", hour): 1}
    assert read_accepted(engine, hour, ["s"]) == {("s", hour): 15}
    assert first.instance != second.instance


def test_counts_wait_in_memory_while_the_database_fails(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'catalog.db'}")
    counter = AcceptedCounter(engine)
    hour = hour_of(time.time())
    counter.add({("s", hour): 4})
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE lakehose_accepted_counts"))
    with pytest.raises(sa.exc.OperationalError):
        counter.flush()
    counter.add({("s", hour): 1})
    ensure_table(engine)
    counter.flush()
    assert read_accepted(engine, hour, ["s"]) == {("s", hour): 5}
