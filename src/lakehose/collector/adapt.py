"""A second chance for events the registry did not know yet: new streams, new fields.

When auto-create is on (globally, or for the write key) and an event names an
unknown stream matching the allowed pattern, the stream is created with a
schema inferred from the request's events of that stream. When a stream's
``unknown_fields`` policy is ``evolve``, fields it lacks are added to its
schema as optional columns. Either way the affected events are then validated
again against the new version, in the same request, so the client sees them
accepted (or rejected with the reason inference gave). Registry changes run in
a worker thread; a concurrent change by another collector is picked up and the
events checked against it.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable

import msgspec

from lakehose.collector.ingest import Ingestor, Prepared
from lakehose.collector.validate import EventError
from lakehose.config import Settings
from lakehose.errors import AlreadyExists, IncompatibleSchema, LakehoseError, SchemaError
from lakehose.registry.store import Registry


class Adapter:
    def __init__(self, settings: Settings, registry: Registry, ingestor: Ingestor,
                 reload: Callable[[], None]) -> None:
        self.settings = settings
        self.registry = registry
        self.ingestor = ingestor
        self.reload = reload
        self.pattern = re.compile(settings.registry.auto_create_pattern)

    def _groups(self, prepared: Prepared, may_create: bool) -> dict[str, list[EventError]]:
        groups: dict[str, list[EventError]] = defaultdict(list)
        for error in prepared.errors:
            stream = prepared.streams_of_errors.get(error.index)
            if stream is None or error.payload is None:
                continue
            if error.code == "unknown_stream" and may_create and self.pattern.fullmatch(stream):
                groups[stream].append(error)
            elif error.code == "unknown_field":
                validator = self.ingestor.validators.get(stream)
                if validator is not None and validator.unknown_fields == "evolve":
                    groups[stream].append(error)
        return groups

    def may_create(self, stream: str, key_may_create: bool) -> bool:
        """Whether events sent to this unknown stream would create it."""
        return (key_may_create or self.settings.registry.auto_create) \
            and self.pattern.fullmatch(stream) is not None

    def wanted(self, prepared: Prepared, key_may_create: bool) -> bool:
        may_create = key_may_create or self.settings.registry.auto_create
        return bool(prepared.errors) and bool(self._groups(prepared, may_create))

    def adapt(self, prepared: Prepared, key_may_create: bool) -> Prepared:
        """Change the registry for what the request needs, then validate those events again."""
        from lakehose.streams import auto_create_stream, evolve_stream

        may_create = key_may_create or self.settings.registry.auto_create
        for stream, errors in self._groups(prepared, may_create).items():
            events = []
            for error in errors:
                try:
                    events.append(msgspec.json.decode(error.payload or b"{}"))
                except msgspec.DecodeError:
                    continue
            try:
                if errors[0].code == "unknown_stream":
                    auto_create_stream(self.settings, stream, events)
                else:
                    evolve_stream(self.settings, stream, events)
            except AlreadyExists:
                pass  # another collector made the same change first: validate against theirs
            except (SchemaError, IncompatibleSchema) as exc:
                problems = "; ".join(exc.problems)
                prepared.retag(errors, "schema_change_refused", f"the schema cannot take these "
                                                                f"events: {problems}")
                continue
            except LakehoseError as exc:
                prepared.retag(errors, "schema_change_refused", str(exc))
                continue
            self.reload()
            body = b"[" + b",".join(e.payload or b"{}" for e in errors) + b"]"
            prepared.merge(self.ingestor.prepare_stream(stream, body), [e.index for e in errors])
        return prepared
