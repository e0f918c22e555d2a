"""The PostgreSQL endpoint: one asyncio task per client, each query in a worker thread.

Clients log in with any user name and a read token as the password, sent in
clear text: tokens are stored only as hashes, from which neither an md5 nor a
SCRAM verifier can be derived. Hence loopback by default; elsewhere, put TLS in
front. Queries go through the
same :class:`~lakehose.query.engine.QueryEngine` as ``/v1/query``, so the
same sandbox, row limit and timeout apply; writes are refused with SQLSTATE
25006. Session commands (SET, SHOW, BEGIN/COMMIT/ROLLBACK, DECLARE/FETCH/CLOSE
for server-side cursors, DEALLOCATE, DISCARD) are answered here: the lake is
read-only, so a transaction is only a status byte to keep clients in step.

No client can hold more than the ``[pgwire]`` settings allow: connections
(``max_connections``, counted from accept, so clients that never log in count
too), time to log in (``auth_timeout_seconds``), bytes read before the password
is accepted (:data:`codec.MAX_STARTUP_BYTES`) and after it
(``max_message_bytes``, refused from the length prefix, before any byte of the
body is read), and per session cursors/portals and prepared statements. A
session lives only as long as its token: when the table of tokens refreshed
each second no longer has it live, the session ends with a FATAL 28000.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime as dt
import re
import secrets
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa
from starlette.datastructures import Headers

from lakehose.auth import AuthError, TokenGuard, authenticate_token
from lakehose.config import PgwireSettings
from lakehose.errors import QueryBusy, QueryFailed, QueryLimit, QueryRefused
from lakehose.logs import Logger
from lakehose.pgwire import catalog, codec
from lakehose.pgwire import types as t
from lakehose.pgwire.catalog import leading_words, split_statements, tokens
from lakehose.query.engine import QueryEngine
from lakehose.registry.credentials import Holder, hash_secret

_LOG = Logger("pgwire")
WORKER_THREADS = 16
ROWS_PER_WRITE = 2000
TOKEN_CHECK_SECONDS = 0.1  # how often the token table is looked at; it changes once a second
REFUSAL_GRACE_SECONDS = 1.0  # for a refused client's startup packet, so it reads the refusal


class SqlError(Exception):
    """An error the client gets as ErrorResponse with this SQLSTATE."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


class Fatal(Exception):
    """An error that ends the connection: sent with severity FATAL, then the socket is closed.

    Not a :class:`SqlError`, so no handler of statement errors can keep the session going.
    """

    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


def _sqlstate(exc: QueryFailed) -> str:
    if isinstance(exc, QueryBusy):
        return "53300"  # too_many_connections: what poolers and drivers retry on
    if isinstance(exc, QueryLimit):
        return "54000"  # program_limit_exceeded
    cause = exc.__cause__
    if isinstance(cause, duckdb.InterruptException):
        return "57014"
    if isinstance(cause, duckdb.ParserException):
        return "42601"
    if isinstance(cause, duckdb.CatalogException):
        text = str(cause)
        if "Table with name" in text or "Schema with name" in text:
            return "42P01"
        return "42883" if "Function" in text else "42704"
    if isinstance(cause, duckdb.BinderException):
        return "42703" if "column" in str(cause).lower() else "42804"
    if isinstance(cause, duckdb.ConversionException):
        return "22P02"
    if isinstance(cause, duckdb.OutOfRangeException):
        return "22003"
    if isinstance(cause, duckdb.InvalidInputException):
        return "22023"
    return "XX000"


_CALL = re.compile(r'^(?:"?[A-Za-z_][A-Za-z0-9_]*"?\.)?"?([A-Za-z_][A-Za-z0-9_]*)"?\(.*\)$', re.DOTALL)


def _column_name(name: str) -> str:
    """PostgreSQL names an unaliased call after the function (``version``), DuckDB after the call."""
    match = _CALL.match(name)
    if match is None:
        return name
    return "count" if match.group(1) == "count_star" else match.group(1)


