"""From a decoded body to log records and a per-event verdict, with no HTTP in sight.

``Ingestor.prepare`` does the CPU work of a request (split, validate, stamp,
encode) and returns what to append and what to answer; the HTTP layer appends
and waits for durability before it answers.
"""

from __future__ import annotations

import datetime as dt
import difflib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import msgspec

from lakehose.collector.body import BodyError, Limits, _syntax_error, classify, split
from lakehose.collector.validate import EventError, MixedDecoder, StreamValidator, TypeOnly, translate
from lakehose.metrics import UNKNOWN_STREAM_LABEL

_TYPE_ONLY = msgspec.json.Decoder(list[TypeOnly])
_ONE_TYPE_ONLY = msgspec.json.Decoder(TypeOnly)


@dataclass
class Prepared:
    """The outcome of one request before the append."""

    batches: list[tuple[str, bytes, int]] = field(default_factory=list)
    accepted: dict[str, int] = field(default_factory=dict)
    # the same events by (stream, start of the hour of their received_at, Unix seconds): the audit's
    # durable counts must fall in the hours the table's received_at puts the rows in
    accepted_hours: dict[tuple[str, int], int] = field(default_factory=dict)
    errors: list[EventError] = field(default_factory=list)
    rejections: dict[tuple[str, str], int] = field(default_factory=dict)
    streams_of_errors: dict[int, str] = field(default_factory=dict)
    received: int = 0

    def _count(self, error: EventError, delta: int) -> None:
        key = (self.streams_of_errors.get(error.index, UNKNOWN_STREAM_LABEL), error.code)
        self.rejections[key] = self.rejections.get(key, 0) + delta

    def retag(self, errors: Sequence[EventError], code: str, reason: str) -> None:
        """Give these errors another reason (a schema change they needed was refused)."""
        indexes = {e.index for e in errors}
        for i, error in enumerate(self.errors):
            if error.index in indexes:
                self._count(error, -1)
                self.errors[i] = replace(error, code=code, reason=reason)
                self._count(self.errors[i], +1)

    def merge(self, again: Prepared, indexes: Sequence[int]) -> None:
        """Replace the errors at ``indexes`` by the outcome of validating those events again."""
        drop = set(indexes)
        for error in self.errors:
            if error.index in drop:
                self._count(error, -1)
        self.errors = [e for e in self.errors if e.index not in drop]
        for error in again.errors:
            moved = replace(error, index=indexes[error.index])
            self.streams_of_errors[moved.index] = again.streams_of_errors.get(error.index,
                                                                             UNKNOWN_STREAM_LABEL)
            self.errors.append(moved)
            self._count(moved, +1)
        self.errors.sort(key=lambda e: e.index)
        self.batches.extend(again.batches)
        for stream, count in again.accepted.items():
            self.accepted[stream] = self.accepted.get(stream, 0) + count
        for key, count in again.accepted_hours.items():
            self.accepted_hours[key] = self.accepted_hours.get(key, 0) + count

    def attach_payloads(self, raws: Sequence[msgspec.Raw]) -> None:
        """Give every error the raw bytes of its event, for the rejected table."""
        self.errors = [e if e.payload is not None or e.index >= len(raws)
                       else replace(e, payload=bytes(raws[e.index])) for e in self.errors]


def closest(name: str, names: Sequence[str]) -> list[str]:
    """The existing names most like a mistyped one, best first."""
    return difflib.get_close_matches(name, names, n=3, cutoff=0.6)


def unknown_stream(name: str, names: Sequence[str]) -> dict[str, Any]:
    """The 404 answer to events sent to a stream that does not exist."""
    like = closest(name, names)
    hint = (f"; did you mean {' or '.join(repr(n) for n in like)}?" if like
            else "; list them with: lakehose streams list")
    return {"error": "unknown_stream", "reason": f"no stream named {name!r}{hint} (create one with: "
            "lakehose streams create NAME --schema FILE)", "did_you_mean": like}


def check_utf8(body: bytes) -> None:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BodyError(400, "invalid_utf8", f"body is not valid UTF-8 at byte offset {exc.start}") from exc


