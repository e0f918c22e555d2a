"""The ``lakehose`` command: ``up``, ``collector``, ``streams``, ``keys`` and friends.

Every command takes ``--data-dir`` (else ``LAKEHOSE_DATA_DIR``, else
``./lakehose-data``) and ``--config`` after its name.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar

from lakehose.config import Settings, load_settings
from lakehose.errors import LakehoseError, NotFound
from lakehose.private import open_private

if TYPE_CHECKING:  # the commands import their modules when they run
    from lakehose.maintenance.compact import Compacted
    from lakehose.maintenance.expire import Expired
    from lakehose.maintenance.forget import Forgotten
    from lakehose.maintenance.jobs import Outcome

T = TypeVar("T")


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", help="data folder (default: $LAKEHOSE_DATA_DIR or ./lakehose-data)")
    common.add_argument("--config", help="config file (default: <data-dir>/lakehose.toml if present)")
    return common


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(args.data_dir, args.config)
    open_private(settings.data_dir)
    return settings


def _existing_settings(args: argparse.Namespace) -> Settings:
    """Settings of a data folder that must hold lakehose's data already: a command that only reads
    creates nothing, and says where it looked when there is nothing there."""
    settings = load_settings(args.data_dir, args.config)
    if settings.catalog_uri.startswith("sqlite:///"):  # the embedded catalog, in the data folder
        catalog = Path(settings.catalog_uri.removeprefix("sqlite:///"))
        if not catalog.exists():
            chosen = ("--data-dir" if args.data_dir else "LAKEHOSE_DATA_DIR"
                      if os.environ.get("LAKEHOSE_DATA_DIR") else "the default data folder")
            raise NotFound(f"no lakehose data in {Path(settings.data_dir).resolve()} ({chosen}; "
                           f"{catalog.name} is not there): give the folder lakehose up runs on with "
                           "--data-dir DIR or LAKEHOSE_DATA_DIR")
    open_private(settings.data_dir, create=False)
    return settings


def _when(stamp: float | None) -> str:
    if stamp is None:
        return "-"
    return dt.datetime.fromtimestamp(stamp, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def _print_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [list(map(str, header))] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def _registry(settings: Settings):  # type: ignore[no-untyped-def]
    from lakehose.registry.store import Registry

    return Registry(settings.catalog_uri)


# commands -------------------------------------------------------------------
def _hint_overrides(args: argparse.Namespace) -> None:
    """``--max-seconds`` and friends on ``up``/``deliver`` are global buffering hints."""
    for name in ("max_seconds", "max_events", "max_bytes"):
        value = getattr(args, name, None)
        if value is not None:
            os.environ[f"LAKEHOSE_DELIVERY__{name.upper()}"] = str(value)


def _pg_overrides(args: argparse.Namespace) -> None:
    """``--pg-host``/``--pg-port`` set [pgwire] for this process and the children of ``up``."""
    if getattr(args, "pg_host", None):
        os.environ["LAKEHOSE_PGWIRE__HOST"] = args.pg_host
    if getattr(args, "pg_port", None) is not None:
        os.environ["LAKEHOSE_PGWIRE__PORT"] = str(args.pg_port)


def cmd_collector(args: argparse.Namespace) -> int:
    from lakehose.http import serve

    _pg_overrides(args)
    settings = _settings(args)
    serve(settings, args.host or settings.collector.host, args.port or settings.collector.port,
          collect=True, query=args.with_query)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from lakehose.http import serve

    _pg_overrides(args)
    settings = _settings(args)
    serve(settings, args.host or settings.collector.host, args.port or settings.collector.port,
          collect=False, query=True)
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from lakehose.up import run_up

    _hint_overrides(args)
    _pg_overrides(args)
    settings = _settings(args)
    options = [o for name in ("data_dir", "config") if getattr(args, name)
               for o in (f"--{name.replace('_', '-')}", getattr(args, name))]
    return run_up(settings, args.host or settings.collector.host,
                  args.port or settings.collector.port, args.config, options)


def cmd_query(args: argparse.Namespace) -> int:
    from lakehose.query.api import result_csv, result_json
    from lakehose.query.engine import QueryEngine

    settings = _existing_settings(args)
    result = QueryEngine(settings).run(args.sql, row_limit=args.limit)
    if args.format == "csv":
        sys.stdout.write(result_csv(result.table).decode())
    elif args.format == "json":
        print(json.dumps(result_json(result), default=str, ensure_ascii=False))
    else:
        table = result.table
        columns = [column.to_pylist() for column in table.columns]
        _print_table(table.column_names, [["NULL" if v is None else v for v in row]
                                          for row in zip(*columns)])
        print(f"({table.num_rows} row{'s' if table.num_rows != 1 else ''}"
              f"{', truncated' if result.truncated else ''})", file=sys.stderr)
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    """Exit 1 when the books do not balance, so a cron job can alert on it."""
    from lakehose.audit import Auditor, iso_hour, parse_since

    settings = _existing_settings(args)
    since = parse_since(args.since)
    auditor = Auditor(settings)
    try:
        report = auditor.run(since, args.stream)
    finally:
        auditor.close()
    if args.json:
        print(json.dumps(report.as_json(), indent=2))
        return 0 if report.ok else 1
    if report.hours:
        _print_table(["STREAM", "HOUR (UTC)", "ACCEPTED", "LANDED", "REPLAYED", "REJECTED@COLLECTOR",
                      "REJECTED@DELIVERY", "IN FLIGHT", "DISCREPANCY"],
                     [(h.stream, iso_hour(h.hour) + ("" if h.closed else " (open)"), h.accepted,
                       h.landed, h.replayed, h.rejected_collector, h.rejected_delivery,
                       "?" if h.in_flight is None else h.in_flight,
                       "?" if h.discrepancy is None else h.discrepancy) for h in report.hours])
    else:
        print(f"no events since {iso_hour(since)}")
    for note in report.notes:
        print(f"note: {note}")
    problems = report.problems()
    print("\n".join(["discrepancies:", *(f"  {p}" for p in problems)]) if problems
          else "no discrepancies")
    return 0 if report.ok else 1


def cmd_deliver(args: argparse.Namespace) -> int:
    # Catch SIGTERM before the heavy imports: a stop asked for while starting up
    # must still drain and commit, not kill the process half-way.
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    from lakehose.delivery.worker import run_delivery

    _hint_overrides(args)
    if args.metrics_port is not None:
        from lakehose.metrics import serve_metrics

        serve_metrics(args.metrics_host, args.metrics_port)
    run_delivery(_settings(args), stop)
    return 0


def cmd_send(args: argparse.Namespace) -> int:
    """Exit 1 when any event was rejected, so a script notices."""
    from lakehose.send import send_demo, send_file

    if args.demo == (args.file is not None):
        raise ValueError("give a FILE of events (NDJSON or a JSON array; - for stdin) or --demo")
    settings = _settings(args)
    key = args.key or os.environ.get("LAKEHOSE_WRITE_KEY")
    if args.demo:
        tally = send_demo(settings, args.url, key, args.events, args.rate, args.seed, args.days)
    else:
        tally = send_file(settings, args.file, args.url, key, args.stream, args.rate)
    return 1 if tally.rejected else 0


def _hints_from(args: argparse.Namespace) -> dict[str, float]:
    return {k: v for k, v in (("max_events", args.max_events), ("max_bytes", args.max_bytes),
                              ("max_seconds", args.max_seconds),
                              ("retention_days", args.retention_days)) if v is not None}


def cmd_streams_create(args: argparse.Namespace) -> int:
    from lakehose.streams import create_stream

    document = json.loads(Path(args.schema).read_text())
    stream = create_stream(_settings(args), args.name, document, _hints_from(args), args.unknown_fields)
    print(f"created stream {stream.name} (version {stream.version}, "
          f"{len(stream.schema.fields)} fields; table events.{stream.name})")
    return 0


def cmd_streams_delete(args: argparse.Namespace) -> int:
    from lakehose.streams import delete_stream

    settings = _existing_settings(args)
    table = f"{settings.lake.namespace}.{args.name}"
    if not args.yes:
        raise ValueError(f"this deletes stream {args.name}, its table {table} and the events of its log "
                         "for good (its rejected events stay); add --yes to do it")
    delete_stream(settings, args.name)
    print(f"deleted stream {args.name}, its table {table} and its log")
    return 0


def cmd_streams_update(args: argparse.Namespace) -> int:
    from lakehose.streams import update_stream

    settings = _settings(args)
    if args.schema:
        old, new = update_stream(settings, args.name, json.loads(Path(args.schema).read_text()))
        print(f"stream {args.name}: version {new.version}" if new.version != old.version
              else f"stream {args.name}: schema unchanged (version {old.version})")
    if args.unknown_fields:
        from lakehose.streams import set_unknown_fields

        set_unknown_fields(settings, args.name, args.unknown_fields)
        print(f"stream {args.name}: unknown_fields = {args.unknown_fields}")
    hints = _hints_from(args)
    if hints:
        registry = _registry(settings)
        registry.set_hints(args.name, {**registry.get_stream(args.name).hints, **hints})
        print(f"stream {args.name}: hints {hints}")
    return 0


def cmd_streams_show(args: argparse.Namespace) -> int:
    settings = _existing_settings(args)
    stream = _registry(settings).get_stream(args.name)
    d = settings.delivery
    hints = {"max_events": d.max_events, "max_bytes": d.max_bytes, "max_seconds": d.max_seconds,
             **stream.hints}
    print(json.dumps({"name": stream.name, "version": stream.version,
                      "unknown_fields": stream.unknown_fields,
                      "table": f"{settings.lake.namespace}.{stream.name}", "hints": hints,
                      "schema": stream.schema.document}, indent=2))
    return 0


def cmd_streams_history(args: argparse.Namespace) -> int:
    versions = _registry(_existing_settings(args)).history(args.name)
    for v in versions:
        print(f"version {v.version}  {_when(v.created_at)}  {json.dumps(v.schema.document)}")
    return 0


def cmd_streams_list(args: argparse.Namespace) -> int:
    streams = _registry(_existing_settings(args)).list_streams()
    if args.json:
        print(json.dumps([{"name": s.name, "version": s.version, "schema": s.schema.document,
                           "hints": s.hints} for s in streams], indent=2))
        return 0
    _print_table(["NAME", "VERSION", "FIELDS", "HINTS", "CREATED"],
                 [(s.name, s.version, len(s.schema.fields),
                   ",".join(f"{k}={v}" for k, v in s.hints.items()) or "-", _when(s.created_at))
                  for s in streams])
    return 0


def cmd_keys_create(args: argparse.Namespace) -> int:
    print(_registry(_settings(args)).credentials.create("key", args.name, "write", args.auto_create))
    print(f"(write key {args.name!r}: shown once, only its hash is stored)", file=sys.stderr)
    return 0


def cmd_tokens_create(args: argparse.Namespace) -> int:
    kind = "admin" if args.admin else "read"
    print(_registry(_settings(args)).credentials.create("token", args.name, kind))
    print(f"({kind} token {args.name!r}: shown once, only its hash is stored)", file=sys.stderr)
    return 0


def _list_credentials(args: argparse.Namespace, family: Literal["key", "token"]) -> int:
    rows = _registry(_existing_settings(args)).credentials.list(family)
    _print_table(["NAME", "KIND", "PREFIX", "CREATED", "REVOKED"],
                 [(c.name, c.kind, c.prefix + "…", _when(c.created_at), _when(c.revoked_at)) for c in rows])
    return 0


def _revoke_credential(args: argparse.Namespace, family: Literal["key", "token"]) -> int:
    _registry(_settings(args)).credentials.revoke(family, args.name)
    print(f"revoked {family} {args.name}")
    return 0


def _duration(text: str) -> dt.timedelta:
    """``30s``, ``15m``, ``12h``, ``7d`` or ``2w``: an argparse type."""
    units = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    number, unit = text[:-1], text[-1:]
    if unit not in units or not number.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 7d, 12h or 30m")
    return dt.timedelta(**{units[unit]: int(number)})


def _rows(n: int) -> str:
    return f"{n} row{'s' if n != 1 else ''}"


def cmd_dedupe(args: argparse.Namespace) -> int:
    from lakehose.maintenance.dedupe import dedupe

    return _report(dedupe(_settings(args), args.stream, args.window), lambda n: (
        f"removed {_rows(n)} whose event_id was already in the table" if n else "no duplicates"))


def _forgotten(f: Forgotten) -> str:
    text = f"removed {_rows(f.rows)}" if f.rows else "nothing matches"
    if f.snapshots:
        text += f"; expired {f.snapshots} snapshots, deleted {f.files_deleted} files only they referenced"
    return text


def cmd_forget(args: argparse.Namespace) -> int:
    from lakehose.maintenance.forget import forget

    if (args.user_id is None) == (args.where is None):
        raise ValueError("give --user-id ID or --where COLUMN=VALUE (one of them)")
    where = f"user_id={args.user_id}" if args.user_id is not None else args.where
    outcomes = forget(_settings(args), where)
    code = _report(outcomes, _forgotten)
    if code == 0 and not any(o.result is not None and o.result.rows for o in outcomes):
        print(f"nothing matches {where}: nothing removed")
    return code


def _positive(text: str) -> int:
    """A whole number above zero: an argparse type."""
    if not text.isdigit() or int(text) == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number above 0")
    return int(text)


def _size(n: int) -> str:
    for power, unit in ((3, "GiB"), (2, "MiB"), (1, "KiB")):
        if n >= 1024 ** power:
            return f"{n / 1024 ** power:.1f} {unit}"
    return f"{n} bytes"


def _report(outcomes: Sequence[Outcome[T]], describe: Callable[[T], str]) -> int:
    """One line per table; a table's failure goes to stderr and makes the exit code 1."""
    for outcome in outcomes:
        if outcome.error is not None:
            print(f"{outcome.table}: failed: {outcome.error}", file=sys.stderr)
        elif outcome.result is not None:
            print(f"{outcome.table}: {describe(outcome.result)}")
    if not outcomes:
        print("no tables yet")
    return 1 if any(outcome.error is not None for outcome in outcomes) else 0


