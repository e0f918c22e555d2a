"""Inputs for ``bench/fuzz/body_fuzz.py``'s ``check``: the seed corpus and hostile bodies.

``check`` runs a body the way the collector does (decompress, prepare, rejected
records) and raises on anything but a 4xx-answered refusal or on broken counts.
A crashing input found by the fuzzer goes in ``CASES`` (first byte: encoding
and route, see the harness), so it stays fixed.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

FUZZ = Path(__file__).parents[2] / "bench" / "fuzz"
_spec = importlib.util.spec_from_file_location("body_fuzz", FUZZ / "body_fuzz.py")
assert _spec is not None and _spec.loader is not None
body_fuzz = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(body_fuzz)

CASES = {
    "lone-surrogate": b'\x00[{"user_id":"\\ud800","level":1}]',
    "deep-nesting": b"\x00" + b"[" * 100_000,
    "deep-object": b"\x80" + b'[{"type":"loose","a":' + b'{"b":' * 5000 + b"1" + b"}" * 5000 + b"}]",
    "gzip-members": b"\x03" + b'[{"user_id":"a","level":1}]' * 50,
    "zstd-frames": b"\x06" + b'{"user_id":"a","level":1}\n' * 50,
    "year-0-in-utc": b'\x00[{"user_id":"a","level":1,"finished_at":"0001-01-01T00:00:00+14:00"}]',
    "nested-datetime": b'\x00[{"user_id":"a","level":1,"laps":[{"at":"9999-12-31T23:59:59-12:00"}]}]',
    "huge-int": b'\x00[{"user_id":"a","level":18446744073709551616}]',
    "mixed-unknown": b'\x80[{"type":"nope"},{"type":1},5,{"type":"typed","type":"loose","a":1}]',
    "bom": b'\x00\xef\xbb\xbf[{"user_id":"a","level":1}]',
}


@pytest.mark.parametrize("data", [p.read_bytes() for p in sorted((FUZZ / "seeds-body").iterdir())]
                         + list(CASES.values()), ids=[p.name for p in sorted((FUZZ / "seeds-body").iterdir())]
                         + list(CASES))
def test_no_crash(data: bytes) -> None:
    body_fuzz.check(data)
