"""/openapi.json describes every route a process serves, no more, in each of the three modes."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.routing import Mount, Route

from lakehose.config import parse_settings
from lakehose.http import build_app
from lakehose.openapi import document


def served(app_routes: list[object]) -> set[tuple[str, str]]:
    out = set()
    for route in app_routes:
        if isinstance(route, Mount):
            out.add((route.path + "/", "get"))
        elif isinstance(route, Route):
            out.update((route.path, m.lower()) for m in route.methods or () if m != "HEAD")
    return out


@pytest.mark.parametrize(("collect", "query"), [(True, False), (False, True), (True, True)])
def test_every_served_route_is_described(tmp_path: Path, collect: bool, query: bool) -> None:
    settings = parse_settings({}, {}, str(tmp_path))
    app = build_app(settings, collect=collect, query=query)
    described = document(collect=collect, query=query)
    listed = {(path, method) for path, ops in described["paths"].items() for method in ops}
    assert listed == served(app.routes)


def test_operations_have_answers_security_and_known_refs() -> None:
    described = document(collect=True, query=True)
    schemes = set(described["components"]["securitySchemes"])
    for path, operations in described["paths"].items():
        for method, op in operations.items():
            assert op["responses"], (path, method)
            assert "security" in op, (path, method)  # [] for the open routes: said, not forgotten
            assert {name for each in op["security"] for name in each} <= schemes
    refs = {part.split('"')[0] for part in str(described).replace("'", '"').split("#/components/schemas/")[1:]}
    assert refs <= set(described["components"]["schemas"]), refs - set(described["components"]["schemas"])
