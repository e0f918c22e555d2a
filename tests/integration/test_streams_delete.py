"""`lakehose streams delete`: the stream, its table and its log go; its rejected events stay.

Run on both backend sets: the log is a WAL folder or a Kafka topic, the table a
file:// or s3:// Iceberg table. A stream re-created under the same name starts
empty: nothing of the old log is delivered into it.
"""

from __future__ import annotations

import httpx

from conftest import BOTH_BACKENDS, Lakehose
from lake_support import query, wait_for_count

pytestmark = BOTH_BACKENDS


def count(lh: Lakehose, sql: str) -> int:
    return int(lh.run("query", sql, "--format", "csv").stdout.splitlines()[1])


def log_has_stream(lh: Lakehose, name: str) -> bool:
    if lh.services is None:
        return (lh.data_dir / "log" / name).exists()
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": lh.services.kafka.bootstrap, "log_level": 0})
    prefix = (lh.data_dir / "lakehose.toml").read_text().split('topic_prefix = "', 1)[1].split('"')[0]
    return f"{prefix}{name}" in admin.list_topics(timeout=10).topics


def test_delete_drops_stream_table_and_log_and_keeps_rejected_events(lh: Lakehose) -> None:
    lh.create_stream("level_complete")
    server = lh.server("up", env={"LAKEHOSE_DELIVERY__MAX_SECONDS": "1"}).start()
    writer = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {lh.key}"}, timeout=30)
    answer = writer.post("/v1/streams/level_complete/events",
                         json=[{"user_id": "u1", "level": 1}, {"user_id": "u2", "level": 2},
                               {"user_id": "u3", "level": "x"}]).json()
    assert (answer["accepted"], answer["rejected"]) == (2, 1)
    reader = lh.reader(server)
    wait_for_count(reader, "events.level_complete", 2, timeout=60)
    wait_for_count(reader, "events._rejected", 1, timeout=60)
    assert server.stop() == 0
    assert log_has_stream(lh, "level_complete")

    refused = lh.run("streams", "delete", "level_complete", check=False)
    assert refused.returncode == 1 and "add --yes" in refused.stderr
    assert "level_complete" in lh.run("streams", "list").stdout

    done = lh.run("streams", "delete", "level_complete", "--yes")
    assert "deleted stream level_complete" in done.stdout
    assert "level_complete" not in lh.run("streams", "list").stdout
    assert not log_has_stream(lh, "level_complete")
    gone = lh.run("query", "SELECT count(*) FROM events.level_complete", check=False)
    assert gone.returncode == 1 and "level_complete" in gone.stderr
    assert count(lh, "SELECT count(*) FROM events._rejected WHERE stream = 'level_complete'") == 1
    again = lh.run("streams", "delete", "level_complete", "--yes", check=False)
    assert again.returncode == 1 and "no stream named 'level_complete'" in again.stderr

    lh.create_stream("level_complete")  # same name: starts empty, the old log is not delivered again
    server = lh.server("up", env={"LAKEHOSE_DELIVERY__MAX_SECONDS": "1"}).start()
    writer = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {lh.key}"}, timeout=30)
    assert writer.post("/v1/streams/level_complete/events",
                       json={"user_id": "new", "level": 3}).json()["accepted"] == 1
    reader = lh.reader(server)
    wait_for_count(reader, "events.level_complete", 1, timeout=60)
    assert query(reader, "SELECT user_id FROM events.level_complete") == [["new"]]