def _microseconds(table: pa.Table) -> pa.Table:
    """PostgreSQL times have microseconds; Python's too, so nanosecond columns are cut first."""
    for index, field in enumerate(table.schema):
        kind = field.type
        if pa.types.is_timestamp(kind) and kind.unit == "ns":
            table = table.set_column(index, field.name, table.column(index).cast(
                pa.timestamp("us", kind.tz), safe=False))
        elif pa.types.is_time64(kind) and kind.unit == "ns":
            table = table.set_column(index, field.name, table.column(index).cast(pa.time64("us"), safe=False))
    return table


@dataclass
class Result:
    """What one statement produced: columns (possibly none), rows as columns, a command tag."""

    names: list[str]
    kinds: list[t.PgType]
    columns: list[list[Any]]
    tag: str
    notice: str | None = None

    @property
    def rows(self) -> int:
        return len(self.columns[0]) if self.columns else 0


def _command(tag: str) -> Result:
    return Result([], [], [], tag)


def bind_values(message: codec.Bind, param_oids: list[int]) -> list[Any]:
    """A Bind's values as DuckDB binds them; a value that does not read as its type is a 22P02."""
    values: list[Any] = []
    for i, (data, binary) in enumerate(zip(message.values, message.binary)):
        oid = param_oids[i] if i < len(param_oids) else 0
        try:
            values.append(None if data is None else t.decode_parameter(oid, data, binary))
        except ValueError as exc:
            raise SqlError("22P02", f"parameter ${i + 1}: {exc}") from exc
    return values


@dataclass
class Prepared:
    sql: str  # as the client sent it
    param_oids: list[int]


@dataclass
class Portal:
    prepared: Prepared
    params: list[Any]
    formats: list[int]
    result: Result | None = None
    position: int = 0
    hold: bool = True  # DECLARE ... WITHOUT HOLD cursors end with their transaction


_DEFAULTS = {
    "server_version": catalog.SERVER_VERSION, "server_version_num": "160000",
    "server_encoding": "UTF8", "client_encoding": "UTF8", "DateStyle": "ISO, MDY",
    "IntervalStyle": "postgres", "integer_datetimes": "on", "TimeZone": "UTC",
    "standard_conforming_strings": "on", "is_superuser": "off", "application_name": "",
    "default_transaction_read_only": "on", "transaction_read_only": "on",
    "transaction_isolation": "read committed", "default_transaction_isolation": "read committed",
    "search_path": '"$user", public', "max_identifier_length": "63",
}
_REPORTED = ("server_version", "server_encoding", "client_encoding", "DateStyle", "IntervalStyle",
             "integer_datetimes", "TimeZone", "standard_conforming_strings", "is_superuser",
             "application_name", "default_transaction_read_only")


def _unquote(kind: str, text: str) -> str:
    if kind == "string":
        return text[1:-1].replace("''", "'")
    if kind == "quoted":
        return text[1:-1].replace('""', '"')
    return text


def _words(sql: str) -> list[tuple[str, str]]:
    return [(k, v) for k, v in tokens(sql) if k not in ("space", "comment")]


