"""`lakehose send` as a newcomer runs it: the CLI as a subprocess against a real `up` or collector.

The demo must work after the README's own first step (level_complete created from
examples/), find `up` on a port of its own, reuse one key, send fresh event ids each run
spread over the last days, and leave the README's dashboard behind. `send FILE` must count
what the collector accepted and rejected, name the lines of the first rejections, honour
429's Retry-After, and say plainly when nobody listens.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from collector_support import EVENTS_PATH, STREAM, raw_connection, read_events
from conftest import Lakehose, free_port
from lake_support import query

from lakehose.demo import DEMO_SCHEMAS

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_demo_after_the_readme_first_stream_follows_up_and_keeps_its_key(lh: Lakehose) -> None:
    lh.run("streams", "create", STREAM, "--schema", str(EXAMPLES / "level_complete.schema.json"))
    server = lh.server("up", env={"LAKEHOSE_DELIVERY__MAX_SECONDS": "0.5"}).start()
    assert server.port != 8080
    first = lh.run("send", "--demo", "--events", "3000")  # no --url: up's recorded address
    assert "sent 3,000 demo events" in first.stdout and "3,000 accepted, 0 rejected" in first.stdout
    assert f"to {server.url}" in first.stdout
    assert "created write key 'demo'" in first.stdout
    assert "created dashboard 'Game overview'" in first.stdout
    assert "level_complete" not in first.stdout.split("\n")[0]  # it existed: the README's
    assert "another schema" not in first.stdout
    assert "(100%)" in first.stderr, first.stderr  # progress lines when not on a terminal
    key_file = lh.data_dir / "demo-key"
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"

    again = lh.run("send", "--demo", "--events", "2000")
    assert "2,000 accepted, 0 rejected" in again.stdout
    assert "created" not in again.stdout, again.stdout  # same key, same streams, same dashboard
    keys = lh.run("keys", "list").stdout
    assert keys.count("demo") == 1, keys

    reader = lh.reader(server)
    everything = " UNION ALL ".join(f"SELECT event_id, ts FROM events.{name}" for name in DEMO_SCHEMAS)
    deadline = time.monotonic() + 90
    while query(reader, f"SELECT count(*) FROM ({everything})")[0][0] < 5000:
        assert time.monotonic() < deadline, "the demo events did not land"
        time.sleep(0.5)
    (total, distinct, days, oldest_days), = query(
        reader, f"SELECT count(*), count(DISTINCT event_id), count(DISTINCT ts::DATE), "
                f"date_diff('hour', min(ts), now()) / 24.0 FROM ({everything})")
    assert total == distinct == 5000  # a fresh seed each run: no event id sent twice
    assert days >= 6 and 5 < oldest_days <= 7.1, (days, oldest_days)

    boards = reader.get("/v1/dashboards").json()["dashboards"]
    assert [b["name"] for b in boards] == ["Game overview"]
    for tile in boards[0]["tiles"]:
        chart = reader.get(f"/v1/charts/{tile['chart']}").json()
        answer = reader.post("/v1/explore", json=chart["explore"])
        assert answer.status_code == 200 and answer.json()["rows"], (chart["name"], answer.text)


def test_send_file_counts_and_names_the_first_rejections(tmp_path: Path,
                                                        collector: tuple[Lakehose, httpx.Client]) -> None:
    lh, client = collector
    url = str(client.base_url)
    ndjson = tmp_path / "events.ndjson"
    ndjson.write_text('{"type": "level_complete", "user_id": "a", "level": 2}\n\n'
                      '{"type": "level_complete", "user_id": "b", "level": "x"}\n'
                      + "".join(f'{{"type": "level_complete", "user_id": "n{i}", "level": {i + 1}}}\n'
                                for i in range(1200))
                      + '{"type": "lvl_complete", "user_id": "c", "level": 1}\n')
    sent = lh.run("send", str(ndjson), "--url", url, env={"LAKEHOSE_WRITE_KEY": lh.key}, check=False)
    assert sent.returncode == 1  # something was rejected
    assert "sent 1,203 events" in sent.stdout and "1,201 accepted, 2 rejected" in sent.stdout
    assert "line 3: type_mismatch at $.level" in sent.stdout
    assert "line 1204: unknown_stream" in sent.stdout, sent.stdout

    array = json.dumps([{"user_id": "s1", "level": 5}, {"user_id": "s2", "level": 6}])
    piped = subprocess.run([sys.executable, "-m", "lakehose", "send", "-", "--stream", STREAM, "--url", url,
                            "--key", lh.key, "--data-dir", str(lh.data_dir)],
                           input=array, capture_output=True, text=True, timeout=60)
    assert piped.returncode == 0, piped.stderr
    assert "2 accepted, 0 rejected" in piped.stdout
    assert {e["user_id"] for e in read_events(lh.data_dir)} >= {"a", "s1", "s2", "n1199"}

    broken = tmp_path / "broken.ndjson"
    broken.write_text('{"user_id": "z", "level": 1}\n{"user_id": \n')
    refused = lh.run("send", str(broken), "--stream", STREAM, "--url", url, "--key", lh.key, check=False)
    assert refused.returncode == 1 and "line 2 is not JSON" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert "z" not in {e["user_id"] for e in read_events(lh.data_dir)}  # nothing was sent


def test_send_says_clearly_when_nobody_listens(lh: Lakehose) -> None:
    # a data folder whose `up` was killed: its recorded address is not believed
    (lh.data_dir / "up.json").write_text(json.dumps({"url": "http://127.0.0.1:1", "pid": 2 ** 22 + 1}))
    port = free_port()
    for args in (["--demo"], ["--demo", "--url", f"http://127.0.0.1:{port}"]):
        failed = lh.run("send", *args, env={"LAKEHOSE_COLLECTOR__PORT": str(port)}, check=False)
        assert failed.returncode == 1
        assert f"cannot reach lakehose at http://127.0.0.1:{port}" in failed.stderr, failed.stderr
        assert "Traceback" not in failed.stderr
        assert not (lh.data_dir / "demo-key").exists()  # nothing prepared for a server that is not there


def test_send_waits_as_429_retry_after_says(lh: Lakehose, tmp_path: Path) -> None:
    """The buffered-body budget, held by a slow upload: send is told 429 + Retry-After 1 and waits."""
    lh.create_stream(STREAM)
    server = lh.server("collector", env={"LAKEHOSE_COLLECTOR__MAX_BUFFERED_BODY_BYTES": "1000"}).start()
    events = tmp_path / "events.json"
    events.write_text(json.dumps([{"user_id": "r", "level": 1}] * 10))
    body = json.dumps([{"user_id": "slow", "level": 1}] * 25).encode()
    with raw_connection(server.url) as sock:
        sock.sendall(f"POST {EVENTS_PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {lh.key}\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                     + body[:-5])
        time.sleep(0.5)  # the collector now holds most of that body and waits for the rest
        release = threading.Timer(3, sock.sendall, (body[-5:],))
        release.start()
        started = time.monotonic()
        sent = lh.run("send", str(events), "--stream", STREAM, "--url", server.url, "--key", lh.key)
        took = time.monotonic() - started
        release.join()
    retries = [line for line in sent.stderr.splitlines() if "retrying" in line]
    assert retries and all("429 too_many_requests" in line and "retrying in 1 s" in line
                           for line in retries), sent.stderr
    assert len(retries) <= took + 1  # one attempt a second at most, as Retry-After asks
    assert took >= 2 and "10 accepted, 0 rejected" in sent.stdout
    assert len(read_events(lh.data_dir)) == 10 + 25


def test_send_draws_a_progress_bar_on_a_terminal(tmp_path: Path,
                                                collector: tuple[Lakehose, httpx.Client]) -> None:
    lh, client = collector
    events = tmp_path / "events.json"
    events.write_text(json.dumps([{"user_id": f"t{i}", "level": 1} for i in range(1500)]))
    terminal, attached = pty.openpty()
    with subprocess.Popen([sys.executable, "-m", "lakehose", "send", str(events), "--stream", STREAM,
                           "--url", str(client.base_url), "--key", lh.key, "--data-dir", str(lh.data_dir)],
                          stdout=subprocess.PIPE, stderr=attached, text=True) as process:
        os.close(attached)
        drawn = b""
        while True:
            try:
                chunk = os.read(terminal, 4096)
            except OSError:  # EIO: the process closed the terminal
                break
            if not chunk:
                break
            drawn += chunk
        stdout = process.communicate(timeout=60)[0]
    os.close(terminal)
    assert process.returncode == 0 and "1,500 accepted, 0 rejected" in stdout
    frames = drawn.decode().replace("\r\n", "\n").split("\r")  # the terminal turns \n into \r\n
    assert len(frames) >= 3 and frames[-1].startswith("[" + "#" * 30 + "] 100%"), frames
    assert "\n" not in "".join(frames[:-1])  # redrawn in place, not a line each


def test_demo_into_a_stream_of_another_shape_says_so(collector: tuple[Lakehose, httpx.Client]) -> None:
    """level_complete made from another schema: the demo warns, leaves out the charts that
    cannot work, counts the rejections with their reasons and exits 1."""
    lh, client = collector
    sent = lh.run("send", "--demo", "--events", "1000", "--url", str(client.base_url), check=False)
    assert sent.returncode == 1, sent.stdout + sent.stderr
    assert "note: stream level_complete exists with another schema" in sent.stdout
    assert "note: chart 'Levels completed per hour' left out of it: group_by: the stream has no field " \
           "'platform'" in sent.stdout, sent.stdout
    rejected = int(sent.stdout.split(" rejected")[-2].rsplit(", ", 1)[-1].replace(",", ""))
    assert rejected > 0 and "unknown_field" in sent.stdout and "first rejections" in sent.stdout