class Ingestor:
    def __init__(self, limits: Limits, future_window_seconds: float) -> None:
        self.limits = limits
        self.future_window_us = int(future_window_seconds * 1_000_000)
        self.validators: Mapping[str, StreamValidator] = {}
        self._mixed = MixedDecoder([])

    def set_validators(self, validators: Mapping[str, StreamValidator]) -> None:
        self.validators = validators
        self._mixed = MixedDecoder(list(validators.values()))

    def _check_count(self, count: int) -> None:
        if count > self.limits.max_events:
            raise BodyError(413, "too_many_events",
                            f"{count} events in one request; the limit is {self.limits.max_events}")

    def _oversized(self, raws: Sequence[msgspec.Raw], indexes: Sequence[int]) -> list[EventError]:
        limit = self.limits.max_event_bytes
        return [EventError(i, "event_too_large", "$", f"event is larger than {limit} bytes")
                for raw, i in zip(raws, indexes) if len(raw) > limit]

    def prepare_stream(self, stream: str, body: bytes) -> Prepared:
        """A request to ``/v1/streams/{stream}/events``."""
        check_utf8(body)
        validator = self.validators.get(stream)
        shape = classify(body)
        if validator is not None and shape != "object" and len(body) <= self.limits.max_event_bytes:
            try:  # the common case: every event valid, checked in one pass
                events = validator.decode_array(body) if shape == "array" else validator.decode_lines(body)
            except msgspec.ValidationError:
                pass  # some event is invalid: go event by event below, naming each failure
            except msgspec.DecodeError as exc:  # a syntax error: the whole request is refused
                raise _syntax_error(body, exc) from exc
            else:
                self._check_count(len(events))
                prepared = Prepared(received=len(events))
                self._finish(prepared, stream, validator, events, range(len(events)))
                prepared.errors.sort(key=lambda e: e.index)
                return prepared
        raws = split(body, shape)
        self._check_count(len(raws))
        prepared = self._prepare_groups({stream: list(range(len(raws)))}, raws, len(raws))
        prepared.attach_payloads(raws)
        prepared.errors.sort(key=lambda e: e.index)
        return prepared

    def prepare_mixed(self, body: bytes) -> Prepared:
        """A request to ``/v1/events``: each event names its stream in ``type``."""
        check_utf8(body)
        shape = classify(body)
        if len(body) <= self.limits.max_event_bytes:
            events = self._mixed.decode(body, shape)
            if events is not None:
                return self._prepare_decoded(events)
        raws = split(body, shape)
        self._check_count(len(raws))
        groups: dict[str, list[int]] = defaultdict(list)
        untyped: list[EventError] = []
        types: list[TypeOnly | None]
        try:
            types = list(_TYPE_ONLY.decode(b"[" + b",".join(raws) + b"]")) if raws else []
        except msgspec.ValidationError:  # an item is not an object: name it, keep the others
            types = []
            for i, raw in enumerate(raws):
                try:
                    types.append(_ONE_TYPE_ONLY.decode(raw))
                except msgspec.ValidationError as exc:
                    untyped.append(translate(exc, i, strip_index=False))
                    types.append(None)
        for i, item in enumerate(types):
            if item is None:
                continue
            if isinstance(item.type, str) and item.type:
                groups[item.type].append(i)
            else:
                untyped.append(EventError(i, "missing_type", "$.type",
                                          "each event of a mixed batch names its stream in \"type\""))
        prepared = self._prepare_groups(groups, raws, len(raws))
        self._add_errors(prepared, UNKNOWN_STREAM_LABEL, untyped)
        prepared.attach_payloads(raws)
        prepared.errors.sort(key=lambda e: e.index)
        return prepared

    def _prepare_decoded(self, events: list[Any]) -> Prepared:
        """A mixed batch whose events all decoded at once: group them by stream."""
        self._check_count(len(events))
        groups: dict[type, tuple[list[Any], list[int]]] = {}
        for index, event in enumerate(events):
            group = groups.get(type(event))
            if group is None:
                group = groups[type(event)] = ([], [])
            group[0].append(event)
            group[1].append(index)
        prepared = Prepared(received=len(events))
        for struct, (members, indexes) in groups.items():
            validator = self._mixed.by_struct[struct]
            self._finish(prepared, validator.stream, validator, members, indexes)
        prepared.errors.sort(key=lambda e: e.index)
        return prepared

    def _prepare_groups(self, groups: Mapping[str, list[int]], raws: Sequence[msgspec.Raw],
                        received: int) -> Prepared:
        prepared = Prepared(received=received)
        for stream, indexes in groups.items():
            validator = self.validators.get(stream)
            if validator is None:
                like = closest(stream, list(self.validators))
                reason = f"no stream named {stream!r}" + (
                    f"; did you mean {' or '.join(repr(n) for n in like)}?" if like else "")
                self._add_errors(prepared, stream, [EventError(i, "unknown_stream", "$", reason)
                                                    for i in indexes])
                continue
            group_raws = [raws[i] for i in indexes]
            too_large = self._oversized(group_raws, indexes)
            if too_large:
                bad = {e.index for e in too_large}
                self._add_errors(prepared, stream, too_large)
                indexes = [i for i in indexes if i not in bad]
                group_raws = [raws[i] for i in indexes]
            events, errors = validator.decode_group(group_raws, indexes)
            if errors:
                bad = {e.index for e in errors}
                indexes = [i for i in indexes if i not in bad]
            self._finish(prepared, stream, validator, events, indexes)
            self._add_errors(prepared, stream, errors)
        return prepared

    def _finish(self, prepared: Prepared, stream: str, validator: StreamValidator,
                events: list[Any], indexes: Sequence[int]) -> None:
        now = dt.datetime.now(dt.timezone.utc)
        kept, errors = validator.stamp(events, indexes, now, self.future_window_us)
        self._add_errors(prepared, stream, errors)
        if kept:
            prepared.batches.append((stream, validator.encode(kept), len(kept)))
            prepared.accepted[stream] = prepared.accepted.get(stream, 0) + len(kept)
            key = (stream, int(now.replace(minute=0, second=0, microsecond=0).timestamp()))
            prepared.accepted_hours[key] = prepared.accepted_hours.get(key, 0) + len(kept)

    @staticmethod
    def _add_errors(prepared: Prepared, stream: str, errors: Sequence[EventError]) -> None:
        prepared.errors.extend(errors)
        for error in errors:
            prepared.streams_of_errors[error.index] = stream
            key = (stream, error.code)
            prepared.rejections[key] = prepared.rejections.get(key, 0) + 1
