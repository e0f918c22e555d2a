"""Real Kafka, PostgreSQL and S3 servers for the tests, started on loopback by this code.

* ``KafkaService``: Apache Kafka in KRaft mode (one node, broker and controller),
  run from the Maven Central jars, fetched once into ``~/.cache/lakehose-test``.
* ``PostgresService``: the distribution's PostgreSQL server binaries
  (``apt-get install -y postgresql``), a throwaway cluster in a temp dir.
* ``S3Service``: moto's S3 server, in memory. Chosen over s3proxy because it is a
  pip install in the test extras (no second JVM, starts in about a second), and
  pyarrow's S3FileSystem, pyiceberg and DuckDB httpfs all work against it with
  path-style URLs. Its data lives in the process, so it does not survive kill().

Every service runs in its own session (process group) and dies with this process:
stop()/kill() end the whole group, an atexit hook ends whatever is left, and on
Linux the kernel SIGKILLs a service whose parent dies (start services from the main
thread: the signal fires when the starting thread exits). restart() kills with
SIGKILL and starts again on the same ports and data, so clients reconnect.

Manual use: ``python -m tests.services {kafka|postgres|s3}`` runs one in the
foreground; ``python -m tests.services fetch-kafka`` only fetches the Kafka jars.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import ctypes
import fcntl
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

KAFKA_VERSION = "4.1.1"
CACHE_DIR = Path(os.environ.get("LAKEHOSE_TEST_CACHE", Path.home() / ".cache" / "lakehose-test"))
POSTGRES_BIN_DIRS = ("/usr/lib/postgresql/15/bin", *sorted(
    (str(p) for p in Path("/usr/lib/postgresql").glob("*/bin")), reverse=True))
S3_ACCESS_KEY = "test"
S3_SECRET_KEY = "test"
S3_REGION = "us-east-1"

_LIVE: set[Service] = set()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL me when the process that started me exits."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG


def _tail(path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class ServiceError(RuntimeError):
    pass


class Service:
    """A server process in its own process group, with a log file in its own temp dir."""

    name = "service"
    stop_signal = signal.SIGTERM
    start_timeout = 90.0

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=f"lakehose-{self.name}-"))
        self.log_path = self.dir / f"{self.name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.started_in: float | None = None  # seconds the last start() took

    # What subclasses provide.
    def _prepare(self) -> None:
        """Once, before the first start: pick ports, write config, initialise data."""

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _popen_kwargs(self) -> dict[str, Any]:
        return {}

    def _ready(self) -> bool:
        """True once the service answers real client requests; called until it does."""
        raise NotImplementedError

    @property
    def address(self) -> str:
        """Where clients connect, as a URI."""
        raise NotImplementedError

    # Life cycle.
    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float | None = None) -> Self:
        if self.running:
            return self
        began = time.monotonic()
        if not (self.dir / ".prepared").exists():
            self._prepare()
            (self.dir / ".prepared").touch()
        with open(self.log_path, "ab") as log:
            log.write(f"\n==== start {time.strftime('%H:%M:%S')} ====\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                self._command(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_die_with_parent, **self._popen_kwargs())
        _LIVE.add(self)
        deadline = began + (timeout or self.start_timeout)
        last: Exception | None = None
        while True:
            if self.process.poll() is not None:
                code = self.process.returncode
                raise ServiceError(f"{self.name} exited with {code} while starting; "
                                   f"log {self.log_path}:\n{_tail(self.log_path)}")
            try:
                if self._ready():
                    break
            except Exception as exc:  # noqa: BLE001 - not ready yet, whatever the reason
                last = exc
            if time.monotonic() > deadline:
                self.kill()
                raise ServiceError(f"{self.name} not ready after {timeout or self.start_timeout:.0f}s "
                                   f"({last!r}); log {self.log_path}:\n{_tail(self.log_path)}")
            time.sleep(0.2)
        self.started_in = time.monotonic() - began
        return self

    def kill(self) -> None:
        """SIGKILL the whole process group: a crash, no shutdown work."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        _LIVE.discard(self)

    def stop(self, timeout: float = 30) -> None:
        """The graceful shutdown; SIGKILL if it takes longer than ``timeout``."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, self.stop_signal)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self.kill()  # also ends anything left in the group

    def restart(self, timeout: float | None = None) -> Self:
        """Crash (SIGKILL) and start again on the same ports and data."""
        self.kill()
        return self.start(timeout)

    def pause(self) -> None:
        """SIGSTOP the group: the service hangs, connections stay open."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGCONT)

    def close(self) -> None:
        """Stop and delete the data."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


@atexit.register
def _kill_all() -> None:
    for service in list(_LIVE):
        with contextlib.suppress(Exception):
            service.kill()


# --- Kafka -------------------------------------------------------------------------

_KAFKA_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>lakehose.test</groupId>
  <artifactId>kafka-server</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>{version}</version>
    </dependency>
    <!-- Kafka logs through SLF4J 1.7: bind it to the log4j2 that kafka_2.13 brings. -->
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>2.24.3</version>
    </dependency>
  </dependencies>
</project>
"""

