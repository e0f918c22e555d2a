"""The data folder is private to the user running lakehose.

It holds the catalog (write-key and token hashes), the log (every payload) and
the lake files, so every lakehose command runs with umask 077: whatever it or
its libraries create (SQLite, pyarrow's Parquet writer, pyiceberg's metadata,
prometheus' multiprocess files, DuckDB's spill files) is 0700 for folders and
0600 for files, with no per-library code. The umask is inherited by ``lakehose
up``'s children. A folder made by an older version or by hand with looser modes
is not changed behind the operator's back: it gets a warning naming the fix.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from lakehose.logs import Logger

PRIVATE_UMASK = 0o077
CHECKED_ENV = "LAKEHOSE_PRIVATE_CHECKED"  # set by ``lakehose up`` so its children do not warn again
_LOG = Logger("datadir")


def loose_paths(folder: Path) -> list[Path]:
    """The folder and its direct entries that others may read or enter (not the whole lake: cheap)."""
    found = []
    for path in [folder, *sorted(folder.iterdir())]:
        try:
            mode = path.lstat().st_mode
        except FileNotFoundError:  # gone meanwhile: a running lakehose's SQLite journal
            continue
        if not stat.S_ISLNK(mode) and mode & 0o077:
            found.append(path)
    return found


def open_private(data_dir: str, create: bool = True) -> Path:
    """Set the umask, create the data folder 0700 if missing (unless ``create`` is false: a command
    that only reads), warn if what exists is not private."""
    os.umask(PRIVATE_UMASK)
    folder = Path(data_dir).resolve()
    if create:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if os.environ.get(CHECKED_ENV) or not folder.is_dir():
        return folder
    loose = loose_paths(folder)
    if loose:
        names = ", ".join(str(p) for p in loose[:5]) + (f" and {len(loose) - 5} more" if len(loose) > 5 else "")
        _LOG.warning("data_dir_not_private",
                     f"other users can read the data folder (catalog with key hashes, log with "
                     f"payloads): {names}; fix with: chmod -R go-rwx {folder}",
                     paths=[str(p) for p in loose], fix=f"chmod -R go-rwx {folder}")
    return folder
