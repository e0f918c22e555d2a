"""The command line explains itself: every option has help, bare commands list their subcommands,
and a command that only reads says where it looked instead of creating a data folder."""

from __future__ import annotations

import argparse
import re
import subprocess
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from lakehose.cli import build_parser


def lakehose(*args: str, cwd: Path | None = None,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lakehose", *args], capture_output=True, text=True,
                          timeout=60, cwd=cwd, env=env)


def parsers(parser: argparse.ArgumentParser, path: str = "lakehose") -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from parsers(sub, f"{path} {name}")


def test_every_option_and_argument_of_every_command_has_help() -> None:
    missing = [f"{path} {action.option_strings or action.dest}"
               for path, parser in parsers(build_parser()) for action in parser._actions
               if not isinstance(action, argparse._SubParsersAction) and not (action.help or "").strip()]
    assert missing == []
    assert "lakehose streams create" in dict(parsers(build_parser()))  # the walk reached nested commands


def test_version() -> None:
    result = lakehose("--version")
    assert result.returncode == 0
    assert re.fullmatch(r"lakehose \d+\.\d+\.\d+\S*\n", result.stdout)


def test_bare_commands_print_their_command_list() -> None:
    top = lakehose()
    assert top.returncode == 0, top.stderr
    assert "error" not in top.stderr
    for command in ("up", "query", "streams", "keys", "tokens", "rejected", "send"):
        assert re.search(rf"^    {command}\b", top.stdout, re.M), command
    assert "``" not in top.stdout and ":mod:" not in top.stdout  # no RST markup
    streams = lakehose("streams")
    assert streams.returncode == 0
    assert all(f"    {action}" in streams.stdout for action in ("create", "list", "update", "show"))


def test_query_without_a_data_folder_says_where_it_looked_and_creates_nothing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "LAKEHOSE_DATA_DIR"}
    result = lakehose("query", "SELECT count(*) FROM events.level_complete", cwd=tmp_path, env=env)
    assert result.returncode == 1
    assert result.stderr == (f"lakehose: no lakehose data in {tmp_path / 'lakehose-data'} (the default data "
                             "folder; catalog.db is not there): give the folder lakehose up runs on with "
                             "--data-dir DIR or LAKEHOSE_DATA_DIR\n")
    elsewhere = lakehose("streams", "list", cwd=tmp_path, env={**env, "LAKEHOSE_DATA_DIR": "nowhere"})
    assert f"no lakehose data in {tmp_path / 'nowhere'} (LAKEHOSE_DATA_DIR;" in elsewhere.stderr
    for command in (["keys", "list"], ["audit"], ["streams", "show", "x"]):
        assert "(--data-dir;" in lakehose(*command, "--data-dir", "d", cwd=tmp_path, env=env).stderr
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_table_is_named_with_the_lakes_tables(tmp_path: Path) -> None:
    assert lakehose("keys", "create", "k", "--data-dir", str(tmp_path)).returncode == 0  # a catalog, no table
    empty = lakehose("query", "SELECT count(*) FROM events.level_complete", "--data-dir", str(tmp_path))
    assert empty.stderr == ("lakehose: no table level_complete: there are no tables yet "
                            "(lakehose streams create makes one)\n")
    assert "sqlite_temp_schema" not in empty.stderr
