"""The web UI works offline: everything it loads is in the package, and nothing is fetched elsewhere."""

from __future__ import annotations

import re
from pathlib import Path

from lakehose.ui.api import STATIC

# an SVG namespace and the vendored library's own banner are names, not fetches
NOT_FETCHED = {"http://www.w3.org/2000/svg", "https://github.com/leeoniya/uPlot"}


def shipped() -> list[Path]:
    return [p for p in STATIC.rglob("*") if p.suffix in (".html", ".css", ".js")]


def test_every_file_the_page_loads_is_shipped() -> None:
    index = (STATIC / "index.html").read_text()
    loaded = re.findall(r'(?:src|href)="(?!#|data:)([^"]+)"', index)
    assert loaded and all((STATIC / path).is_file() for path in loaded), loaded
    for module in (STATIC / "js").glob("*.js"):
        for imported in re.findall(r'from "(\./[^"]+)"', module.read_text()):
            assert (module.parent / imported).is_file(), f"{module.name} imports {imported}"


def test_nothing_comes_from_another_host() -> None:
    for path in shipped():
        urls = set(re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}[^\s\"')]*", path.read_text())) - NOT_FETCHED
        assert not urls, f"{path.relative_to(STATIC)} refers to {urls}"


def test_the_vendored_chart_library_keeps_its_license() -> None:
    [library] = STATIC.glob("vendor/uplot-*/uPlot.iife.min.js")
    assert "MIT License" in (library.parent / "LICENSE").read_text()