_LOG4J2 = """status = error
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.out.ref = out
logger.raft.name = org.apache.kafka.raft
logger.raft.level = warn
logger.request.name = kafka.request.logger
logger.request.level = warn
"""


def fetch_kafka(version: str = KAFKA_VERSION) -> Path:
    """The directory of the Kafka server jars, fetched with Maven on first use."""
    root = CACHE_DIR / f"kafka-{version}"
    libs, done = root / "libs", root / "fetched"
    if done.exists():
        return libs
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one fetch at a time; the others wait and reuse it
        if done.exists():
            return libs
        if shutil.which("mvn") is None:
            raise ServiceError("mvn not found: install Maven (apt-get install -y maven) to fetch Kafka")
        shutil.rmtree(libs, ignore_errors=True)  # a half download is redone
        (root / "pom.xml").write_text(_KAFKA_POM.format(version=version))
        result = subprocess.run(
            ["mvn", "-q", "-B", "-f", str(root / "pom.xml"), "dependency:copy-dependencies",
             f"-DoutputDirectory={libs}", "-DincludeScope=runtime"],
            capture_output=True, text=True)
        if result.returncode != 0 or not any(libs.glob(f"kafka_2.13-{version}.jar")):
            raise ServiceError(f"fetching Kafka {version} with Maven failed:\n"
                               f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
        done.write_text(f"{version}\n")
    return libs


class KafkaService(Service):
    """One KRaft node (broker + controller) on 127.0.0.1."""

    name = "kafka"
    start_timeout = 120.0

    def __init__(self) -> None:
        super().__init__()
        self.port = 0
        self.controller_port = 0
        self.libs: Path | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def uri(self) -> str:
        return f"kafka://{self.bootstrap}"

    @property
    def address(self) -> str:
        return self.uri

    def _prepare(self) -> None:
        self.libs = fetch_kafka()
        self.port, self.controller_port = free_port(), free_port()
        while self.controller_port == self.port:
            self.controller_port = free_port()
        (self.dir / "log4j2.properties").write_text(_LOG4J2)
        (self.dir / "server.properties").write_text(f"""\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{self.controller_port}
listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs={self.dir / 'data'}
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
group.initial.rebalance.delay.ms=0
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=2000
""")
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        result = subprocess.run(
            ["java", "-XX:TieredStopAtLevel=1", "-cp", f"{self.libs}/*",
             f"-Dlog4j2.configurationFile={self.dir / 'log4j2.properties'}",
             # --cluster-id=X: an id starting with '-' would read as an option
             "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}",
             "-c", str(self.dir / "server.properties")],
            capture_output=True, text=True)
        if result.returncode != 0:
            raise ServiceError(f"kafka storage format failed:\n{result.stdout}\n{result.stderr}")

    def _command(self) -> list[str]:
        assert self.libs is not None
        # C1 only and the serial GC: half the start time on a small machine, ample for tests.
        return ["java", "-Xms64m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={self.dir / 'log4j2.properties'}",
                "-cp", f"{self.libs}/*", "kafka.Kafka", str(self.dir / "server.properties")]

    def _ready(self) -> bool:
        from confluent_kafka import Consumer, KafkaException, Producer
        from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

        base: dict[str, str | int | float | bool] = {"bootstrap.servers": self.bootstrap, "log_level": 0}
        admin = AdminClient(base)
        topics = admin.list_topics(timeout=2).topics
        probe = "_lakehose_probe"
        if probe not in topics:
            for future in admin.create_topics([NewTopic(probe, 1, 1)], operation_timeout=5).values():
                with contextlib.suppress(KafkaException):  # already exists
                    future.result(10)
        # An idempotent produce: needs a producer id from the controller.
        producer = Producer({**base, "enable.idempotence": True, "message.timeout.ms": 5000})
        errors: list[object] = []
        producer.produce(probe, b"probe", on_delivery=lambda err, _msg: errors.append(err))
        if producer.flush(6) != 0 or errors != [None]:
            raise ServiceError(f"probe produce failed: {errors}")
        # A consumer group join and a commit: needs the group coordinator loaded.
        consumer = Consumer({**base, "group.id": f"_lakehose_probe_{uuid.uuid4().hex}",
                             "auto.offset.reset": "earliest", "enable.auto.commit": False,
                             "session.timeout.ms": 6000})
        try:
            consumer.subscribe([probe])
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                message = consumer.poll(0.5)
                if message is not None and message.error() is None:
                    consumer.commit(message=message, asynchronous=False)
                    return True
            return False
        finally:
            consumer.close()


# --- PostgreSQL --------------------------------------------------------------------


def postgres_bin_dir() -> Path:
    for candidate in POSTGRES_BIN_DIRS:
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "postgres").exists():
            return Path(candidate)
    raise ServiceError("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin: "
                       "apt-get install -y postgresql")


