"""The log on Apache Kafka: a topic per stream, delivery workers as one consumer group.

Writing: an idempotent producer with ``acks=all``; ``append`` returns only once
the brokers acknowledged every record, and raises ``LogUnavailable`` when they
did not within ``kafka_timeout_seconds`` (the collector answers 503 then, so
nothing is acknowledged that Kafka did not take). A record is one payload (the
NDJSON events of one request for one stream), its event count in header ``n``.

Reading: delivery workers subscribe to every lakehose topic as one consumer
group (``<topic_prefix>delivery``), so partitions are split between them and
moved when one joins, leaves or dies. The position that counts is not the
group's committed offset but the one in the Iceberg table's commit: the worker
asks ``read`` for an exact offset and this class seeks there whenever the
consumer is elsewhere (after an assignment, or after the worker went back to
the table's offsets). The group offset is committed after each table commit
only as a mirror, so Kafka's own tools show the lag.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections import deque
from collections.abc import Generator, Iterable, Mapping, Sequence

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from lakehose.config import LogSettings
from lakehose.errors import LogUnavailable
from lakehose.log import Log, Record, settle

# A request's payload for one stream can be as large as the request body (8 MiB by
# default); topics lakehose creates accept records of this size.
MAX_RECORD_BYTES = 16 * 1024 * 1024
COUNT_HEADER = "n"
CONSUME_BATCH = 10_000
ASSIGNMENT_POLL_SECONDS = 0.05


class _Partition:
    """What the consumer has fetched for one topic-partition, and where it stands."""

    def __init__(self) -> None:
        self.fetched: deque[Message] = deque()
        self.next_offset: int | None = None  # offset after the last record handed out


class KafkaLog(Log):
    def __init__(self, brokers: str, options: LogSettings) -> None:
        self.brokers = brokers
        self.prefix = options.topic_prefix
        self.topic_partitions = options.partitions
        self.timeout_seconds = options.kafka_timeout_seconds
        self.group_id = f"{self.prefix}delivery"
        self._producer: Producer | None = None
        self._producer_thread: threading.Thread | None = None
        self._consumer: Consumer | None = None
        self._assigned: dict[str, set[int]] = {}
        self._generation = 0
        self._fetched: dict[tuple[str, int], _Partition] = {}
        self._last_pump = 0.0
        self._closed = threading.Event()
        self._known_topics: set[str] = set()

    def topic(self, stream: str) -> str:
        return self.prefix + stream

    # topics ---------------------------------------------------------------
    def ensure_topics(self, streams: Iterable[str]) -> None:
        """Create the streams' topics that do not exist yet (``partitions`` each)."""
        wanted = {self.topic(s) for s in streams} - self._known_topics
        if not wanted:
            return
        admin = AdminClient({"bootstrap.servers": self.brokers})
        try:
            existing = set(admin.list_topics(timeout=self.timeout_seconds).topics)
        except KafkaException as exc:
            raise LogUnavailable(f"could not reach Kafka at {self.brokers}: {exc}") from exc
        missing = [NewTopic(t, num_partitions=self.topic_partitions, replication_factor=-1,
                            config={"max.message.bytes": str(MAX_RECORD_BYTES)})
                   for t in sorted(wanted - existing)]
        if missing:
            for topic, future in admin.create_topics(missing, request_timeout=self.timeout_seconds).items():
                try:
                    future.result()
                except KafkaException as exc:
                    if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                        raise LogUnavailable(f"could not create Kafka topic {topic}: {exc}") from exc
        self._known_topics |= wanted

    def drop_stream(self, stream: str) -> None:
        topic = self.topic(stream)
        admin = AdminClient({"bootstrap.servers": self.brokers})
        for future in admin.delete_topics([topic], operation_timeout=self.timeout_seconds).values():
            try:
                future.result()
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                    raise LogUnavailable(f"could not delete Kafka topic {topic}: {exc}") from exc
        self._known_topics.discard(topic)

    # writing --------------------------------------------------------------
    def _start_producer(self) -> Producer:
        self._producer = Producer({
            "bootstrap.servers": self.brokers,
            "enable.idempotence": True,  # implies acks=all and no duplicates on internal retries
            "acks": "all",
            "linger.ms": 2,
            "compression.type": "lz4",
            "message.max.bytes": MAX_RECORD_BYTES,
            "message.timeout.ms": int(self.timeout_seconds * 1000),
            "queue.buffering.max.kbytes": 256 * 1024,
        })
        producer = self._producer

        def serve_callbacks() -> None:
            while not self._closed.is_set():
                producer.poll(0.05)

        self._producer_thread = threading.Thread(target=serve_callbacks, name="kafka-producer",
                                                 daemon=True)
        self._producer_thread.start()
        return producer

    async def append(self, batches: Sequence[tuple[str, bytes, int]]) -> None:
        producer = self._producer or self._start_producer()
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[None]] = []
        for stream, payload, count in batches:
            future: asyncio.Future[None] = loop.create_future()

            def delivered(error: KafkaError | None, _: Message, future: asyncio.Future[None] = future) -> None:
                failure = None if error is None else \
                    LogUnavailable(f"Kafka did not take the events: {error.str()}")
                loop.call_soon_threadsafe(settle, future, failure)

            try:
                producer.produce(self.topic(stream), payload, headers=[(COUNT_HEADER, str(count).encode())],
                                 on_delivery=delivered)
            except BufferError as exc:
                raise LogUnavailable("the Kafka producer's queue is full; the brokers are slow or down") from exc
            except KafkaException as exc:
                raise LogUnavailable(f"Kafka refused the record: {exc}") from exc
            futures.append(future)
        results = await asyncio.gather(*futures, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    # reading --------------------------------------------------------------
    def _start_consumer(self) -> Consumer:
        consumer = Consumer({
            "bootstrap.servers": self.brokers,
            "group.id": self.group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "partition.assignment.strategy": "cooperative-sticky",
            "session.timeout.ms": 10_000,
            "topic.metadata.refresh.interval.ms": 2_000,
            "fetch.max.bytes": 64 * 1024 * 1024,
            "max.partition.fetch.bytes": MAX_RECORD_BYTES,
        })

        def on_assign(c: Consumer, partitions: list[TopicPartition]) -> None:
            c.incremental_assign(partitions)
            self._change_assignment(partitions, add=True)

        def on_revoke(c: Consumer, partitions: list[TopicPartition]) -> None:
            c.incremental_unassign(partitions)
            self._change_assignment(partitions, add=False)

        consumer.subscribe([f"^{re.escape(self.prefix)}.*"], on_assign=on_assign, on_revoke=on_revoke,
                           on_lost=on_revoke)
        self._consumer = consumer
        return consumer

    def _change_assignment(self, partitions: list[TopicPartition], add: bool) -> None:
        for tp in partitions:
            stream = tp.topic.removeprefix(self.prefix)
            owned = self._assigned.setdefault(stream, set())
            (owned.add if add else owned.discard)(tp.partition)
            self._fetched.pop((stream, tp.partition), None)
        self._generation += 1

    def assignment_generation(self) -> int:
        self._pump(0)
        return self._generation

    def _pump(self, timeout: float) -> None:
        """Fetch what the consumer has (this also runs group membership callbacks)."""
        consumer = self._consumer or self._start_consumer()
        for message in consumer.consume(CONSUME_BATCH, timeout):
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF and error.fatal():
                    raise LogUnavailable(f"Kafka consumer failed: {error}")
                continue
            topic = message.topic()
            partition = message.partition()
            if topic is None or partition is None:
                continue
            key = (topic.removeprefix(self.prefix), partition)
            state = self._fetched.get(key)
            if state is not None:
                state.fetched.append(message)
        self._last_pump = time.monotonic()

    def partitions(self, stream: str) -> list[int]:
        """The partitions of the stream's topic assigned to this reader (group member)."""
        if time.monotonic() - self._last_pump > ASSIGNMENT_POLL_SECONDS:
            self._pump(0)
        owned = sorted(self._assigned.get(stream, ()))
        for partition in owned:
            self._fetched.setdefault((stream, partition), _Partition())
        return owned

    def read(self, stream: str, partition: int, offset: int, max_bytes: int) -> list[Record]:
        state = self._fetched.get((stream, partition))
        if state is None:
            return []
        if state.next_offset != offset:
            try:
                assert self._consumer is not None
                self._consumer.seek(TopicPartition(self.topic(stream), partition, offset))
            except KafkaException:
                return []  # not fetching yet right after an assignment: ask again next round
            state.fetched.clear()
            state.next_offset = offset
        if not state.fetched:
            self._pump(0)
        records: list[Record] = []
        size = 0
        while state.fetched and size < max_bytes:
            message = state.fetched.popleft()
            message_offset = message.offset()
            payload = message.value()
            if message_offset is None or payload is None or message_offset < offset:
                continue  # fetched before the seek
            records.append(_record(message, partition, message_offset, payload))
            size += len(payload)
            state.next_offset = offset = message_offset + 1
        return records

    def undelivered(self, stream: str, offsets: Mapping[int, int]) -> Generator[Record, None, None]:
        """Read with a consumer of its own that is assigned partitions (never subscribed), so
        delivery's group is not rebalanced; a partition is read up to its end when asked."""
        topic = self.topic(stream)
        consumer = Consumer({
            "bootstrap.servers": self.brokers,
            "group.id": f"{self.prefix}audit",  # never joined: partitions are assigned, not subscribed
            "enable.auto.commit": False,
            "fetch.max.bytes": 64 * 1024 * 1024,
            "max.partition.fetch.bytes": MAX_RECORD_BYTES,
        })
        try:
            try:
                listed = consumer.list_topics(topic, timeout=self.timeout_seconds).topics.get(topic)
            except KafkaException as exc:
                raise LogUnavailable(f"could not reach Kafka at {self.brokers}: {exc}") from exc
            if listed is None or listed.error is not None:
                return  # no topic yet: nothing was appended
            for partition in sorted(listed.partitions):
                try:
                    low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition),
                                                               timeout=self.timeout_seconds)
                except KafkaException as exc:
                    raise LogUnavailable(f"could not read {topic}[{partition}]'s offsets: {exc}") from exc
                offset = max(offsets.get(partition, 0), low)
                if offset >= high:
                    continue
                consumer.assign([TopicPartition(topic, partition, offset)])
                deadline = time.monotonic() + self.timeout_seconds
                while offset < high:
                    if time.monotonic() > deadline:
                        raise LogUnavailable(f"Kafka did not hand out {topic}[{partition}] up to "
                                             f"offset {high} within {self.timeout_seconds:g} s")
                    for message in consumer.consume(CONSUME_BATCH, 0.2):
                        error = message.error()
                        if error is not None:
                            if error.fatal():
                                raise LogUnavailable(f"Kafka consumer failed: {error}")
                            continue
                        message_offset, payload = message.offset(), message.value()
                        if message_offset is None or payload is None or message_offset < offset:
                            continue
                        yield _record(message, partition, message_offset, payload)
                        offset = message_offset + 1
                        deadline = time.monotonic() + self.timeout_seconds
                        if offset >= high:
                            break
                consumer.unassign()
        finally:
            consumer.close()

    def end_offset(self, stream: str, partition: int) -> int:
        consumer = self._consumer or self._start_consumer()
        _, high = consumer.get_watermark_offsets(TopicPartition(self.topic(stream), partition),
                                                 timeout=self.timeout_seconds)
        return int(high)

    def mark_delivered(self, stream: str, offsets: Mapping[int, int]) -> None:
        """Mirror the table's offsets into the group's (for Kafka's lag tools); retention frees data."""
        if self._consumer is None:
            return
        owned = self._assigned.get(stream, set())
        mirrored = [TopicPartition(self.topic(stream), p, o) for p, o in offsets.items() if p in owned]
        if mirrored:
            try:
                self._consumer.commit(offsets=mirrored, asynchronous=True)
            except KafkaException:
                pass  # only a mirror: the table holds the offsets that count

    def size_bytes(self) -> int:
        """The brokers hold the data under their own retention: nothing is held locally."""
        return 0

    def close(self) -> None:
        self._closed.set()
        if self._producer is not None:
            self._producer.flush(self.timeout_seconds)
            assert self._producer_thread is not None
            self._producer_thread.join()
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None


def _record(message: Message, partition: int, offset: int, payload: bytes) -> Record:
    count = dict(message.headers() or []).get(COUNT_HEADER) or b"0"
    return Record(partition, offset, offset + 1, int(count), message.timestamp()[1], payload)


def kafka_brokers(uri_rest: str) -> str:
    """``kafka://h1:9092,h2:9092`` → ``h1:9092,h2:9092`` (a path or query is not allowed)."""
    brokers = uri_rest.strip("/")
    if not brokers or "/" in brokers or "?" in brokers:
        raise ValueError(f"expected kafka://host:port[,host:port], got kafka://{uri_rest}")
    return brokers

