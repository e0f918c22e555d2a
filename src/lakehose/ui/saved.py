"""Saved charts and dashboards, in the catalog database next to streams and tokens.

Why there: every ``lakehose serve`` sharing a catalog (SQLite or PostgreSQL)
sees the same charts, and a backup of that database keeps them. Each row holds
a name and a JSON definition whose shape the API checks before writing, so a
new chart option needs no migration.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from lakehose.errors import NotFound
from lakehose.registry.store import make_engine, schema_lock

metadata = sa.MetaData()
ID_BYTES = 5
_ID = re.compile(f"[0-9a-f]{{{2 * ID_BYTES}}}")


def _documents(name: str) -> sa.Table:
    return sa.Table(
        name, metadata,
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("definition", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )


CHARTS = _documents("lakehose_charts")
DASHBOARDS = _documents("lakehose_dashboards")


@dataclass(frozen=True)
class Document:
    id: str
    name: str
    definition: dict[str, Any]
    created_at: float
    updated_at: float

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, **self.definition,
                "created_at": self.created_at, "updated_at": self.updated_at}


class Documents:
    """Named JSON documents of one kind (charts or dashboards), with short random ids for URLs."""

    def __init__(self, engine: sa.Engine, table: sa.Table, what: str) -> None:
        self.engine, self.table, self.what = engine, table, what

    def _check_id(self, id_: str) -> None:
        """An id ``create`` cannot have made is not looked up: PostgreSQL refuses NUL in text (a 500)."""
        if not _ID.fullmatch(id_):
            raise NotFound(f"no {self.what} with id {id_!r}")

    @staticmethod
    def _document(row: sa.Row[Any]) -> Document:
        return Document(row.id, row.name, json.loads(row.definition), row.created_at, row.updated_at)

    def list(self) -> list[Document]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(self.table).order_by(self.table.c.name, self.table.c.id)).all()
        return [self._document(r) for r in rows]

    def get(self, id_: str) -> Document:
        self._check_id(id_)
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(self.table).where(self.table.c.id == id_)).one_or_none()
        if row is None:
            raise NotFound(f"no {self.what} with id {id_!r}")
        return self._document(row)

    def create(self, name: str, definition: dict[str, Any]) -> Document:
        now = time.time()
        document = Document(secrets.token_hex(ID_BYTES), name, definition, now, now)
        with self.engine.begin() as conn:
            conn.execute(self.table.insert().values(id=document.id, name=name, created_at=now,
                                                    updated_at=now, definition=json.dumps(definition)))
        return document

    def update(self, id_: str, name: str, definition: dict[str, Any]) -> Document:
        self._check_id(id_)
        with self.engine.begin() as conn:
            result = conn.execute(self.table.update().where(self.table.c.id == id_).values(
                name=name, definition=json.dumps(definition), updated_at=time.time()))
        if result.rowcount != 1:
            raise NotFound(f"no {self.what} with id {id_!r}")
        return self.get(id_)

    def delete(self, id_: str) -> None:
        self._check_id(id_)
        with self.engine.begin() as conn:
            result = conn.execute(self.table.delete().where(self.table.c.id == id_))
        if result.rowcount != 1:
            raise NotFound(f"no {self.what} with id {id_!r}")


class Saved:
    """The charts and dashboards of one catalog database; creates their tables if missing."""

    def __init__(self, catalog_uri: str) -> None:
        engine = make_engine(catalog_uri)
        with schema_lock(engine):
            metadata.create_all(engine)
        self.charts = Documents(engine, CHARTS, "chart")
        self.dashboards = Documents(engine, DASHBOARDS, "dashboard")
