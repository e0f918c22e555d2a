"""What ``lakehose send --demo`` prepares before sending: the demo streams, one write key, a dashboard.

Each step is idempotent, so running the demo again sends more events into the
same streams with the same key and leaves the dashboard as it is:

- the 14 demo streams are created if missing; one that exists with another
  schema is reported (its demo events may be rejected, and ``send`` counts them);
- the write key ``demo`` is made once and its secret kept in
  ``<data-dir>/demo-key`` (mode 0600, like any credential file): only hashes are
  in the catalog, so the secret must live somewhere for the next run to reuse
  it; a file whose key was revoked or belongs to another catalog is replaced;
- the dashboard ``Game overview`` (``DEMO_CHARTS``: the README's screenshot) is
  created if no dashboard has that name, each chart checked against its
  stream's schema as the UI's API checks it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import msgspec

from lakehose.config import Settings
from lakehose.demo import DEMO_CHARTS, DEMO_DASHBOARD, DEMO_SCHEMAS
from lakehose.errors import AlreadyExists
from lakehose.query.explore import ExploreSpec, build
from lakehose.registry.credentials import hash_secret
from lakehose.registry.schema import parse_schema
from lakehose.registry.store import Registry
from lakehose.streams import create_stream
from lakehose.ui.saved import Saved

KEY_FILE = "demo-key"


@dataclass(frozen=True)
class DemoSetup:
    key: str | None  # None when the caller brings its own
    key_name: str | None
    key_created: bool
    streams_created: list[str]
    streams_differing: list[str]
    dashboard_id: str
    charts_left_out: list[str] | None  # None: the dashboard existed already

    def lines(self, settings: Settings, url: str) -> list[str]:
        """What changed, for people."""
        lines = []
        if self.streams_created:
            lines.append(f"created demo streams: {', '.join(self.streams_created)}")
        for name in self.streams_differing:
            lines.append(f"note: stream {name} exists with another schema than the demo's; "
                         f"its demo events may be rejected (counted below)")
        if self.key_created:
            lines.append(f"created write key {self.key_name!r} for the demo, kept in "
                         f"{Path(settings.data_dir) / KEY_FILE} for the next runs")
        board = f"{url}/ui/#/dashboard/{self.dashboard_id}"
        if self.charts_left_out is None:
            lines.append(f"dashboard {DEMO_DASHBOARD!r}: {board}")
        else:
            lines.append(f"created dashboard {DEMO_DASHBOARD!r}: {board}")
            lines += [f"note: chart {chart}" for chart in self.charts_left_out]
        return lines


def prepare_demo(settings: Settings, with_key: bool) -> DemoSetup:
    """Streams, the demo key (if ``with_key``) and the dashboard, each only if missing."""
    registry = Registry(settings.catalog_uri)
    created, differing = _streams(settings, registry)
    key, name, key_created = _demo_key(settings, registry) if with_key else (None, None, False)
    board, left_out = _dashboard(settings, registry)
    return DemoSetup(key, name, key_created, created, differing, board, left_out)


def _streams(settings: Settings, registry: Registry) -> tuple[list[str], list[str]]:
    existing = {stream.name: stream for stream in registry.list_streams()}
    created, differing = [], []
    for name, schema in DEMO_SCHEMAS.items():
        if name not in existing:
            try:
                create_stream(settings, name, schema)
                created.append(name)
            except AlreadyExists:  # created meanwhile by someone else: theirs stands
                pass
        elif existing[name].schema.document != parse_schema(schema).document:
            differing.append(name)
    return created, differing


def _demo_key(settings: Settings, registry: Registry) -> tuple[str, str, bool]:
    """The kept demo key if the catalog still honours it, else a new one, kept for next time."""
    path = Path(settings.data_dir) / KEY_FILE
    holders = {h: x for h, x in registry.credentials.holders().items() if x.kind == "write"}
    try:
        kept = path.read_text().strip()
    except FileNotFoundError:
        kept = ""
    holder = holders.get(hash_secret(kept)) if kept else None
    if holder is not None and not holder.revoked:
        return kept, holder.name, False
    names = {h.name for h in holders.values()}
    name = next(n for n in ("demo", *(f"demo-{i}" for i in range(2, len(names) + 3))) if n not in names)
    key = registry.credentials.create("key", name, "write")
    temporary = path.with_suffix(".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(key + "\n")
    os.replace(temporary, path)
    return key, name, True


def _dashboard(settings: Settings, registry: Registry) -> tuple[str, list[str] | None]:
    """The id of the demo dashboard, and if it was created now the charts it had to leave out."""
    saved = Saved(settings.catalog_uri)
    for board in saved.dashboards.list():
        if board.name == DEMO_DASHBOARD:
            return board.id, None
    tiles, left_out = [], []
    for name, viz, width, height, question in DEMO_CHARTS:
        spec = msgspec.convert(question, ExploreSpec)
        try:  # a stream that existed before the demo may lack the chart's fields
            build(spec, registry.get_stream(spec.stream).schema, settings.lake.namespace)
        except ValueError as exc:
            left_out.append(f"{name!r} left out of it: {exc}")
            continue
        chart = saved.charts.create(name, {"viz": viz, "explore": msgspec.to_builtins(spec), "sql": None})
        tiles.append({"chart": chart.id, "w": width, "h": height})
    board = saved.dashboards.create(DEMO_DASHBOARD, {"tiles": tiles, "range": None, "refresh": 0})
    return board.id, left_out
