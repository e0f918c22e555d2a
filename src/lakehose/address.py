"""Where the ``lakehose up`` of a data folder listens, recorded in ``<data-dir>/up.json``.

Why: ``lakehose up --port 8090`` and then ``lakehose send`` (or any command that
talks HTTP to it) must meet without the user repeating the port. The file holds
``{"url": ..., "pid": ...}`` and is written atomically once ``up`` answers; it is
believed only while that pid is alive, so a file left by a killed ``up`` is
ignored rather than trusted.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

FILE = "up.json"


def record(data_dir: str, url: str) -> None:
    """Say that this process serves ``url`` for ``data_dir``."""
    path = Path(data_dir) / FILE
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"url": url, "pid": os.getpid()}) + "\n")
    os.replace(temporary, path)


def recorded(data_dir: str) -> str | None:
    """The URL of the running ``up`` of ``data_dir``, or None if none is recorded or it is gone."""
    try:
        entry = json.loads((Path(data_dir) / FILE).read_text())
        url, pid = str(entry["url"]), int(entry["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # alive, owned by someone else
        pass
    return url