class PostgresService(Service):
    """A throwaway PostgreSQL cluster: trust auth, fsync off, user ``postgres``."""

    name = "postgres"
    stop_signal = signal.SIGINT  # "fast" shutdown; SIGTERM would wait for clients to leave

    def __init__(self) -> None:
        super().__init__()
        self.bin = postgres_bin_dir()
        self.port = 0
        self.run_as: pwd.struct_passwd | None = None
        if os.geteuid() == 0:  # the server refuses to run as root
            for user in ("postgres", "nobody"):
                with contextlib.suppress(KeyError):
                    self.run_as = pwd.getpwnam(user)
                    break
            if self.run_as is None:
                raise ServiceError("running as root and no 'postgres' or 'nobody' user to run PostgreSQL")
            os.chown(self.dir, self.run_as.pw_uid, self.run_as.pw_gid)

    def uri(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    @property
    def address(self) -> str:
        return self.uri()

    def _popen_kwargs(self) -> dict[str, Any]:
        if self.run_as is None:
            return {}
        return {"user": self.run_as.pw_uid, "group": self.run_as.pw_gid, "extra_groups": [],
                "cwd": self.dir, "env": {**os.environ, "HOME": str(self.dir), "USER": self.run_as.pw_name}}

    def _prepare(self) -> None:
        self.port = free_port()
        with open(self.log_path, "ab") as log:
            result = subprocess.run(
                [str(self.bin / "initdb"), "-D", str(self.dir / "data"), "-A", "trust", "-U", "postgres",
                 "--no-sync", "-E", "UTF8", "--locale", "C"],
                stdout=log, stderr=subprocess.STDOUT, **self._popen_kwargs())
        if result.returncode != 0:
            raise ServiceError(f"initdb failed:\n{_tail(self.log_path)}")

    def _command(self) -> list[str]:
        # The server itself in the foreground, not pg_ctl: it then lives in our process group.
        # fsync off only risks data on a machine crash; a SIGKILL of the server (restart())
        # keeps every commit, so synchronous_commit stays on.
        return [str(self.bin / "postgres"), "-D", str(self.dir / "data"), "-h", "127.0.0.1",
                "-p", str(self.port), "-k", str(self.dir), "-c", "fsync=off",
                "-c", "full_page_writes=off",
                "-c", "max_connections=200", "-c", "shared_buffers=32MB"]

    def _ready(self) -> bool:
        import psycopg

        with psycopg.connect(self.uri(), connect_timeout=2) as conn:
            conn.execute("SELECT 1")
        return True

    def create_database(self, name: str) -> str:
        """CREATE DATABASE ``name``; returns its URI."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.uri(), autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.uri(name)

    def drop_database(self, name: str) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.uri(), autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# --- S3 ----------------------------------------------------------------------------


class S3Service(Service):
    """moto's S3 API server, in memory; dummy credentials test/test, region us-east-1."""

    name = "s3"
    start_timeout = 60.0
    access_key = S3_ACCESS_KEY
    secret_key = S3_SECRET_KEY
    region = S3_REGION

    def __init__(self) -> None:
        super().__init__()
        self.port = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        return self.endpoint

    def _prepare(self) -> None:
        self.port = free_port()

    def _command(self) -> list[str]:
        moto = Path(sys.executable).parent / "moto_server"
        return [str(moto) if moto.exists() else "moto_server", "-H", "127.0.0.1", "-p", str(self.port)]

    def _ready(self) -> bool:
        self.client().list_buckets()
        return True

    def client(self) -> Any:
        """A boto3 S3 client for this server (path-style URLs)."""
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key, region_name=self.region,
                            config=Config(s3={"addressing_style": "path"},
                                          retries={"max_attempts": 2}, connect_timeout=2))

    def create_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def delete_bucket(self, name: str) -> None:
        """Delete the bucket and everything in it."""
        client = self.client()
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=name, Delete={"Objects": keys})
        client.delete_bucket(Bucket=name)


SERVICES: dict[str, type[Service]] = {"kafka": KafkaService, "postgres": PostgresService, "s3": S3Service}


@contextlib.contextmanager
def running(kind: type[Service]) -> Iterator[Service]:
    service = kind()
    try:
        yield service.start()
    finally:
        service.close()


def main(argv: list[str]) -> int:
    if argv == ["fetch-kafka"]:
        print(fetch_kafka())
        return 0
    if len(argv) != 1 or argv[0] not in SERVICES:
        print("usage: python -m tests.services {kafka|postgres|s3|fetch-kafka}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with running(SERVICES[argv[0]]) as service:
        print(f"{service.name} ready in {service.started_in:.1f}s at {service.address} "
              f"(log {service.log_path}); "
              "Ctrl-C to stop", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while service.running:
                time.sleep(0.5)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
