"""Every code of a request refused as a whole is one replay knows to skip."""

from __future__ import annotations

import re
from pathlib import Path

import lakehose.collector
from lakehose.collector.rejects import WHOLE_REQUEST_REASONS


def test_every_whole_request_code_is_skipped_by_replay() -> None:
    source = "\n".join(p.read_text() for p in Path(lakehose.collector.__file__).parent.glob("*.py"))
    # a 429 is overload, not the request's fault: answered, never recorded (Collector._refuse)
    raised = {code for status, code in re.findall(r'BodyError\(\s*(\d+),\s*"([a-z0-9_]+)"', source)
              if status != "429"}
    refused = set(re.findall(r'_record_refusal\(\s*\w+,\s*"([a-z0-9_]+)"', source))
    assert raised and refused
    assert raised | refused <= WHOLE_REQUEST_REASONS, (raised | refused) - WHOLE_REQUEST_REASONS
