"""Settings: defaults, then the config file, then ``LAKEHOSE_<SECTION>__<KEY>``.

Validation does no I/O and reports every problem at once; unknown keys are
errors, so a typo never silently falls back to a default. Backend locations are
URIs (``wal://``, ``sqlite:///``, ``file://``) so that the same code runs
embedded and at scale; their defaults live inside the data folder.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from lakehose.errors import ConfigError

MiB = 1024 * 1024
GiB = 1024 * MiB
CONFIG_FILE_NAME = "lakehose.toml"
ENV_PREFIX = "LAKEHOSE_"


class _Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class CatalogSettings(_Section):
    uri: str = ""  # default: sqlite:///<data-dir>/catalog.db


class LogSettings(_Section):
    uri: str = ""  # default: wal://<data-dir>/log
    segment_bytes: int = msgspec.field(default=64 * MiB)
    max_bytes: int = 20 * GiB
    min_free_disk_bytes: int = 1 * GiB
    # kafka:// only: partitions of a stream's topic when lakehose creates it, the topic
    # name prefix, and how long an append may wait for the brokers before a 503.
    partitions: int = 6
    topic_prefix: str = "lakehose."
    kafka_timeout_seconds: float = 10.0


class LakeSettings(_Section):
    warehouse: str = ""  # default: file://<data-dir>/warehouse; or s3://bucket/prefix
    namespace: str = "events"
    # s3:// only; each empty one falls back to AWS_ENDPOINT_URL, AWS_REGION (or
    # AWS_DEFAULT_REGION), AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY.
    s3_endpoint: str = ""  # e.g. http://127.0.0.1:9000 for an S3-API server; path-style URLs
    s3_region: str = ""
    s3_access_key_id: str = ""
    s3_secret_access_key: str = ""


class CollectorSettings(_Section):
    """The HTTP server (``collector``, ``serve``, ``up``) and its ingestion limits.

    The limits from ``max_connections`` on hold for every route and are applied by the
    HTTP layer (``lakehose.http_limits``) before authentication and before buffering.
    """

    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 8 * MiB
    max_events_per_request: int = 10_000
    max_event_bytes: int = 1 * MiB
    future_window_seconds: float = 24 * 3600.0
    max_inflight_requests: int = 32  # bodies being decoded, validated and appended at once
    max_buffered_body_bytes: int = 128 * MiB  # bodies still arriving, all connections together
    max_buffered_body_bytes_per_key: int = 64 * MiB  # of those, what one write key's bodies may hold
    retry_after_seconds: int = 5
    max_connections: int = 1000  # open at once; more are closed at once with a 503
    max_request_bytes: int = 1 * MiB  # body of any route but ingestion (queries, charts, schemas)
    max_header_bytes: int = 64 * 1024  # request line and headers; 431 beyond
    max_headers: int = 100  # 431 beyond
    header_timeout_seconds: float = 10.0  # from the connection (or the last answer) to the headers' end
    body_timeout_seconds: float = 30.0  # from the headers' end to the body's end, however it trickles
    # after an early answer (413, 431, 408) the rest of the request is read and discarded, up to
    # these bounds, before closing: a client that sends everything before reading still reads it
    linger_seconds: float = 5.0
    linger_bytes: int = 64 * MiB


class DeliverySettings(_Section):
    max_events: int = 1_000_000
    max_bytes: int = 128 * MiB
    max_seconds: float = 60.0


class QuerySettings(_Section):
    row_limit: int = 10_000
    timeout_seconds: float = 30.0
    # DuckDB's memory_limit, shared by every running query (DuckDB's own default is 80 % of RAM)
    memory_limit_bytes: int = 1 << 30
    # what queries may spill to <data_dir>/query-spill when over memory_limit_bytes
    spill_limit_bytes: int = 4 << 30
    max_result_bytes: int = 64 << 20  # a result over this is refused, not cut (unlike row_limit)
    max_concurrent: int = 4  # queries running at once, HTTP and PostgreSQL endpoint together
    queue_seconds: float = 2.0  # how long a query waits for a slot before 429 / SQLSTATE 53300


class PgwireSettings(_Section):
    """The PostgreSQL endpoint of the query process (``lakehose serve`` / ``up``), for BI tools."""

    enabled: bool = True
    host: str = "127.0.0.1"  # passwords (read tokens) travel in clear text: loopback by default
    port: int = 5433
    # every open connection counts, logged in or not; one more is refused with SQLSTATE 53300
    max_connections: int = 100
    # from connect to the accepted password; a client that takes longer is dropped
    auth_timeout_seconds: float = 10.0
    # one message after login (a query text, a Bind's values); before login the limit is 10 000 bytes
    max_message_bytes: int = 8 * MiB
    # per session: server-side cursors and bound portals each hold a result, up to [query] row_limit rows
    max_cursors: int = 64
    max_prepared_statements: int = 1000


class AuditSettings(_Section):
    # how often lakehose up / serve audit the last 24 hours (for the discrepancy gauge); 0: never
    interval_seconds: float = 300.0


class RegistrySettings(_Section):
    """Caps on what the registry accepts, so one schema or client cannot grow it without bound."""

    max_streams: int = 1000
    max_columns: int = 500  # fields at every depth of one schema (objects, arrays and leaves)
    max_depth: int = 8  # nesting of objects and arrays; a flat event is 1
    # Events naming an unknown stream create it (schema inferred) when this is on, or
    # when the write key was made with --auto-create; only names matching the pattern.
    auto_create: bool = False
    auto_create_pattern: str = "[a-z][a-z0-9_]{0,62}"
    auto_create_unknown_fields: str = "evolve"  # the policy auto-created streams get


class MaintenanceSettings(_Section):
    """What ``lakehose maintain`` (run by ``lakehose up``) does to every table, and how often."""

    enabled: bool = True  # lakehose up runs the jobs beside delivery
    interval_seconds: float = 600.0  # between runs; the first run comes one interval after start
    # compaction: a partition with min_files files under 3/4 of target_file_bytes is rewritten
    # into files of about target_file_bytes, each sorted by `sort` ("ts") or left in order ("")
    target_file_bytes: int = 256 * MiB
    min_files: int = 5
    sort: str = ""
    # expiry: a snapshot goes once it is older than snapshot_max_age_seconds and not one of
    # the keep_snapshots newest; manifests are merged once a snapshot lists more than max_manifests.
    # Each snapshot kept adds ~0.6 ms of CPU to every commit: keep the window short at high rates
    keep_snapshots: int = 10
    snapshot_max_age_seconds: float = 900.0
    max_manifests: int = 16
    # files no snapshot references (a commit that failed, old metadata) are deleted only once
    # older than this: younger ones may belong to a commit still in flight
    orphan_grace_seconds: float = 3600.0
    rejected_retention_days: float = 0.0  # events._rejected rows older than this go; 0 keeps all


class Settings(_Section):
    data_dir: str = "./lakehose-data"
    catalog: CatalogSettings = msgspec.field(default_factory=CatalogSettings)
    log: LogSettings = msgspec.field(default_factory=LogSettings)
    lake: LakeSettings = msgspec.field(default_factory=LakeSettings)
    collector: CollectorSettings = msgspec.field(default_factory=CollectorSettings)
    delivery: DeliverySettings = msgspec.field(default_factory=DeliverySettings)
    query: QuerySettings = msgspec.field(default_factory=QuerySettings)
    pgwire: PgwireSettings = msgspec.field(default_factory=PgwireSettings)
    registry: RegistrySettings = msgspec.field(default_factory=RegistrySettings)
    audit: AuditSettings = msgspec.field(default_factory=AuditSettings)
    maintenance: MaintenanceSettings = msgspec.field(default_factory=MaintenanceSettings)

    @property
    def catalog_uri(self) -> str:
        return self.catalog.uri or f"sqlite:///{Path(self.data_dir).resolve() / 'catalog.db'}"

    @property
    def log_uri(self) -> str:
        return self.log.uri or f"wal://{Path(self.data_dir).resolve() / 'log'}"

    @property
    def warehouse_uri(self) -> str:
        return self.lake.warehouse or (Path(self.data_dir).resolve() / "warehouse").as_uri()


_POSITIVE = {
    "log": ("segment_bytes", "max_bytes", "partitions", "kafka_timeout_seconds"),
    "collector": ("max_body_bytes", "max_events_per_request", "max_event_bytes",
                  "max_inflight_requests", "max_buffered_body_bytes", "max_buffered_body_bytes_per_key",
                  "max_connections", "max_request_bytes",
                  "max_header_bytes", "max_headers", "header_timeout_seconds",
                  "body_timeout_seconds", "linger_seconds", "linger_bytes"),
    "delivery": ("max_events", "max_bytes", "max_seconds"),
    "query": ("row_limit", "timeout_seconds", "memory_limit_bytes", "spill_limit_bytes", "max_result_bytes",
              "max_concurrent"),
    "pgwire": ("port", "max_connections", "auth_timeout_seconds", "max_message_bytes", "max_cursors",
               "max_prepared_statements"),
    "registry": ("max_streams", "max_columns", "max_depth"),
    "maintenance": ("interval_seconds", "target_file_bytes", "min_files", "keep_snapshots",
                    "max_manifests"),
}
_NOT_NEGATIVE = {"query": ("queue_seconds",),
                 "maintenance": ("snapshot_max_age_seconds", "orphan_grace_seconds",
                                 "rejected_retention_days")}


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def env_overrides(environ: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
    """Nested settings from ``LAKEHOSE_<SECTION>__<KEY>`` variables."""
    tree: dict[str, Any] = {}
    problems: list[str] = []
    for name, value in environ.items():
        # Only LAKEHOSE_<SECTION>__<KEY> names are settings; others (LAKEHOSE_DATA_DIR,
        # LAKEHOSE_WRITE_KEY for clients, ...) are not this function's business.
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        parts = name[len(ENV_PREFIX):].lower().split("__")
        if len(parts) != 2 or not all(parts):
            problems.append(f"{name}: expected LAKEHOSE_<SECTION>__<KEY>")
            continue
        tree.setdefault(parts[0], {})[parts[1]] = value
    return tree, problems


_KINDS = {int: "a whole number", float: "a number", bool: "true or false", str: "a string"}


def _did_you_mean(guesses: list[str]) -> str:
    return f"; did you mean {' or '.join(guesses)}?" if guesses else ""


def _section_types() -> dict[str, type[_Section]]:
    return {f.name: f.type for f in msgspec.structs.fields(Settings) if isinstance(f.type, type)
            and issubclass(f.type, _Section)}


def _problems(tree: Mapping[str, Any], from_env: Mapping[tuple[str, str], str]) -> list[str]:
    """Every unknown name and badly typed value in ``tree``, each in one line that says how to fix it.

    msgspec stops at a section's first problem and speaks of "Object contains unknown
    field"; this walks every key so one run of ``lakehose`` lists everything to fix,
    with the closest names: in the same section first, then the same key elsewhere.
    """
    sections = _section_types()
    fields_of = {section: {f.name: f.type for f in msgspec.structs.fields(kind)}
                 for section, kind in sections.items()}

    def elsewhere(key: str, besides: str = "") -> list[str]:
        return [f"[{section}] {key}" for section, fields in fields_of.items()
                if key in fields and section != besides]

    problems: list[str] = []
    for section, values in tree.items():
        if section == "data_dir":
            continue
        if section not in sections:
            env_names = [name for (s, _), name in from_env.items() if s == section]
            if env_names:
                problems.append(f"{', '.join(env_names)}: unknown section {section!r}"
                                + _did_you_mean(difflib.get_close_matches(section, sections, 1)))
            elif isinstance(values, Mapping):
                problems.append(f"unknown section [{section}]" + _did_you_mean(
                    [f"[{s}]" for s in difflib.get_close_matches(section, sections, 1)]))
            else:
                problems.append(f"unknown setting {section!r} outside any section"
                                + _did_you_mean(elsewhere(section)))
            continue
        if not isinstance(values, Mapping):
            problems.append(f"[{section}] must be a section of settings, not {values!r}")
            continue
        fields = fields_of[section]
        for key, value in values.items():
            where = f"[{section}] {key}"
            if (section, key) in from_env:
                where = f"{from_env[section, key]} ({where})"
            if key not in fields:
                guesses = difflib.get_close_matches(key, fields, 1) + elsewhere(key, section)
                problems.append(f"{where}: no such key" + _did_you_mean(guesses))
                continue
            try:
                msgspec.convert(value, fields[key], strict=False)
            except msgspec.ValidationError:
                problems.append(f"{where} = {value!r}: expected {_KINDS.get(fields[key], fields[key])}")
    return problems


def parse_settings(
    file_tree: Mapping[str, Any], environ: Mapping[str, str], data_dir: str | None
) -> Settings:
    """Build settings from already-read inputs; raises ConfigError listing every problem."""
    tree: dict[str, Any] = {}
    _merge(tree, file_tree)
    env_tree, problems = env_overrides(environ)
    _merge(tree, env_tree)
    from_env = {(section, key): f"{ENV_PREFIX}{section.upper()}__{key.upper()}"
                for section, values in env_tree.items() for key in values}
    if data_dir is not None:
        tree["data_dir"] = data_dir
    elif "LAKEHOSE_DATA_DIR" in environ:
        tree["data_dir"] = environ["LAKEHOSE_DATA_DIR"]
    problems += _problems(tree, from_env)
    if problems:
        raise ConfigError(problems)
    settings = msgspec.convert(tree, Settings, strict=False)
    for section, keys in _POSITIVE.items():
        for key in keys:
            if getattr(getattr(settings, section), key) <= 0:
                problems.append(f"[{section}] {key} must be positive")
    for section, keys in _NOT_NEGATIVE.items():
        for key in keys:
            if getattr(getattr(settings, section), key) < 0:
                problems.append(f"[{section}] {key} must not be negative")
    if settings.maintenance.sort not in ("", "ts"):
        problems.append('[maintenance] sort must be "ts" or "" (no sort)')
    if settings.audit.interval_seconds < 0:
        problems.append("[audit] interval_seconds must be positive, or 0 to turn it off")
    registry = settings.registry
    if registry.auto_create_unknown_fields not in ("reject", "evolve", "keep"):
        problems.append("[registry] auto_create_unknown_fields must be reject, evolve or keep")
    try:
        re.compile(registry.auto_create_pattern)
    except re.error as exc:
        problems.append(f"[registry] auto_create_pattern is not a regular expression: {exc}")
    if problems:
        raise ConfigError(problems)
    return settings


def load_settings(data_dir: str | None = None, config_file: str | None = None) -> Settings:
    """Read the config file (explicit, else ``<data-dir>/lakehose.toml`` if present) and env."""
    environ = os.environ
    resolved_dir = data_dir or environ.get("LAKEHOSE_DATA_DIR") or "./lakehose-data"
    path = config_file or environ.get("LAKEHOSE_CONFIG")
    candidate = Path(path) if path else Path(resolved_dir) / CONFIG_FILE_NAME
    file_tree: dict[str, Any] = {}
    if candidate.exists():
        try:
            file_tree = tomllib.loads(candidate.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([f"{candidate}: {exc}"]) from exc
    elif path:
        raise ConfigError([f"config file not found: {candidate}"])
    try:
        return parse_settings(file_tree, environ, data_dir)
    except ConfigError as exc:
        raise ConfigError(exc.problems, str(candidate) if file_tree else None) from None
