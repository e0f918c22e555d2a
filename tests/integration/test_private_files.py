"""The data folder is private: catalog (key hashes), log (payloads), lake files and metrics.

``lakehose up`` on a fresh folder, events landed and queried (so SQLite, the WAL,
pyarrow's Parquet, pyiceberg's metadata, prometheus' multiprocess files and
DuckDB have all written): every folder must be 0700 and every file 0600. A
folder left with looser modes is not changed, but ``up`` says so, once.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import httpx

from conftest import Lakehose, lakehose
from lake_support import wait_for_count


def _written_by_test(path: Path, data_dir: Path) -> bool:
    """The test's own files: server output and the schema file handed to ``streams create``."""
    return path.parent == data_dir and (path.suffix == ".log" or path.name.endswith(".schema.json"))


def test_up_creates_only_private_files(lh: Lakehose) -> None:
    assert stat.S_IMODE(lh.data_dir.stat().st_mode) == 0o700  # made by `keys create`
    lh.create_stream("level_complete")
    server = lh.server("up", env={"LAKEHOSE_DELIVERY__MAX_SECONDS": "0.3"}).start()
    writer = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {lh.key}"}, timeout=30)
    events = [{"user_id": f"u{i}", "level": 1 + i} for i in range(20)]
    assert writer.post("/v1/streams/level_complete/events", json=events).json()["accepted"] == 20
    assert writer.post("/v1/streams/level_complete/events", json=[{"level": "x"}]).json()["rejected"] == 1
    wait_for_count(lh.reader(server), "events.level_complete", 20, timeout=60)
    assert httpx.get(f"{server.url}/metrics").status_code == 200

    loose, seen = [], {"dirs": 0, "files": 0}
    for root, dirs, files in os.walk(lh.data_dir):
        for name in dirs:
            seen["dirs"] += 1
            mode = stat.S_IMODE((Path(root) / name).stat().st_mode)
            if mode != 0o700:
                loose.append(f"{root}/{name}/ {mode:o}")
        for name in files:
            path = Path(root) / name
            if path.is_symlink() or _written_by_test(path, lh.data_dir):
                continue
            seen["files"] += 1
            mode = stat.S_IMODE(path.lstat().st_mode)
            if mode != 0o600:
                loose.append(f"{path} {mode:o}")
    assert not loose, "\n".join(loose)
    names = {p.name for p in lh.data_dir.rglob("*")}
    assert {"catalog.db", "log", "warehouse", "metrics"} <= names
    assert any(n.endswith(".parquet") for n in names) and any(n.endswith(".metadata.json") for n in names)
    assert seen["files"] > 10, seen


def test_loose_folder_gets_one_warning_naming_the_fix(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)
    os.chmod(data_dir, 0o755)
    home = Lakehose(data_dir)  # keys and tokens created on the open folder: a warning each
    try:
        listed = lakehose("keys", "list", data_dir=data_dir)
        warning = json.loads(next(line for line in listed.stderr.splitlines()
                                  if "data_dir_not_private" in line))
        assert warning["level"] == "warning"
        assert str(data_dir.resolve()) in warning["message"]
        assert f"chmod -R go-rwx {data_dir.resolve()}" in warning["message"]
        assert stat.S_IMODE(data_dir.stat().st_mode) == 0o755  # reported, not changed
        assert stat.S_IMODE((data_dir / "catalog.db").stat().st_mode) == 0o600  # new files are private

        server = home.server("up").start()
        server.stop()
        lines = server.log_path.read_text().splitlines()
        assert sum("data_dir_not_private" in line for line in lines) == 1, lines  # children stay quiet

        subprocess.run(["chmod", "-R", "go-rwx", str(data_dir)], check=True)  # the fix it named
        quiet = lakehose("keys", "list", data_dir=data_dir)
        assert "data_dir_not_private" not in quiet.stderr
    finally:
        home.close()
