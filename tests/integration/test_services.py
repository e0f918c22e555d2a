"""The test servers themselves: each one started by its fixture and used with the real clients."""

from __future__ import annotations

import secrets
import time
import tomllib
from pathlib import Path

import psycopg
import pyarrow.fs as pafs
import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]
from services import KafkaService, PostgresService, S3Service

from conftest import Backend, Lakehose
from lakehose.config import parse_settings

pytestmark = pytest.mark.timeout(240)  # the first Kafka start may fetch its jars


def _topic(kafka: KafkaService, partitions: int = 4) -> str:
    name = f"selftest-{secrets.token_hex(4)}"
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(30)
    return name


def _producer(kafka: KafkaService) -> Producer:
    return Producer({"bootstrap.servers": kafka.bootstrap, "enable.idempotence": True,
                     "message.timeout.ms": 60000})


def _produce(producer: Producer, topic: str, values: range) -> list[Message]:
    delivered: list[Message] = []

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        assert err is None, err
        delivered.append(msg)

    for value in values:
        producer.produce(topic, value=str(value).encode(), key=str(value % 7).encode(),
                         on_delivery=on_delivery)
    assert producer.flush(60) == 0
    assert len(delivered) == len(values)
    return delivered


def _consumer(kafka: KafkaService, topic: str) -> Consumer:
    consumer = Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": f"g-{secrets.token_hex(4)}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    return consumer


def _consume(consumer: Consumer, count: int, timeout: float = 60) -> list[int]:
    values: list[int] = []
    deadline = time.monotonic() + timeout
    while len(values) < count and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        error = msg.error()
        if error is not None:
            assert error.retriable() or error.code() == KafkaError._PARTITION_EOF, error
            continue
        values.append(int(msg.value() or b""))
    consumer.commit(asynchronous=False)
    return values


def test_kafka_idempotent_produce_and_consume(kafka_service: KafkaService) -> None:
    topic = _topic(kafka_service)
    delivered = _produce(_producer(kafka_service), topic, range(200))
    assert {msg.partition() for msg in delivered} == {0, 1, 2, 3}
    consumer = _consumer(kafka_service, topic)
    try:
        assert sorted(_consume(consumer, 200)) == list(range(200))
    finally:
        consumer.close()


def test_kafka_restart_keeps_data_and_clients_recover(kafka_service: KafkaService) -> None:
    topic = _topic(kafka_service)
    producer = _producer(kafka_service)
    consumer = _consumer(kafka_service, topic)
    try:
        _produce(producer, topic, range(50))
        assert sorted(_consume(consumer, 50)) == list(range(50))
        port = kafka_service.port
        kafka_service.restart()  # SIGKILL, then the same ports and data
        assert kafka_service.port == port
        _produce(producer, topic, range(50, 100))  # the same producer, reconnected
        assert sorted(_consume(consumer, 50)) == list(range(50, 100))  # the same consumer
    finally:
        consumer.close()
    fresh = _consumer(kafka_service, topic)  # everything survived the crash
    try:
        assert sorted(_consume(fresh, 100)) == list(range(100))
    finally:
        fresh.close()


def test_postgres_create_database(postgres_service: PostgresService) -> None:
    name = f"selftest_{secrets.token_hex(4)}"
    uri = postgres_service.create_database(name)
    assert uri == f"postgresql://postgres@127.0.0.1:{postgres_service.port}/{name}"
    with psycopg.connect(uri) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY, name text)")
        conn.execute("INSERT INTO t VALUES (1, 'a'), (2, 'b')")
        conn.commit()
        assert conn.execute("SELECT current_database(), count(*) FROM t").fetchone() == (name, 2)
    postgres_service.drop_database(name)


def test_s3_boto3_and_pyarrow(s3_service: S3Service) -> None:
    bucket = s3_service.create_bucket(f"selftest-{secrets.token_hex(4)}")
    client = s3_service.client()
    client.put_object(Bucket=bucket, Key="a/b.txt", Body=b"from boto3")
    assert client.get_object(Bucket=bucket, Key="a/b.txt")["Body"].read() == b"from boto3"

    fs = pafs.S3FileSystem(endpoint_override=s3_service.endpoint, scheme="http", access_key="test",
                           secret_key="test", region="us-east-1")
    with fs.open_output_stream(f"{bucket}/c/d.bin") as out:
        out.write(b"from pyarrow")
    with fs.open_input_stream(f"{bucket}/c/d.bin") as stream:
        assert stream.read() == b"from pyarrow"
    with fs.open_input_stream(f"{bucket}/a/b.txt") as stream:
        assert stream.read() == b"from boto3"
    assert client.get_object(Bucket=bucket, Key="c/d.bin")["Body"].read() == b"from pyarrow"
    s3_service.delete_bucket(bucket)


@pytest.mark.parametrize("backend", ["embedded", "scaled"], indirect=True)
def test_backend_config(backend: Backend, tmp_path: Path) -> None:
    settings = parse_settings(tomllib.loads(backend.config), {}, str(tmp_path))
    if backend == "embedded":
        assert backend.config == "" and backend.services is None
        assert settings.log_uri.startswith("wal://") and settings.catalog_uri.startswith("sqlite:///")
        return
    services = backend.services
    assert services is not None
    assert settings.log_uri == services.kafka.uri
    assert settings.log.topic_prefix == f"{backend.tag}." and settings.log.partitions == 4
    assert settings.catalog_uri == services.postgres.uri(backend.tag)
    with psycopg.connect(settings.catalog_uri) as conn:  # the test's own database exists
        assert conn.execute("SELECT current_database()").fetchone() == (backend.tag,)
    assert settings.warehouse_uri == f"s3://{backend.tag}/warehouse"
    services.s3.client().head_bucket(Bucket=backend.tag)  # and its own bucket
    assert settings.lake.s3_endpoint == services.s3.endpoint


def test_lakehose_writes_config_before_keys(tmp_path: Path) -> None:
    home = Lakehose(tmp_path / "data", "[query]\nrow_limit = 7\n")
    assert (tmp_path / "data" / "lakehose.toml").read_text() == "[query]\nrow_limit = 7\n"
    assert home.key and home.services is None
    with pytest.raises(AssertionError, match="bogus"):  # `keys create` already reads the file
        Lakehose(tmp_path / "other", "[bogus]\n")
