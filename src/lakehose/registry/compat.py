"""Which schema changes are safe, field by field, with a reason for each refusal.

Allowed, because every event the old version accepted is still accepted and
every file written before still reads the same: adding an optional field (at
any depth), relaxing a constraint (a wider minimum/maximum, a longer or no
maxLength, a required field made optional), adding enum values or dropping the
enum. Integers are already stored as long and numbers as double, so
"widening" int→long and float→double needs no change at all.

Refused, naming each offending field: removing a field (a rename is a removal
plus an addition, and is refused as the removal), changing a kind (including
integer→number: Iceberg cannot promote long to double), making an optional
field required, adding a required field, and tightening a constraint (it
would reject events the current version accepts).
"""

from __future__ import annotations

from collections.abc import Sequence

from lakehose.registry.schema import Field, StreamSchema

_KIND_WORDS = {"datetime": "date-time string"}


def _kind(field: Field) -> str:
    return _KIND_WORDS.get(field.kind, field.kind)


def _constraints(path: str, old: Field, new: Field, problems: list[str]) -> None:
    if old.enum is not None and (new.enum is None or not set(old.enum) <= set(new.enum)):
        if new.enum is not None:
            gone = sorted(map(str, set(old.enum) - set(new.enum)))
            problems.append(f"{path}: enum values cannot be removed ({', '.join(gone)})")
    elif old.enum is None and new.enum is not None:
        problems.append(f"{path}: an enum cannot be added to an existing field (it would reject "
                        "values the current version accepts)")
    if new.minimum is not None and (old.minimum is None or new.minimum > old.minimum):
        problems.append(f"{path}: minimum cannot be raised (from {old.minimum} to {new.minimum})")
    if new.maximum is not None and (old.maximum is None or new.maximum < old.maximum):
        problems.append(f"{path}: maximum cannot be lowered (from {old.maximum} to {new.maximum})")
    if new.max_length is not None and (old.max_length is None or new.max_length < old.max_length):
        problems.append(f"{path}: maxLength cannot be lowered (from {old.max_length} to {new.max_length})")


def _compare(path: str, old: Field, new: Field, problems: list[str]) -> None:
    if old.kind != new.kind:
        problems.append(f"{path}: type cannot change from {_kind(old)} to {_kind(new)} "
                        "(add a new field instead)")
        return
    if new.required and not old.required:
        problems.append(f"{path}: an optional field cannot become required")
    _constraints(path, old, new, problems)
    if old.items is not None and new.items is not None:
        _compare(f"{path}[]", old.items, new.items, problems)
    if old.kind == "object":
        _compare_fields(path, old.properties, new.properties, problems)


def _compare_fields(path: str, old: Sequence[Field], new: Sequence[Field], problems: list[str]) -> None:
    by_name = {f.name: f for f in new}
    old_names = {f.name for f in old}
    added = [f.name for f in new if f.name not in old_names]
    for field in old:
        child = f"{path}.{field.name}"
        if field.name not in by_name:
            hint = f" (renamed to {added[0]!r}? renames are refused too)" if added else ""
            problems.append(f"{child}: fields cannot be removed{hint}")
            continue
        _compare(child, field, by_name[field.name], problems)
    for field in new:
        if field.name not in old_names and field.required:
            problems.append(f"{path}.{field.name}: a new field must be optional "
                            "(events already sent do not have it)")


def incompatibilities(old: StreamSchema, new: StreamSchema) -> list[str]:
    """Every reason ``new`` cannot replace ``old``; empty when the change is safe."""
    problems: list[str] = []
    _compare_fields("$", old.fields, new.fields, problems)
    return problems
