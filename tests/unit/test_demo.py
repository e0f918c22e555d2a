"""The demo's data: its schemas are the README's, its events fit them, its time spread has a shape."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from pathlib import Path

import msgspec

from lakehose.demo import DEMO_CHARTS, DEMO_SCHEMAS, DemoEvents
from lakehose.query.explore import ExploreSpec, build
from lakehose.registry.schema import parse_schema

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.timezone.utc).timestamp()


def test_the_readme_first_stream_is_the_demo_one() -> None:
    """`streams create level_complete --schema examples/...` then `send --demo`: one schema."""
    assert json.loads((EXAMPLES / "level_complete.schema.json").read_text()) == DEMO_SCHEMAS["level_complete"]
    v2 = json.loads((EXAMPLES / "level_complete.v2.schema.json").read_text())
    assert set(v2["properties"]) - set(DEMO_SCHEMAS["level_complete"]["properties"]) == {"coins"}


def test_every_demo_chart_fits_its_stream() -> None:
    for name, _viz, _w, _h, question in DEMO_CHARTS:
        spec = msgspec.convert(question, ExploreSpec)
        assert spec.range == "7d", name  # the demo spreads its events over 7 days
        build(spec, parse_schema(DEMO_SCHEMAS[spec.stream]), "events")


def test_spread_events_cover_the_last_days_busier_in_the_evening() -> None:
    events = DemoEvents(3, now=NOW, days=7).batch(20_000)
    stamps = [dt.datetime.fromisoformat(e["ts"].replace("Z", "+00:00")) for e in events]
    ages = [(NOW - s.timestamp()) / 86_400 for s in stamps]
    assert 0 <= min(ages) < 0.01 and 6.9 < max(ages) <= 7.01
    hours = Counter(s.hour for s in stamps)
    assert hours[20] > 2 * hours[8]
    first, same, other = (DemoEvents(seed, now=NOW, days=7) for seed in (5, 5, 6))
    assert [first.batch(300) for _ in range(2)] == [same.batch(300) for _ in range(2)]  # --seed repeats
    assert {e["event_id"] for e in first.batch(300)}.isdisjoint(e["event_id"] for e in other.batch(300))


def test_live_events_stay_within_minutes() -> None:
    """Benchmarks keep the default: traffic as it arrives, in one day partition."""
    events = DemoEvents(3, now=NOW).batch(5_000)
    ages = [NOW - dt.datetime.fromisoformat(e["ts"].replace("Z", "+00:00")).timestamp() for e in events]
    assert 0 <= min(ages) and max(ages) <= 300