class Session:
    """One client connection: its settings, prepared statements, portals and transaction state."""

    def __init__(self, server: PgServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 pid: int, secret: int, token_hash: str) -> None:
        self.server = server
        self.engine = server.engine
        self.limits = server.settings
        self.token_hash = token_hash
        self.ended: str | None = None  # why the server ends this session (its token was revoked)
        self.reader = reader
        self.writer = writer
        self.pid = pid
        self.secret = secret
        self.settings = dict(_DEFAULTS)
        self.settings["search_path"] = f'"$user", {self.engine.namespace}'
        self.zone: dt.tzinfo = dt.UTC
        self.in_transaction = False
        self.failed = False
        self.prepared: dict[str, Prepared] = {}
        self.portals: dict[str, Portal] = {}
        self.cursor: duckdb.DuckDBPyConnection | None = None
        self.canceled = False

    # --- plumbing -----------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    def status(self) -> bytes:
        if self.failed:
            return b"E"
        return b"T" if self.in_transaction else b"I"

    def send_error(self, exc: SqlError) -> None:
        self.send(codec.error(exc.code, exc.text))
        if self.in_transaction:
            self.failed = True

    def cancel(self) -> None:
        """CancelRequest from another connection: interrupt the running DuckDB query."""
        cursor = self.cursor
        if cursor is not None:
            self.canceled = True
            cursor.interrupt()

    def end(self, reason: str, task: asyncio.Task[None]) -> None:
        """Stop the session from outside: interrupt its query, cancel its task, tell it why."""
        self.ended = reason
        self.cancel()
        task.cancel()

    def _admit(self, table: dict[str, Any], name: str, limit: int, what: str, setting: str) -> None:
        """Room for one more named entry in ``table`` (replacing one, or the unnamed one, is free)."""
        if not name or name in table:
            return
        if sum(1 for key in table if key) >= limit:
            raise SqlError("53400", f"too many {what} in this session ({limit}, the server's [pgwire] "
                                    f"{setting}); close some first")

    def _on_cursor(self, cursor: duckdb.DuckDBPyConnection) -> None:
        self.cursor = cursor

    async def _in_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.server.pool, fn, *args)

    # --- running statements -------------------------------------------------------------

    async def run_engine(self, sql: str, params: list[Any]) -> Result:
        rewritten = catalog.rewrite(sql, self.pid)
        try:
            self.engine.check(rewritten)
        except QueryRefused as exc:
            raise SqlError("25006", f"cannot execute this in a read-only lake: {exc}") from exc
        except QueryFailed as exc:
            raise SqlError(_sqlstate(exc), str(exc)) from exc
        self.canceled = False
        try:
            result = await self._in_thread(self.engine.run, rewritten, None, None, params, self._on_cursor)
        except QueryRefused as exc:
            raise SqlError("42501", str(exc)) from exc
        except QueryFailed as exc:
            code = _sqlstate(exc)
            if code == "57014" and self.canceled:
                raise SqlError(code, "canceling statement due to user request") from exc
            raise SqlError(code, str(exc)) from exc
        finally:
            self.cursor = None
        table = _microseconds(result.table)
        kinds = [t.pg_type(kind) for kind in result.duckdb_types]
        notice = (f"the result was cut to {table.num_rows} rows (the server's query row_limit)"
                  if result.truncated else None)
        columns = [column.to_pylist() for column in table.columns]
        names = [_column_name(name) for name in table.column_names]
        return Result(names, kinds, columns, f"SELECT {table.num_rows}", notice)

    async def execute(self, sql: str, params: list[Any]) -> Result:
        """One statement: a session command answered here, or a query for the engine."""
        words = _words(sql)
        first = words[0][1].upper() if words else ""
        if self.failed and first not in ("ROLLBACK", "ABORT", "COMMIT", "END"):
            raise SqlError("25P02", "current transaction is aborted, commands ignored until end of "
                                    "transaction block")
        handler = {"BEGIN": self._begin, "START": self._begin, "COMMIT": self._end, "END": self._end,
                   "ROLLBACK": self._end, "ABORT": self._end, "SET": self._set, "RESET": self._reset,
                   "SHOW": self._show, "DISCARD": self._discard, "DEALLOCATE": self._deallocate,
                   "SAVEPOINT": self._savepoint, "RELEASE": self._savepoint}.get(first)
        if handler is not None:
            return handler(words)
        if first == "DECLARE":
            return await self._declare(words, sql, params)
        if first in ("FETCH", "MOVE"):
            return self._fetch(words)
        if first == "CLOSE":
            return self._close_cursor(words)
        if first in ("LISTEN", "UNLISTEN", "NOTIFY", "COPY", "LOCK", "VACUUM", "ANALYZE"):
            raise SqlError("0A000" if first != "COPY" else "25006",
                           f"{first} is not supported by the lakehose endpoint (read-only SQL)")
        return await self.run_engine(sql, params)

    def _begin(self, words: list[tuple[str, str]]) -> Result:
        self.in_transaction = True
        return _command("BEGIN" if words[0][1].upper() == "BEGIN" else "START TRANSACTION")

    def _end(self, words: list[tuple[str, str]]) -> Result:
        first = words[0][1].upper()
        rolling_back = first in ("ROLLBACK", "ABORT")
        if rolling_back and len(words) > 1 and words[1][1].upper() == "TO":  # ROLLBACK TO SAVEPOINT
            self.failed = False
            return _command("ROLLBACK")
        tag = "ROLLBACK" if rolling_back or self.failed else "COMMIT"
        self.in_transaction = self.failed = False
        self.portals = {name: p for name, p in self.portals.items() if p.hold}
        return _command(tag)

    def _savepoint(self, words: list[tuple[str, str]]) -> Result:
        return _command(words[0][1].upper())

    def _set(self, words: list[tuple[str, str]]) -> Result:
        rest = words[1:]
        if rest and rest[0][1].upper() in ("SESSION", "LOCAL"):
            rest = rest[1:]
        if not rest or rest[0][1].upper() in ("TRANSACTION", "CHARACTERISTICS", "SESSION"):
            return _command("SET")
        if [w.upper() for _, w in rest[:2]] == ["TIME", "ZONE"]:
            name, values = "TimeZone", rest[2:]
        else:
            name, values = _unquote(*rest[0]), rest[1:]
            while values and values[0][1] == ".":  # a dotted custom name: my.setting
                name += "." + _unquote(*values[1])
                values = values[2:]
            if not values or (values[0][1] != "=" and values[0][1].upper() != "TO"):
                raise SqlError("42601", f"syntax error: SET {name} needs '= value' or 'TO value'")
            values = values[1:]
        value = ", ".join(_unquote(k, v) for k, v in values if v != ",")
        if not values or value.upper() == "DEFAULT" or value.upper() == "LOCAL":
            return self._reset([("word", "RESET"), ("word", name)])
        self._assign(name, value)
        return _command("SET")

    def _assign(self, name: str, value: str, report: bool = True) -> None:
        key = self._key(name)
        if key == "TimeZone":
            try:
                self.zone = t.session_zone(value)
            except ValueError as exc:
                raise SqlError("22023", str(exc)) from exc
        if key == "client_encoding" and value.upper().replace("-", "") not in ("UTF8", "UNICODE"):
            raise SqlError("0A000", f"client_encoding {value} is not supported; use UTF8")
        self.settings[key] = value
        if report and key in _REPORTED:
            self.send(codec.parameter_status(key, value))

    def apply_startup(self, params: dict[str, str]) -> None:
        """Settings a client sends at startup (pgJDBC's TimeZone, ``options=-c name=value``)."""
        chosen = {k: v for k, v in params.items() if k not in ("user", "database", "options", "replication")}
        for option in params.get("options", "").replace("--", "-c ").split("-c "):
            name, sep, value = option.strip().partition("=")
            if sep:
                chosen[name.strip()] = value.strip()
        for name, value in chosen.items():
            try:
                self._assign(name, value, report=False)  # all are reported right after login
            except SqlError as exc:
                self.send(codec.notice(f"startup parameter {name} ignored: {exc.text}"))

    def _key(self, name: str) -> str:
        for key in self.settings:
            if key.lower() == name.lower():
                return key
        return name

    def _reset(self, words: list[tuple[str, str]]) -> Result:
        name = _unquote(*words[1]) if len(words) > 1 else "ALL"
        if name.upper() == "ALL":
            for key in list(self.settings):
                if key in _DEFAULTS and self.settings[key] != _DEFAULTS[key] and key != "search_path":
                    self._assign(key, _DEFAULTS[key])
        else:
            key = self._key(name)
            self._assign(key, _DEFAULTS.get(key, ""))
        return _command("RESET")

    def _show(self, words: list[tuple[str, str]]) -> Result:
        name = " ".join(_unquote(k, v) for k, v in words[1:])
        if name.upper() == "ALL":
            keys = sorted(self.settings)
            return Result(["name", "setting", "description"], [t.PgType(t.TEXT)] * 3,
                          [keys, [self.settings[k] for k in keys], [""] * len(keys)],
                          "SHOW")
        if name.lower() == "transaction isolation level":
            name = "transaction_isolation"
        key = self._key(name.replace(" ", "_"))
        if key not in self.settings:
            raise SqlError("42704", f'unrecognized configuration parameter "{name}"')
        return Result([key.lower()], [t.PgType(t.TEXT)], [[self.settings[key]]], "SHOW")

    def _discard(self, words: list[tuple[str, str]]) -> Result:
        self.prepared.clear()
        self.portals.clear()
        return _command("DISCARD " + " ".join(w.upper() for _, w in words[1:]))

    def _deallocate(self, words: list[tuple[str, str]]) -> Result:
        rest = [_unquote(k, v) for k, v in words[1:] if v.upper() != "PREPARE"]
        if rest and rest[0].upper() == "ALL":
            self.prepared.clear()
            return _command("DEALLOCATE ALL")
        if rest:
            self.prepared.pop(rest[0], None)
        return _command("DEALLOCATE")

    async def _declare(self, words: list[tuple[str, str]], sql: str, params: list[Any]) -> Result:
        """``DECLARE name [BINARY] [NO] [SCROLL] CURSOR [WITH|WITHOUT HOLD] FOR query``."""
        name = _unquote(*words[1]) if len(words) > 1 else ""
        upper = [w.upper() for _, w in words]
        if "FOR" not in upper or not name:
            raise SqlError("42601", "syntax error: DECLARE name CURSOR FOR query")
        hold = "WITH" in upper[:upper.index("FOR")]
        # the query is everything after the FOR that ends the cursor options
        offset = 0
        for kind, text in tokens(sql):
            offset += len(text)
            if kind == "word" and text.upper() == "FOR":
                break
        query = sql[offset:]
        if name in self.portals:
            raise SqlError("42P03", f'cursor "{name}" already exists')
        self._admit(self.portals, name, self.limits.max_cursors, "cursors and portals", "max_cursors")
        result = await self.run_engine(query, params)
        self.portals[name] = Portal(Prepared(query, []), params, [], result, 0, hold)
        return _command("DECLARE CURSOR")

    def _fetch(self, words: list[tuple[str, str]]) -> Result:
        """``FETCH [FORWARD|NEXT] [n|ALL] [FROM|IN] name`` (and MOVE, which returns no rows)."""
        rest = [(k, v) for k, v in words[1:]]
        name = _unquote(*rest[-1]) if rest else ""
        portal = self.portals.get(name)
        if portal is None or portal.result is None:
            raise SqlError("34000", f'cursor "{name}" does not exist')
        count = 1
        for kind, text in rest[:-1]:
            if kind == "number":
                if not text.isdigit():
                    raise SqlError("42601", f"syntax error: FETCH takes a whole number of rows, not {text}")
                count = int(text)
            elif text.upper() == "ALL":
                count = portal.result.rows
        start = portal.position
        portal.position = min(start + count, portal.result.rows)
        chosen = portal.result
        if words[0][1].upper() == "MOVE":
            return _command(f"MOVE {portal.position - start}")
        columns = [column[start:portal.position] for column in chosen.columns]
        return Result(chosen.names, chosen.kinds, columns, f"FETCH {portal.position - start}")

    def _close_cursor(self, words: list[tuple[str, str]]) -> Result:
        name = _unquote(*words[1]) if len(words) > 1 else ""
        if name.upper() == "ALL":
            self.portals.clear()
        elif self.portals.pop(name, None) is None:
            raise SqlError("34000", f'cursor "{name}" does not exist')
        return _command("CLOSE CURSOR")

    # --- sending results ----------------------------------------------------------------

    def fields(self, result: Result, formats: list[int]) -> list[codec.Field]:
        if len(formats) > 1 and len(formats) != len(result.names):
            raise SqlError("08P01", f"{len(formats)} result formats for {len(result.names)} columns")

        def fmt(i: int) -> int:
            if not formats:
                return 0
            return formats[0] if len(formats) == 1 else formats[i]
        return [codec.Field(name, kind.oid, t.type_size(kind.oid), fmt(i))
                for i, (name, kind) in enumerate(zip(result.names, result.kinds))]

    async def send_rows(self, result: Result, formats: list[int], start: int, stop: int) -> None:
        fields = self.fields(result, formats)
        encoders = [t.binary_encoder(kind) if f.format == 1 else t.text_encoder(kind, self.zone)
                    for kind, f in zip(result.kinds, fields)]
        try:
            encoded = [[None if v is None else encode(v) for v in column[start:stop]]
                       for encode, column in zip(encoders, result.columns)]
        except (ValueError, OverflowError, TypeError, struct.error) as exc:
            raise SqlError("22000", f"a value cannot be sent in this format: {exc}") from exc
        for index, row in enumerate(zip(*encoded)):
            self.send(codec.data_row(list(row)))
            if index % ROWS_PER_WRITE == ROWS_PER_WRITE - 1:
                await self.writer.drain()

    async def send_result(self, result: Result) -> None:
        """A simple query's answer: every row in text form, after its description."""
        if result.notice:
            self.send(codec.notice(result.notice))
        if result.names:
            self.send(codec.row_description(self.fields(result, [])))
        await self.send_rows(result, [], 0, result.rows)
        self.send(codec.command_complete(result.tag))

    # --- simple query -------------------------------------------------------------------

    async def simple_query(self, body: bytes) -> None:
        try:
            sql = codec.query_text(body)
        except codec.BadMessage as exc:
            self.send_error(SqlError("08P01", f"invalid Query message: {exc}"))
            self.send(codec.ready_for_query(self.status()))
            return
        statements = split_statements(sql)
        if not statements:
            self.send(codec.EMPTY_QUERY)
        for statement in statements:
            try:
                await self.send_result(await self.execute(statement, []))
            except SqlError as exc:
                self.send_error(exc)
                break
        self.send(codec.ready_for_query(self.status()))

    # --- extended query -----------------------------------------------------------------

    def parse(self, body: bytes) -> None:
        message = codec.parse_message(body)
        name = message.name
        statements = split_statements(message.sql)
        if len(statements) > 1:
            raise SqlError("42601", "cannot insert multiple commands into a prepared statement")
        if name and name in self.prepared:
            raise SqlError("42P05", f'prepared statement "{name}" already exists')
        self._admit(self.prepared, name, self.limits.max_prepared_statements, "prepared statements",
                    "max_prepared_statements")
        self.prepared[name] = Prepared(statements[0] if statements else "", message.param_oids)
        self.send(codec.PARSE_COMPLETE)

    def bind(self, body: bytes) -> None:
        message = codec.bind_message(body)
        prepared = self.prepared.get(message.statement)
        if prepared is None:
            raise SqlError("26000", f'prepared statement "{message.statement}" does not exist')
        self._admit(self.portals, message.portal, self.limits.max_cursors, "cursors and portals",
                    "max_cursors")
        values = bind_values(message, prepared.param_oids)
        self.portals[message.portal] = Portal(prepared, values, message.result_formats)
        self.send(codec.BIND_COMPLETE)

    async def _portal_result(self, portal: Portal) -> Result:
        if portal.result is None:
            portal.result = await self.execute(portal.prepared.sql, portal.params)
        return portal.result

    async def describe(self, body: bytes) -> None:
        target = codec.target_message(body)
        name = target.name
        if target.kind == b"S":
            prepared = self.prepared.get(name)
            if prepared is None:
                raise SqlError("26000", f'prepared statement "{name}" does not exist')
            count = max([int(v[1:]) for k, v in tokens(prepared.sql) if k == "param"], default=0)
            oids = [(prepared.param_oids[i] if i < len(prepared.param_oids) else 0) or t.TEXT
                    for i in range(count)]
            self.send(codec.parameter_description(oids))
            self.send(await self._describe_statement(prepared.sql, count))
            return
        portal = self.portals.get(name)
        if portal is None:
            raise SqlError("34000", f'portal "{name}" does not exist')
        result = await self._portal_result(portal)
        self.send(codec.row_description(self.fields(result, portal.formats)) if result.names
                  else codec.NO_DATA)

    async def _describe_statement(self, sql: str, count: int) -> bytes:
        words = leading_words(sql, 1)
        if not words or words[0] not in ("SELECT", "WITH", "VALUES", "TABLE", "FROM", "("):
            return codec.NO_DATA  # session commands: their rows, if any, are described at execution
        rewritten = catalog.rewrite(sql, self.pid)
        try:
            columns = await self._in_thread(self.engine.describe, rewritten, count)
        except QueryRefused as exc:
            raise SqlError("25006", str(exc)) from exc
        except QueryFailed as exc:
            raise SqlError(_sqlstate(exc), str(exc)) from exc
        result = Result([n for n, _ in columns], [t.pg_type(k) for _, k in columns], [], "")
        return codec.row_description(self.fields(result, []))

    async def execute_portal(self, body: bytes) -> None:
        message = codec.execute_message(body)
        name, max_rows = message.portal, message.max_rows
        portal = self.portals.get(name)
        if portal is None:
            raise SqlError("34000", f'portal "{name}" does not exist')
        if not portal.prepared.sql.strip():
            self.send(codec.EMPTY_QUERY)
            return
        result = await self._portal_result(portal)
        start = portal.position
        stop = result.rows if max_rows <= 0 else min(result.rows, start + max_rows)
        if start == 0 and result.notice:
            self.send(codec.notice(result.notice))
        await self.send_rows(result, portal.formats, start, stop)
        portal.position = stop
        if stop < result.rows:
            self.send(codec.PORTAL_SUSPENDED)
        elif result.tag.startswith("SELECT") and result.names:
            self.send(codec.command_complete(f"SELECT {stop - start}"))
        else:
            self.send(codec.command_complete(result.tag))

    def close(self, body: bytes) -> None:
        target = codec.target_message(body)
        if target.kind == b"S":
            self.prepared.pop(target.name, None)
        else:
            self.portals.pop(target.name, None)
        self.send(codec.CLOSE_COMPLETE)

    # --- the message loop ---------------------------------------------------------------

    async def serve(self) -> None:
        skipping = False  # after an error in the extended protocol, until Sync
        while True:
            try:
                kind, body = await codec.read_message(self.reader, self.limits.max_message_bytes)
            except codec.MessageTooLarge as exc:
                raise Fatal("54000", f"{exc} (the server's [pgwire] max_message_bytes)") from exc
            if kind == b"X":
                return
            if kind == b"Q":
                skipping = False
                await self.simple_query(body)
            elif kind == b"S":
                skipping = False
                self.portals.pop("", None)
                self.send(codec.ready_for_query(self.status()))
            elif kind == b"H":
                pass
            elif skipping:
                continue
            else:
                try:
                    await self._extended(kind, body)
                except SqlError as exc:
                    self.send_error(exc)
                    skipping = True
            await self.writer.drain()

    async def _extended(self, kind: bytes, body: bytes) -> None:
        try:
            await self._extended_message(kind, body)
        except codec.BadMessage as exc:
            raise SqlError("08P01", f"invalid message {kind!r}: {exc}") from exc

    async def _extended_message(self, kind: bytes, body: bytes) -> None:
        if kind == b"P":
            self.parse(body)
        elif kind == b"B":
            self.bind(body)
        elif kind == b"D":
            await self.describe(body)
        elif kind == b"E":
            await self.execute_portal(body)
        elif kind == b"C":
            self.close(body)
        else:
            raise SqlError("08P01", f"unsupported message type {kind!r}")


