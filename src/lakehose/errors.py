"""Error types, each marked transient (retry later) or terminal (reject now).

Retry logic asks one question of an error — ``is_transient`` — and nothing else.
"""

from __future__ import annotations


class LakehoseError(Exception):
    """Base of every error lakehose raises on purpose."""

    transient: bool = False


class ConfigError(LakehoseError):
    """The configuration is invalid; carries every problem found at once."""

    def __init__(self, problems: list[str], source: str | None = None) -> None:
        where = f" ({source} and the environment)" if source else ""
        super().__init__(f"invalid configuration{where}:\n  " + "\n  ".join(problems))
        self.problems = problems


class SchemaError(LakehoseError):
    """A stream schema is not in the supported JSON Schema subset."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid schema:\n  " + "\n  ".join(problems))
        self.problems = problems


class IncompatibleSchema(LakehoseError):
    """A schema update would break events already accepted or files already written."""

    def __init__(self, stream: str, problems: list[str]) -> None:
        super().__init__(f"schema update of {stream!r} refused:\n  " + "\n  ".join(problems))
        self.problems = problems


class LimitReached(LakehoseError):
    """A configured cap (``[registry] max_streams``, ``max_columns``, ``max_depth``) would be exceeded.

    Built from ``(setting, what)`` pairs; each problem names the setting that
    raises the cap, in the config file and as an environment variable.
    """

    def __init__(self, breaches: list[tuple[str, str]], section: str = "registry") -> None:
        self.settings = [setting for setting, _ in breaches]
        self.problems = [f"{what}; raise [{section}] {setting} "
                         f"(LAKEHOSE_{section.upper()}__{setting.upper()}) to allow more"
                         for setting, what in breaches]
        super().__init__("limit reached:\n  " + "\n  ".join(self.problems))


class NotFound(LakehoseError):
    """A named stream, key or table does not exist."""


class AlreadyExists(LakehoseError):
    """A named stream, key or table exists already."""


class LogFull(LakehoseError):
    """The log is over its size limit or the disk is under its free floor."""

    transient = True


class LogUnavailable(LakehoseError):
    """The log's servers did not take an append in time (Kafka down or too slow)."""

    transient = True


class LogCorrupt(LakehoseError):
    """A sealed log segment failed its checksum: data was damaged at rest."""


class QueryRefused(LakehoseError):
    """A query writes, attaches or reads outside the lake."""


class QueryFailed(LakehoseError):
    """A query could not run (syntax, unknown table, timeout)."""


class QueryLimit(QueryFailed):
    """A query went over a ``[query]`` cap (memory, spill files, result bytes); names the setting."""

    def __init__(self, setting: str, what: str) -> None:
        self.setting = setting
        super().__init__(f"{what}; the cap is [query] {setting} (LAKEHOSE_QUERY__{setting.upper()})")


class QueryBusy(QueryFailed):
    """Every query slot (``[query] max_concurrent``) stayed taken while the query waited."""

    transient = True


class FilesMoved(LakehoseError):
    """A maintenance commit did not land: its files were removed by another writer first, or
    other commits kept winning the race. Nothing was committed; plan again."""

    transient = True


def is_transient(error: BaseException) -> bool:
    """Whether retrying the same operation later may succeed."""
    return isinstance(error, LakehoseError) and error.transient