def _compacted(c: Compacted) -> str:
    text = (f"{c.partitions} partitions, {c.files_before} → {c.files_after} files "
            f"({_size(c.bytes)} rewritten)" if c.partitions else "nothing to compact")
    if c.moved:
        text += f"; {c.moved} partitions skipped: another writer changed their files (the next run retries)"
    return text


def _expired(e: Expired) -> str:
    merged = f"merged {e.manifests_merged} manifests, " if e.manifests_merged else ""
    return (f"{merged}expired {e.snapshots} snapshots, deleted {e.files_deleted} files "
            f"({_size(e.bytes_deleted)})")


def cmd_compact(args: argparse.Namespace) -> int:
    from lakehose.maintenance.compact import compact

    return _report(compact(_settings(args), args.stream, args.target_bytes, args.min_files, args.sort),
                   _compacted)


def cmd_expire(args: argparse.Namespace) -> int:
    from lakehose.maintenance.expire import expire

    return _report(expire(_settings(args), args.stream, args.older_than, args.keep), _expired)


def cmd_retention(args: argparse.Namespace) -> int:
    from lakehose.maintenance.expire import expire
    from lakehose.maintenance.retention import retention

    settings = _settings(args)
    code = _report(retention(settings, args.stream), lambda r: (
        f"retention {r.days:g} days: dropped {r.files_dropped} files" if r.days else "keeps everything"))
    return max(code, _report(expire(settings, args.stream), _expired))


