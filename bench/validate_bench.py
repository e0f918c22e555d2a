"""Per-event cost of ``StreamValidator``, here and at another git revision, on one core.

    .venv/bin/python bench/validate_bench.py [REVISION]   # default: main

Valid events (a 10 000-event JSON array and the same as NDJSON) take the one-pass
path; invalid ones (six bad fields each) the event-by-event path that names every
bad field. Runs alternate between the two versions and the best of 15 is printed,
so a loaded machine skews both alike. A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import LEVEL_SCHEMA  # noqa: E402

import lakehose.collector.validate as here  # noqa: E402
from lakehose.registry.schema import parse_schema  # noqa: E402


def at_revision(revision: str) -> ModuleType:
    source = subprocess.run(["git", "show", f"{revision}:src/lakehose/collector/validate.py"], cwd=ROOT,
                            check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "validate_then.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("validate_then", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["validate_then"] = module
    spec.loader.exec_module(module)
    return module


def main() -> None:
    revision = sys.argv[1] if len(sys.argv) > 1 else "main"
    versions = {revision: at_revision(revision), "this tree": here}
    schema = parse_schema(LEVEL_SCHEMA)
    events = [{"user_id": f"u{i}", "level": i % 100 + 1, "score": 1.5, "won": True, "mode": "easy",
               "items": ["a", "b"], "device": {"os": "ios", "model": "x"},
               "finished_at": "2026-01-01T00:00:00Z"} for i in range(10_000)]
    array = json.dumps(events).encode()
    lines = b"".join(json.dumps(e).encode() + b"\n" for e in events)
    bad = [json.dumps({"user_id": 5, "level": "x", "score": "s", "won": 1, "mode": "no", "zz": 1}).encode()] * 2000
    best: dict[tuple[str, str], float] = {}
    for _ in range(15):
        for name, module in versions.items():
            v: Any = module.StreamValidator("level_complete", schema, 1)
            for what, work, n in (("valid, array", lambda: v.decode_array(array), len(events)),
                                  ("valid, NDJSON", lambda: v.decode_lines(lines), len(events)),
                                  ("invalid, 6 bad fields", lambda: v.decode_each(bad, range(len(bad))), len(bad))):
                started = time.perf_counter()
                work()
                per_event = (time.perf_counter() - started) * 1e9 / n
                best[(name, what)] = min(best.get((name, what), float("inf")), per_event)
    print(f"{'ns per event (best of 15)':28}" + "".join(f"{name:>14}" for name in versions))
    for what in ("valid, array", "valid, NDJSON", "invalid, 6 bad fields"):
        print(f"{what:28}" + "".join(f"{best[(name, what)]:14.0f}" for name in versions))


if __name__ == "__main__":
    main()
