"""Per-event validation of decoded bodies against a stream's schema.

A schema compiles to a msgspec Struct type, so a valid batch is checked in one
C-speed pass; only a batch with an invalid event falls back to checking event
by event, to name every failure (index, JSON path, reason) while keeping the
valid ones. msgspec stops at an event's first error, so an invalid event's
fields are then checked one by one to report each bad field (up to
``MAX_ERRORS_PER_EVENT``): valid events never pay for it. After validation the
collector adds its envelope: ``event_id`` (UUIDv7 when the client sent none),
``ts`` normalised to epoch microseconds (UTC) and ``received_at``, and encodes
the stream's events as NDJSON for the log.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal, Union

import msgspec

from lakehose.ids import uuid7_batch
from lakehose.registry.schema import EXTRA_COLUMN, INT64_MAX, INT64_MIN, Field, StreamSchema

UNSET = msgspec.UNSET
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_ONE_US = dt.timedelta(microseconds=1)
_MAX_EPOCH_MS = 253402300799999  # 9999-12-31T23:59:59.999Z
_EVENT_ID = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
MAX_ERRORS_PER_EVENT = 10


@dataclass(frozen=True)
class EventError:
    """Why one event of a request was rejected."""

    index: int
    code: str
    path: str
    reason: str
    payload: bytes | None = None  # the event as received, for the rejected table
    more: tuple[tuple[str, str, str], ...] = ()  # the event's other errors: (code, path, reason)

    def as_json(self) -> list[dict[str, Any]]:
        """Every error of the event, the one that names its rejection (``code``) first."""
        return [{"index": self.index, "code": code, "path": path, "reason": reason}
                for code, path, reason in ((self.code, self.path, self.reason), *self.more)]


def _annotation(f: Field, struct_name: str) -> Any:
    if f.enum is not None:
        return Literal[f.enum]
    if f.kind == "integer":
        lo = INT64_MIN if f.minimum is None else max(INT64_MIN, int(-(-f.minimum // 1)))
        hi = INT64_MAX if f.maximum is None else min(INT64_MAX, int(f.maximum // 1))
        return Annotated[int, msgspec.Meta(ge=lo, le=hi)]
    if f.kind == "number":
        if f.minimum is None and f.maximum is None:
            return float
        return Annotated[float, msgspec.Meta(ge=f.minimum, le=f.maximum)]
    if f.kind == "string":
        return Annotated[str, msgspec.Meta(max_length=f.max_length)] if f.max_length is not None else str
    if f.kind == "boolean":
        return bool
    if f.kind == "datetime":
        return dt.datetime
    if f.kind == "array":
        assert f.items is not None
        return list[_annotation(f.items, struct_name + "_item")]  # type: ignore[misc]
    return _struct(struct_name + "_" + f.name, f.properties, envelope=False)


def _struct(name: str, fields: Sequence[Field], envelope: bool,
            tag: str | None = None, keep_extra: bool = False) -> type[msgspec.Struct]:
    specs: list[Any] = []
    for f in fields:
        ann = _annotation(f, name)
        if f.required:
            specs.append((f.name, ann))
        else:
            specs.append((f.name, ann | None | msgspec.UnsetType, UNSET))
    if envelope:
        specs += [
            ("event_id", _EVENT_ID | msgspec.UnsetType, UNSET),
            ("ts", dt.datetime | int | None | msgspec.UnsetType, UNSET),
            ("received_at", Any, UNSET),
        ]
    if keep_extra:  # unknown top-level fields, kept as JSON text (policy "keep")
        specs.append(("extra_", str | msgspec.UnsetType, UNSET))
        if all(f.name != "type" for f in fields):
            specs.append(("type", Any, UNSET))
    # Required fields first: msgspec wants fields without defaults before the rest.
    specs.sort(key=lambda spec: len(spec) == 3)
    if keep_extra:
        return msgspec.defstruct(name, specs, forbid_unknown_fields=False, omit_defaults=True,
                                 rename={"extra_": EXTRA_COLUMN})
    if tag is None:
        return msgspec.defstruct(name, specs, forbid_unknown_fields=True, omit_defaults=True)
    return msgspec.defstruct(name, specs, forbid_unknown_fields=True, omit_defaults=True,
                             tag_field="type", tag=tag)


class MixedDecoder:
    """Decodes a mixed batch in one pass: a union of every tagged stream type."""

    def __init__(self, validators: Sequence[StreamValidator]) -> None:
        tagged = [v for v in validators if v.tagged]
        self.by_struct: dict[type, StreamValidator] = {v.struct: v for v in tagged}
        union: Any = Union[tuple(v.struct for v in tagged)] if tagged else None
        self._array = msgspec.json.Decoder(list[union]) if tagged else None
        self._one = msgspec.json.Decoder(union) if tagged else None

    def decode(self, body: bytes, shape: str) -> list[Any] | None:
        """Every event, or None when the fast path does not apply (the caller goes event by event)."""
        if self._array is None or self._one is None or shape == "object":
            return None
        try:
            return self._array.decode(body) if shape == "array" else self._one.decode_lines(body)
        except msgspec.DecodeError:  # invalid events or syntax: the slow path names them
            return None


_OUTSIDE_YEARS = "date-time outside the years 1 to 9999 once converted to UTC"
_MIN_US = (dt.datetime(1, 1, 1, tzinfo=dt.timezone.utc) - _EPOCH) // _ONE_US
_MAX_US = (dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.timezone.utc) - _EPOCH) // _ONE_US

# For each field whose subtree holds a date-time: (name, is_list, sub-plan); () marks a date-time.
_Plan = tuple[tuple[str, bool, Any], ...]


def _datetime_plan(fields: Sequence[Field]) -> _Plan:
    plan: list[tuple[str, bool, Any]] = []
    for f in fields:
        node = f.items if f.kind == "array" and f.items is not None else f
        if node.kind == "datetime":
            plan.append((f.name, f.kind == "array", ()))
        elif node.kind == "object" and (sub := _datetime_plan(node.properties)):
            plan.append((f.name, f.kind == "array", sub))
    return tuple(plan)


def _outside_years(value: Any, plan: _Plan, path: str) -> str | None:
    """The path of a date-time that cannot be expressed in UTC (it would break Parquet stats)."""
    for name, is_list, sub in plan:
        child = getattr(value, name, None)
        if child is None or child is UNSET:
            continue
        items = enumerate(child) if is_list else ((None, child),)
        for position, item in items:
            if item is None:
                continue
            where = f"{path}.{name}" if position is None else f"{path}.{name}[{position}]"
            if sub == ():
                if item.tzinfo is not None:
                    try:
                        item.astimezone(dt.timezone.utc)
                    except OverflowError:
                        return where
            elif (bad := _outside_years(item, sub, where)) is not None:
                return bad
    return None


_RAW_ONE = msgspec.json.Decoder(msgspec.Raw)
_RAW_LIST = msgspec.json.Decoder(list[msgspec.Raw])
_KEYS = msgspec.json.Decoder(dict[str, msgspec.Raw])


class TypeOnly(msgspec.Struct):
    """Reads only ``type`` from an event of a mixed batch; other fields are skipped."""

    type: Any = None


_TYPE_ONLY_LIST = msgspec.json.Decoder(list[TypeOnly])

_TYPE_WORDS = {"int": "integer", "str": "string", "float": "number", "bool": "boolean",
               "object": "object", "array": "array", "null": "null",
               "int | str | null": "date-time string or epoch milliseconds"}
_MSG = re.compile(r"^(?P<msg>.*?)(?: - at `(?P<path>\$[^`]*)`)?$", re.S)
_AT_INDEX = re.compile(r"^\$\[(\d+)\]")


def _words(type_text: str) -> str:
    if type_text in _TYPE_WORDS:
        return _TYPE_WORDS[type_text]
    return " or ".join(_TYPE_WORDS.get(part, part) for part in type_text.split(" | "))


def translate(error: msgspec.ValidationError, index: int, strip_index: bool) -> EventError:
    """Turn a msgspec message into a reason code, a JSON path and words a person reads."""
    match = _MSG.match(str(error))
    assert match is not None
    msg, path = match.group("msg"), match.group("path") or "$"
    if strip_index:
        at = _AT_INDEX.match(path)
        if at:
            index = int(at.group(1))
            path = "$" + path[at.end():]
    if m := re.match(r"Expected `([^`]*)`, got `([^`]*)`", msg):
        expected = _words(m.group(1))
        return EventError(index, "type_mismatch", path, f"expected {expected}, got {_words(m.group(2))}")
    if m := re.match(r"Object contains unknown field `(.*)`$", msg, re.S):
        return EventError(index, "unknown_field", f"{path}.{m.group(1)}",
                          f"field {m.group(1)!r} is not in the stream's schema")
    if m := re.match(r"Object missing required field `(.*)`$", msg, re.S):
        return EventError(index, "missing_field", f"{path}.{m.group(1)}",
                          f"required field {m.group(1)!r} is missing")
    if msg.startswith("Invalid value") and path.endswith(".type"):
        return EventError(index, "wrong_stream", path, "the event names another stream in \"type\"")
    if msg.startswith("Invalid enum value"):
        return EventError(index, "invalid_enum", path, msg[0].lower() + msg[1:])
    if "RFC3339" in msg:
        return EventError(index, "invalid_datetime", path, "expected an ISO 8601 / RFC 3339 date-time")
    if m := re.match(r"Expected `([^`]*)` (of length )?([<>]=?) (\S+)", msg):
        if m.group(2) and m.group(3).startswith(">"):
            return EventError(index, "too_short", path, f"string shorter than {m.group(4)} characters")
        if m.group(2):
            return EventError(index, "too_long", path, f"string longer than {m.group(4)} characters")
        return EventError(index, "out_of_range", path,
                          f"expected {_words(m.group(1))} {m.group(3)} {m.group(4)}")
    return EventError(index, "invalid", path, msg)


def _future(ts_us: int, limit_us: int, window_us: int) -> str:
    """Why an event time is too far ahead, naming the window and the setting that sets it."""
    def iso(us: int) -> str:
        return (_EPOCH + dt.timedelta(microseconds=us)).isoformat(timespec="seconds").replace("+00:00", "Z")

    seconds = window_us / 1_000_000
    window = f"{seconds / 3600:g} h" if seconds >= 3600 else f"{seconds:g} s"
    return (f"event time {iso(ts_us)} is more than {window} ahead of the collector's clock; "
            f"the latest allowed now is {iso(limit_us)} ([collector] future_window_seconds = {seconds:g})")


class StreamValidator:
    """Validates events for one stream and stamps the collector's envelope on them.

    The event type is a msgspec Struct tagged by ``"type"`` = the stream name, so
    a mixed batch decodes in one pass as a union of every stream's type; ``type``
    is optional in a single stream's requests and is kept in the log record. A
    schema that declares its own ``type`` field gets an untagged type instead.
    """

    def __init__(self, stream: str, schema: StreamSchema, version: int,
                 unknown_fields: str = "reject") -> None:
        self.stream = stream
        self.version = version
        self.unknown_fields = unknown_fields
        self.keeps_extra = unknown_fields == "keep"
        self.tagged = all(f.name != "type" for f in schema.fields) and not self.keeps_extra
        self.struct = _struct(f"Event_{stream}", schema.fields, envelope=True,
                              tag=stream if self.tagged else None, keep_extra=self.keeps_extra)
        self._one = msgspec.json.Decoder(self.struct)
        self._many = msgspec.json.Decoder(list[self.struct])  # type: ignore[name-defined]
        self._encoder = msgspec.json.Encoder()
        self._known = {f.name for f in schema.fields} | {"event_id", "ts", "received_at", "type"}
        self._datetime_plan = _datetime_plan(schema.fields)
        self._fields = schema.fields

    def decode_array(self, body: bytes) -> list[Any]:
        """All events of a JSON array body at once; raises ValidationError on the first bad one."""
        if self.keeps_extra:
            return self._all_or_raise(_RAW_LIST.decode(body))
        return self._many.decode(body)

    def decode_lines(self, body: bytes) -> list[Any]:
        """All events of an NDJSON body at once; raises ValidationError on the first bad one."""
        if self.keeps_extra:
            return self._all_or_raise(_RAW_ONE.decode_lines(body))
        return self._one.decode_lines(body)

    def _all_or_raise(self, raws: Sequence[msgspec.Raw]) -> list[Any]:
        good, errors = self.decode_each(raws, range(len(raws)))
        if errors:
            raise msgspec.ValidationError(errors[0].reason)
        return good

    def _decode_one(self, raw: msgspec.Raw | bytes) -> Any:
        event: Any = self._one.decode(raw)
        if self.keeps_extra:
            extra = {k: v for k, v in _KEYS.decode(raw).items() if k not in self._known}
            if extra:
                event.extra_ = self._encoder.encode(extra).decode()
        return event

    def decode_each(
        self, raws: Sequence[msgspec.Raw | bytes], indexes: Sequence[int]
    ) -> tuple[list[Any], list[EventError]]:
        """Event by event, so every failure is named and the valid ones kept."""
        good: list[Any] = []
        errors: list[EventError] = []
        for raw, index in zip(raws, indexes):
            try:
                good.append(self._decode_one(raw))
            except msgspec.ValidationError as exc:
                errors.append(self._every_error(raw, translate(exc, index, strip_index=False)))
        return good, errors

    @functools.cached_property
    def _field_decoders(self) -> dict[str, msgspec.json.Decoder[Any]]:
        """One decoder per top-level field, built the first time an event is invalid."""
        decoders: dict[str, msgspec.json.Decoder[Any]] = {}
        for f in self._fields:
            annotation = _annotation(f, f"Field_{self.stream}")
            decoders[f.name] = msgspec.json.Decoder(annotation if f.required else annotation | None)
        decoders.setdefault("event_id", msgspec.json.Decoder(_EVENT_ID))
        decoders.setdefault("ts", msgspec.json.Decoder(dt.datetime | int | None))
        return decoders

    def _every_error(self, raw: msgspec.Raw | bytes, first: EventError) -> EventError:
        """``first`` (msgspec's), with the event's other bad fields checked one by one."""
        try:
            fields = _KEYS.decode(raw)
        except (msgspec.ValidationError, msgspec.DecodeError):  # not an object: one error says it
            return first
        found: list[tuple[str, str, str]] = []
        for name, value in fields.items():
            decoder = self._field_decoders.get(name)
            if decoder is not None:
                try:
                    decoder.decode(value)
                except msgspec.ValidationError as exc:
                    e = translate(exc, first.index, strip_index=False)
                    found.append((e.code, f"$.{name}{e.path[1:]}", e.reason))
            elif name == "type" and self.tagged:
                if msgspec.json.decode(value) != self.stream:
                    found.append(("wrong_stream", "$.type", "the event names another stream in \"type\""))
            elif name not in self._known and not self.keeps_extra:
                found.append(("unknown_field", f"$.{name}", f"field {name!r} is not in the stream's schema"))
        found += [("missing_field", f"$.{f.name}", f"required field {f.name!r} is missing")
                  for f in self._fields if f.required and f.name not in fields]
        more = tuple(e for e in found if e[:2] != (first.code, first.path))
        return replace(first, more=more[:MAX_ERRORS_PER_EVENT - 1])

    def decode_group(
        self, raws: Sequence[msgspec.Raw], indexes: Sequence[int]
    ) -> tuple[list[Any], list[EventError]]:
        """Events of this stream out of a mixed batch: one pass, per event only on failure."""
        if self.keeps_extra:
            return self.decode_each(raws, indexes)
        try:
            return self._many.decode(b"[" + b",".join(raws) + b"]"), []
        except msgspec.ValidationError:
            return self.decode_each(raws, indexes)

    def stamp(
        self, events: list[Any], indexes: Sequence[int], now: dt.datetime, future_window_us: int
    ) -> tuple[list[Any], list[EventError]]:
        """Add event_id, normalised ts and received_at; reject event times too far ahead."""
        now_us = (now - _EPOCH) // _ONE_US
        limit_us = now_us + future_window_us
        kept: list[Any] = []
        errors: list[EventError] = []
        for event, index in zip(events, indexes):
            ts = event.ts
            if ts is UNSET or ts is None:
                ts_us = now_us
            elif type(ts) is int:
                if not 0 <= ts <= _MAX_EPOCH_MS:
                    errors.append(EventError(index, "out_of_range", "$.ts",
                                             "epoch milliseconds out of range",
                                             self._encoder.encode(event)))
                    continue
                ts_us = ts * 1000
            else:
                if ts.tzinfo is None:
                    ts = ts.replace(tzinfo=dt.timezone.utc)
                ts_us = (ts - _EPOCH) // _ONE_US
                if not _MIN_US <= ts_us <= _MAX_US:
                    errors.append(EventError(index, "out_of_range", "$.ts", _OUTSIDE_YEARS,
                                             self._encoder.encode(event)))
                    continue
            if event.received_at is not UNSET:
                errors.append(EventError(index, "reserved_field", "$.received_at",
                                         "received_at is set by the collector; send the event "
                                         "time as ts", self._encoder.encode(event)))
                continue
            if self._datetime_plan and (bad := _outside_years(event, self._datetime_plan, "$")):
                errors.append(EventError(index, "out_of_range", bad, _OUTSIDE_YEARS,
                                         self._encoder.encode(event)))
                continue
            if ts_us > limit_us:
                errors.append(EventError(index, "ts_in_future", "$.ts",
                                         _future(ts_us, limit_us, future_window_us),
                                         self._encoder.encode(event)))
                continue
            event.ts = ts_us
            event.received_at = now_us
            kept.append(event)
        unnamed = [event for event in kept if event.event_id is UNSET]
        for event, event_id in zip(unnamed, uuid7_batch(len(unnamed), now_us // 1000)):
            event.event_id = event_id
        return kept, errors

    def encode(self, events: list[Any]) -> bytes:
        """NDJSON of stamped events: the payload of one log record."""
        return self._encoder.encode_lines(events)


def read_types(body_array: bytes) -> list[Any]:
    """The ``type`` of every event of a JSON array, without decoding anything else."""
    return [t.type for t in _TYPE_ONLY_LIST.decode(body_array)]