class PgServer:
    """Accepts PostgreSQL clients for one query engine; tracks sessions for CancelRequest and revocation."""

    def __init__(self, engine: QueryEngine, guard: TokenGuard, settings: PgwireSettings) -> None:
        self.engine = engine
        self.guard = guard
        self.settings = settings
        self.sessions: dict[int, tuple[Session, asyncio.Task[None]]] = {}
        self.connections = 0
        self.watcher: asyncio.Task[None] | None = None
        self.pool = concurrent.futures.ThreadPoolExecutor(WORKER_THREADS, thread_name_prefix="pgwire")
        catalog.install(engine.con, engine.namespace)

    async def start(self, host: str, port: int, sock: socket.socket | None = None) -> asyncio.Server:
        """Listen on host:port, or on ``sock`` when ``lakehose up`` already listens for us."""
        server = await (asyncio.start_server(self.handle, host, port) if sock is None
                        else asyncio.start_server(self.handle, sock=sock))
        self.watcher = asyncio.create_task(self._end_revoked_sessions(server))
        return server

    async def _end_revoked_sessions(self, server: asyncio.Server) -> None:
        """While listening: end each session whose token the table refreshed each second no longer has live."""
        seen: dict[str, Holder] | None = None
        while server.is_serving():
            await asyncio.sleep(TOKEN_CHECK_SECONDS)
            tokens = self.guard.credentials.holders
            if tokens is seen:
                continue
            seen = tokens
            for session, task in list(self.sessions.values()):
                holder = tokens.get(session.token_hash)
                if holder is None or holder.revoked:
                    name = f"token {holder.name!r}" if holder else "the token"
                    session.end(f"terminating connection: {name} has been revoked", task)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if self.connections >= self.settings.max_connections:
                await self._refuse(reader, writer)
                return
            self.connections += 1
            try:
                await self._connection(reader, writer)
            finally:
                self.connections -= 1
        except Fatal as exc:
            writer.write(codec.error(exc.code, exc.text, "FATAL"))
        except codec.ProtocolError as exc:
            writer.write(codec.error("08P01", f"invalid frontend message: {exc}", "FATAL"))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client went away: nothing to answer
        except Exception as exc:  # noqa: BLE001 - one client's bug must not stop the server
            _LOG.error("session_failed", f"a PostgreSQL session failed: {exc!r}")
            with contextlib.suppress(Exception):
                writer.write(codec.error("XX000", f"internal error: {exc}", "FATAL"))
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _refuse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Over the cap: read the client's (small) startup packet so it can read why, then answer."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(REFUSAL_GRACE_SECONDS):
                await self._startup(reader, writer)
        raise Fatal("53300", f"sorry, too many clients already (the server's [pgwire] max_connections "
                             f"is {self.settings.max_connections})")

    async def _startup(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> codec.Startup:
        """The first packet after any SSL/GSS negotiation, which is refused: TLS belongs in front."""
        startup = await codec.read_startup(reader)
        while startup.code in (codec.SSL_REQUEST, codec.GSSENC_REQUEST):
            writer.write(codec.SSL_REFUSED)
            await writer.drain()
            startup = await codec.read_startup(reader)
        return startup

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        timeout = self.settings.auth_timeout_seconds
        try:
            async with asyncio.timeout(timeout):
                login = await self._login(reader, writer)
        except TimeoutError:
            raise Fatal("08006", f"no login within {timeout:g} s (the server's [pgwire] "
                                 "auth_timeout_seconds)") from None
        if login is None:
            return
        params, token_hash = login
        pid = secrets.randbelow(2**31 - 1) + 1
        while pid in self.sessions:
            pid = secrets.randbelow(2**31 - 1) + 1
        session = Session(self, reader, writer, pid, secrets.randbelow(2**31), token_hash)
        session.send(codec.auth_ok())
        session.apply_startup(params)
        for name in _REPORTED:
            session.send(codec.parameter_status(name, session.settings[name]))
        session.send(codec.backend_key_data(pid, session.secret))
        session.send(codec.ready_for_query(b"I"))
        await writer.drain()
        task = asyncio.current_task()
        assert task is not None  # a connection is always served by its own task
        self.sessions[pid] = (session, task)
        try:
            await session.serve()
        except asyncio.CancelledError:
            if session.ended is None:
                raise  # the server is stopping
            raise Fatal("28000", session.ended) from None
        finally:
            del self.sessions[pid]

    async def _login(self, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> tuple[dict[str, str], str] | None:
        """Startup parameters and the hash of the accepted token; None after a cancel request."""
        startup = await self._startup(reader, writer)
        if startup.code == codec.CANCEL_REQUEST:
            pid, secret = struct.unpack("!ii", startup.body)
            session, _ = self.sessions.get(pid, (None, None))
            if session is not None and session.secret == secret:
                session.cancel()
            return None
        if startup.code != codec.PROTOCOL_3:
            raise Fatal("0A000", "only protocol 3.0 is supported")
        params = codec.startup_parameters(startup.body)
        user = params.get("user", "")
        writer.write(codec.auth_cleartext())
        await writer.drain()
        try:
            kind, body = await codec.read_message(reader, codec.MAX_STARTUP_BYTES)
        except codec.MessageTooLarge as exc:
            raise Fatal("08P01", f"{exc} before login") from exc
        if kind != b"p":
            raise Fatal("08P01", "expected a password message")
        try:
            password = codec.query_text(body)
        except codec.BadMessage as exc:
            raise Fatal("08P01", f"invalid password message: {exc}") from exc
        try:
            await authenticate_token(Headers({"authorization": f"Bearer {password}"}),
                                     self.guard.credentials, "read")
        except AuthError as exc:
            raise Fatal("28P01", f'password authentication failed for user "{user}": '
                                 f"{exc.reason} (the password is a lakehose read token)") from exc
        return params, hash_secret(password)
