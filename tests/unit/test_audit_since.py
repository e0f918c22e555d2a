"""How far back an audit looks: durations or a time, always from the start of an hour."""

from __future__ import annotations

import datetime as dt

import pytest

from lakehose.audit import parse_since

NOW = dt.datetime(2026, 3, 1, 10, 30, 15, tzinfo=dt.timezone.utc).timestamp()


def at(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc).timestamp())


def test_durations_and_times_start_at_a_whole_hour() -> None:
    assert parse_since("24h", NOW) == at("2026-02-28T10:00:00")
    assert parse_since("90m", NOW) == at("2026-03-01T09:00:00")
    assert parse_since("7d", NOW) == at("2026-02-22T10:00:00")
    assert parse_since("2026-03-01T08:45:00Z", NOW) == at("2026-03-01T08:00:00")
    assert parse_since("2026-03-01T08:45:00+02:00", NOW) == at("2026-03-01T06:00:00")
    assert parse_since("2026-03-01T08:45", NOW) == at("2026-03-01T08:00:00")  # no zone: UTC


@pytest.mark.parametrize("text", ["yesterday", "24", "h", "-1h", "1y", ""])
def test_anything_else_is_refused_with_the_forms_it_takes(text: str) -> None:
    with pytest.raises(ValueError, match="24h, 90m or 7d"):
        parse_since(text, NOW)


@pytest.mark.parametrize("text", ["99999999999d", "9" * 40 + "h", "0001-01-01T00:00:00Z", "1969-12-31T23:00:00Z"])
def test_before_1970_means_from_the_start(text: str) -> None:
    assert parse_since(text, NOW) == 0


@pytest.mark.parametrize("text", ["2026-03-01T11:00:00Z", "9999-12-31T23:59:59-12:00"])
def test_a_time_in_the_future_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="in the future"):
        parse_since(text, NOW)
