"""Which rejected payloads (and ``_extra`` texts) forget matches: parsed, not substring-matched."""

from __future__ import annotations

import datetime as dt

import pytest
from pyiceberg.types import BooleanType, DoubleType, LongType, StringType, StructType, TimestamptzType

from lakehose.maintenance.forget import Condition, JsonMatcher

USER = JsonMatcher("user_id", ["u1"])


@pytest.mark.parametrize("payload", [
    '{"user_id": "u1", "level": "x"}',
    '[{"user_id": "u2"}, {"user_id": "u1"}]',
    '{"events": [{"type": "purchase", "user_id": "u1"}]}',
    '{"user_id": "u2"}\n{"user_id": "u1"}\n',
    '[{"user_id": "u1", "level": 1}, {"user_id": "u2", "lev…[truncated]',  # cut: not JSON any more
    '{"user_id" : "u1"',
])
def test_the_users_events_match(payload: str) -> None:
    assert USER.matches(payload)


@pytest.mark.parametrize("payload", [
    '{"user_id": "u10"}',
    '{"user_id": "xu1"}',
    '{"friend_id": "u1"}',
    '{"user_id": "u2", "note": "u1"}',
    '{"user": {"user_id": "u1"}}',  # a nested field is not the event's user_id
    '{"user_id": "u2", "note": "\\"user_id\\": \\"u1\\""}',
    '{"user_id": "u10", "level": 1',  # not JSON, and the pair is u10
    'not json at all: u1',
    '',
])
def test_near_misses_do_not(payload: str) -> None:
    assert not USER.matches(payload)


def test_values_compare_as_their_column_type() -> None:
    assert JsonMatcher("level", [3]).matches('{"level": 3}')
    assert not JsonMatcher("level", [3]).matches('{"level": "3"}')
    assert not JsonMatcher("level", [1]).matches('{"level": true}')
    assert JsonMatcher("score", [2.0]).matches('{"score": 2}')
    moment = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    for text in ('"2025-01-02T03:04:05Z"', '"2025-01-02T04:04:05+01:00"', '"2025-01-02 03:04:05"',
                 "1735787045000"):
        assert JsonMatcher("ts", [moment]).matches(f'{{"ts": {text}}}'), text
    assert not JsonMatcher("ts", [moment]).matches('{"ts": 1e300}')


def test_a_condition_is_typed_by_its_column() -> None:
    condition = Condition.parse("x= 42 ")
    assert condition.typed(LongType(), "t") == 42
    assert condition.typed(DoubleType(), "t") == 42.0
    assert condition.typed(StringType(), "t") == " 42 "  # a string is taken as written
    assert Condition.parse("x=TRUE").typed(BooleanType(), "t") is True
    assert Condition.parse("x=2025-01-02T03:04:05").typed(TimestamptzType(), "t") == \
        dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    with pytest.raises(ValueError, match="t.x is a long column and 'high' is not a long"):
        Condition.parse("x=high").typed(LongType(), "t")
    with pytest.raises(ValueError, match="forget matches columns of strings"):
        condition.typed(StructType(), "t")
    for bad in ("x", "=1", "a.b=1", "x y=1"):
        with pytest.raises(ValueError, match="COLUMN=VALUE"):
            Condition.parse(bad)