def cmd_maintain(args: argparse.Namespace) -> int:
    stop = threading.Event()  # set by SIGTERM: stop between tables and partitions
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    from lakehose.maintenance.schedule import run_maintenance, run_once

    settings = _settings(args)
    if args.once:
        return 0 if run_once(settings, stop) else 1
    run_maintenance(settings, stop)
    return 0


def cmd_rejected_replay(args: argparse.Namespace) -> int:
    from lakehose.replay import replay

    since = dt.datetime.fromisoformat(args.since) if args.since else None
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=dt.timezone.utc)
    result = replay(_settings(args), args.stream, since, args.reason)
    still = ", ".join(f"{n} {code}" for code, n in sorted(result.still_rejected.items())) or "none"
    skipped = ", ".join(f"{n} {code}" for code, n in sorted(result.skipped.items()))
    print(f"replayed {result.replayed} events into events.{args.stream}; still rejected: {still}"
          + (f"; finished {result.recovered} from an interrupted replay" if result.recovered else "")
          + (f"; skipped (no event to replay): {skipped}" if skipped else ""))
    return 0


def _group(parser: argparse.ArgumentParser,
           dest: str) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    """Subcommands; given none, the parser prints its help (the command list), not a usage error."""
    def show_help(_: argparse.Namespace) -> int:
        parser.print_help()
        return 0

    parser.set_defaults(handler=show_help)
    return parser.add_subparsers(dest=dest, metavar="COMMAND", title="commands")


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(
        prog="lakehose", description="lakehose: a self-hosted event-data pipeline "
        "(HTTP → durable log → Iceberg tables → SQL). Start with: lakehose up",
        epilog="Every command takes --data-dir and --config; lakehose COMMAND --help says more.")
    parser.add_argument("--version", action="version", version=f"lakehose {version('lakehose')}",
                        help="print the version and exit")
    commands = _group(parser, "command")

    def add(parent: argparse._SubParsersAction[argparse.ArgumentParser], name: str,
            handler: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
        sub = parent.add_parser(name, parents=[common], help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    def hints(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--max-seconds", type=float, help="commit a stream's events after this long")
        sub.add_argument("--max-events", type=int, help="... or once this many are buffered")
        sub.add_argument("--max-bytes", type=int, help="... or once this much JSON is buffered")

    def pg(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--pg-host", help="address of the PostgreSQL endpoint (default 127.0.0.1)")
        sub.add_argument("--pg-port", type=int, help="port of the PostgreSQL endpoint (default 5433)")

    def listen(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--host", help="address to serve HTTP on (default: [collector] host, 127.0.0.1)")
        sub.add_argument("--port", type=int, help="port to serve HTTP on (default: [collector] port, 8080)")

    up = add(commands, "up", cmd_up, "run everything on this machine: collector, delivery, query API")
    listen(up)
    hints(up)
    pg(up)

    collector = add(commands, "collector", cmd_collector, "run the HTTP collector alone")
    listen(collector)
    collector.add_argument("--with-query", action="store_true", help="also serve /v1/query")
    pg(collector)

    serve = add(commands, "serve", cmd_serve, "serve the query API alone")
    listen(serve)
    pg(serve)

    deliver = add(commands, "deliver", cmd_deliver, "run delivery alone: log → Iceberg tables")
    hints(deliver)
    deliver.add_argument("--metrics-port", type=int,
                         help="serve Prometheus metrics on http://HOST:PORT/metrics (default: not "
                              "served; under lakehose up they are on up's own /metrics)")
    deliver.add_argument("--metrics-host", default="127.0.0.1",
                         help="address for --metrics-port (default 127.0.0.1; 0.0.0.0 in a container)")

    query = add(commands, "query", cmd_query, "run a read-only SQL query over the tables")
    query.add_argument("sql", help="one SELECT (or WITH, SHOW, DESCRIBE, EXPLAIN) statement")
    query.add_argument("--format", choices=["table", "csv", "json"], default="table",
                       help="how to print the rows (default: an aligned table)")
    query.add_argument("--limit", type=int, help="return at most this many rows (default: [query] row_limit)")

    audit = add(commands, "audit", cmd_audit,
                "per stream and hour: events accepted, landed, rejected and in flight; exit 1 on "
                "any discrepancy")
    audit.add_argument("--since", default="24h", help="how far back: 24h, 90m, 7d or an ISO 8601 "
                                                      "time (default 24h; whole hours)")
    audit.add_argument("--stream", help="only this stream")
    audit.add_argument("--json", action="store_true", help="the report as JSON (as GET /v1/audit)")

    send = add(commands, "send", cmd_send,
               "send events to a running lakehose: a file of your own, or demo game traffic")
    send.add_argument("file", nargs="?", metavar="FILE",
                      help="events as NDJSON or a JSON array; - reads stdin. Each names its stream "
                           "in \"type\", unless --stream is given")
    send.add_argument("--stream", help="send FILE's events to this stream")
    send.add_argument("--demo", action="store_true",
                      help="send demo game events instead; creates the 14 demo streams, a write key "
                           "kept for the next runs and the dashboard 'Game overview' if missing")
    send.add_argument("--url", help="collector URL (default: the address of this data folder's "
                                    "running lakehose up, else [collector] host and port)")
    send.add_argument("--key", help="write key (default: $LAKEHOSE_WRITE_KEY; --demo: the demo key)")
    send.add_argument("--events", type=_positive, default=20_000, help="--demo: how many (default 20000)")
    send.add_argument("--days", type=float, default=7,
                      help="--demo: spread the events' ts over this many last days (default 7)")
    send.add_argument("--seed", type=int,
                      help="--demo: seed of the generator, to make the same events again "
                           "(default: a fresh one each run)")
    send.add_argument("--rate", type=float, default=0,
                      help="events per second at most (default 0: as fast as the collector takes them)")

    streams = _group(commands.add_parser("streams", help="manage streams"), "action")
    create = add(streams, "create", cmd_streams_create, "register a stream with its JSON schema")
    create.add_argument("name", help="the stream's name, also its table's (events.NAME)")
    create.add_argument("--schema", required=True, help="JSON Schema file")
    hints(create)
    create.add_argument("--retention-days", type=float,
                        help="drop the table's day partitions older than this (default: keep all)")
    create.add_argument("--unknown-fields", choices=["reject", "evolve", "keep"], default="reject",
                        help="fields the schema lacks: reject the event, add them as columns, "
                             "or keep them as JSON in the _extra column")
    add(streams, "list", cmd_streams_list, "list streams").add_argument(
        "--json", action="store_true", help="print the streams with their schemas as JSON")
    update = add(streams, "update", cmd_streams_update,
                 "change a stream's schema (compatible changes only) or its hints "
                 "(buffering, retention)")
    update.add_argument("name", help="the stream")
    update.add_argument("--schema", help="JSON Schema file of the new version")
    hints(update)
    update.add_argument("--retention-days", type=float,
                        help="drop the table's day partitions older than this")
    update.add_argument("--unknown-fields", choices=["reject", "evolve", "keep"],
                        help="fields the schema lacks: reject the event, add them as columns, "
                             "or keep them as JSON in the _extra column")
    delete = add(streams, "delete", cmd_streams_delete,
                 "delete a stream, its table and its log (its rejected events stay)")
    delete.add_argument("name", help="the stream")
    delete.add_argument("--yes", action="store_true", help="really delete: without it, nothing is done")
    add(streams, "show", cmd_streams_show, "a stream's schema, version, table and hints").add_argument(
        "name", help="the stream")
    add(streams, "history", cmd_streams_history, "every schema version of a stream").add_argument(
        "name", help="the stream")

    keys = _group(commands.add_parser("keys", help="manage write keys"), "action")
    create_key = add(keys, "create", cmd_keys_create, "create a write key; prints it once")
    create_key.add_argument("name", help="a name to list and revoke the key by")
    create_key.add_argument("--auto-create", action="store_true",
                            help="events of unknown streams sent with this key create them")
    add(keys, "list", lambda a: _list_credentials(a, "key"), "list write keys")
    add(keys, "revoke", lambda a: _revoke_credential(a, "key"), "revoke a write key").add_argument(
        "name", help="the key's name")

    rejected = _group(commands.add_parser("rejected", help="rejected events"), "action")
    replay = add(rejected, "replay", cmd_rejected_replay,
                 "validate a stream's rejected events again; land those that now pass, once")
    replay.add_argument("--stream", required=True, help="the stream whose rejected events to replay")
    replay.add_argument("--since", help="only rows received at or after this ISO 8601 time")
    replay.add_argument("--reason", help="only rows rejected for this reason code")

    dedupe = add(commands, "dedupe", cmd_dedupe,
                 "remove rows whose event_id is already in the table (client retries); "
                 "keeps the copy received first")
    dedupe.add_argument("--stream", help="only this stream (default: every stream)")
    dedupe.add_argument("--window", type=_duration, default=dt.timedelta(days=7),
                        help="look at the day(ts) partitions of this last stretch (default 7d)")

    forget = add(commands, "forget", cmd_forget,
                 "delete a user's rows from every table, rejected events included, and the files "
                 "that held them")
    forget.add_argument("--user-id", help="the user_id to forget (same as --where user_id=ID)")
    forget.add_argument("--where", help="COLUMN=VALUE: any top-level column; the value is read as "
                                        "the column's type")

    compact = add(commands, "compact", cmd_compact,
                  "rewrite each partition's small files into files of the target size")
    compact.add_argument("--stream", help="only this stream's table (default: every table)")
    compact.add_argument("--target-bytes", type=_positive, help="size of the files to write "
                         "(default: [maintenance] target_file_bytes, 256 MiB)")
    compact.add_argument("--min-files", type=_positive, help="compact a partition once it has this many "
                         "small files (default: [maintenance] min_files, 5)")
    compact.add_argument("--sort", choices=["ts"], help="sort each written file by this column")

    expire = add(commands, "expire", cmd_expire,
                 "expire old snapshots, merge manifests and delete the files nothing references")
    expire.add_argument("--stream", help="only this stream's table (default: every table)")
    expire.add_argument("--older-than", type=_duration, help="expire snapshots older than this "
                        "(default: [maintenance] snapshot_max_age_seconds, 15m)")
    expire.add_argument("--keep", type=_positive, help="but always keep this many newest snapshots "
                        "(default: [maintenance] keep_snapshots, 10)")

    retention = add(commands, "retention", cmd_retention,
                    "drop day partitions older than each stream's retention_days, then expire")
    retention.add_argument("--stream", help="only this stream's table (default: every table)")

    maintain = add(commands, "maintain", cmd_maintain,
                   "run retention, compact and expire every [maintenance] interval_seconds "
                   "(lakehose up runs this)")
    maintain.add_argument("--once", action="store_true", help="run every job once now, then exit")

    tokens = _group(commands.add_parser("tokens", help="manage read and admin tokens"), "action")
    create_token = add(tokens, "create", cmd_tokens_create, "create a read token (or --admin); prints it once")
    create_token.add_argument("name", help="a name to list and revoke the token by")
    create_token.add_argument("--admin", action="store_true", help="may also manage streams and keys")
    add(tokens, "list", lambda a: _list_credentials(a, "token"), "list tokens")
    add(tokens, "revoke", lambda a: _revoke_credential(a, "token"), "revoke a token").add_argument(
        "name", help="the token's name")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except (LakehoseError, ValueError, OSError) as exc:
        print(f"lakehose: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
