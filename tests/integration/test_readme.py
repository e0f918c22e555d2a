"""The README's commands, run as written against a fresh data folder, so the README cannot drift.

The convention, in README.md: every ```sh block runs, in the order of the file, each as a
bash script (``set -euo pipefail``; variables exported by one block reach the next) in a
fresh folder where ``.venv`` is the virtualenv running these tests and ``examples`` the
repository's; ``curl`` fails on an HTTP error status. A block right after a line
``<!-- readme-test: skip (REASON) -->`` is not run. The block after
``<!-- readme-test: up ... -->`` is the set-up one: its ``lakehose up ...`` (the part after the
last ``&&``; the install before it is what made this venv) runs in the background, on a free
port. The only changes made to the commands: port 8080 becomes that port, and the
placeholders ``lh_…`` and ``lht_…`` become the write key and admin token this ``up`` printed,
as a reader pastes them. A ``# {...}`` comment after a command is its answer: that JSON must
be among what the block printed. Fences in other shell dialects (bash, console, shell) are
refused, so that no command escapes the run. A plain block after
``<!-- readme-test: transcript (...) -->`` is a session: each ``$ lakehose ...`` line runs in
turn (``lakehose`` being ``.venv/bin/lakehose``) and must print exactly the lines under it,
and fail if they start with ``lakehose:``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
MARKER = re.compile(r"^<!-- readme-test: (up|skip|transcript) \((.+)\) -->$")
SHELLS = {"sh", "bash", "shell", "console", "zsh", "shell-session"}


@dataclass(frozen=True)
class Block:
    line: int  # of the opening fence, 1-based
    language: str
    marker: str | None  # "up", "skip" or None: run
    text: str


def blocks(text: str) -> list[Block]:
    found, lines = [], text.splitlines()
    n = 0
    while n < len(lines):
        if lines[n].startswith("```"):
            language = lines[n][3:].strip()
            start = n
            n += 1
            while not lines[n].startswith("```"):
                n += 1
            previous = lines[start - 1] if start else ""
            marker = MARKER.match(previous)
            found.append(Block(start + 1, language, marker.group(1) if marker else None,
                               "\n".join(lines[start + 1:n]) + "\n"))
        n += 1
    return found


def test_every_shell_block_runs_or_says_why_not() -> None:
    found = blocks(README.read_text())
    shell = [b for b in found if b.language in SHELLS]
    assert all(b.language == "sh" for b in shell), [(b.line, b.language) for b in shell if b.language != "sh"]
    assert [b.marker for b in shell][:1] == ["up"] and [b.marker for b in shell].count("up") == 1
    markers = [line for line in README.read_text().splitlines() if "readme-test" in line]
    assert all(MARKER.match(line) for line in markers), markers  # a typo'd marker would hide a block
    assert len([b for b in shell if b.marker is None]) >= 4  # the quick start, send FILE, the demo


def test_every_file_the_readme_names_exists() -> None:
    text = README.read_text()
    paths = set(re.findall(r"(?<![\w/.:-])((?:examples|docs|deploy|bench|scripts|tests|src)/[\w./-]*[\w/])",
                           text))
    assert "examples/level_complete.schema.json" in paths
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert not missing, f"the README names files that do not exist: {missing}"
    # schema files named bare (not a placeholder like FILE.json) must be in examples/
    named = set(re.findall(r"(?<![\w/.-])([a-z][\w.-]*\.json)\b", text)) - {"openapi.json", "metadata.json"}
    assert not {n for n in named if not list(ROOT.glob(f"**/{n}"))}, named


def test_readme_commands_run_as_written(tmp_path: Path) -> None:
    folder = tmp_path / "readme"
    folder.mkdir()
    (folder / ".venv").symlink_to(sys.prefix)
    (folder / "examples").symlink_to(ROOT / "examples")
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("LAKEHOSE_DATA_DIR", "LAKEHOSE_CONFIG", "LAKEHOSE_WRITE_KEY")}
    env["LAKEHOSE_PGWIRE__PORT"] = str(free_port())
    found = [b for b in blocks(README.read_text())
             if (b.language == "sh" and b.marker != "skip") or b.marker == "transcript"]
    setup, runnable = found[0], found[1:]
    assert any(b.marker == "transcript" for b in runnable)
    up_command = setup.text.strip().split("&&")[-1].strip()
    assert up_command.startswith(".venv/bin/lakehose up"), setup
    log = folder / "up.out"
    with open(log, "wb") as out:
        up = subprocess.Popen(f"{up_command} --port {port}", shell=True, cwd=folder, env=env,
                              stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        key, token = _credentials(log, up, port)
        state = folder / ".readme-state"
        for block in runnable:
            if block.marker == "transcript":
                _replay_transcript(block, folder, env, state)
                continue
            script = (block.text.replace("127.0.0.1:8080", f"127.0.0.1:{port}")
                      .replace("lht_…", token).replace("lh_…", key))
            result = subprocess.run(
                ["bash", "-c", "set -euo pipefail\n"
                               "curl() { command curl --fail-with-body --silent --show-error \"$@\"; }\n"
                               f"if [ -f {state} ]; then source {state}; fi\n"
                               f"{script}\nexport -p > {state}\n"],
                cwd=folder, env=env, capture_output=True, text=True, timeout=240)
            where = f"README.md line {block.line}:\n{script}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
            assert result.returncode == 0, where
            for answer in re.findall(r"^# (\{.*\})$", block.text, re.MULTILINE):
                printed = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
                assert json.loads(answer) in printed, where
            assert "Traceback" not in result.stderr, where
    finally:
        os.killpg(up.pid, signal.SIGTERM)
        try:
            up.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(up.pid, signal.SIGKILL)
            up.wait()


def _credentials(log: Path, up: subprocess.Popen[bytes], port: int) -> tuple[str, str]:
    """The key and token the banner shows, once `up` answers on its port."""
    deadline = time.monotonic() + 90
    while True:
        assert up.poll() is None, f"lakehose up exited:\n{log.read_text()}"
        text = log.read_text()
        key, token = re.search(r"\b(lh_[\w-]+)", text), re.search(r"\b(lht_[\w-]+)", text)
        if key and token:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    return key.group(1), token.group(1)
            except httpx.HTTPError:
                pass
        assert time.monotonic() < deadline, f"lakehose up did not come up:\n{text}"
        time.sleep(0.2)


def _replay_transcript(block: Block, folder: Path, env: dict[str, str], state: Path) -> None:
    steps = re.split(r"^\$ ", block.text, flags=re.MULTILINE)
    assert steps[0] == "" and len(steps) > 1, f"README.md line {block.line}: a transcript starts with $"
    for step in steps[1:]:
        command, _, expected = step.partition("\n")
        assert command.startswith("lakehose "), command
        result = subprocess.run(["bash", "-c", f"source {state}\n.venv/bin/{command}"], cwd=folder, env=env,
                                capture_output=True, text=True, timeout=120)
        printed = (result.stdout + result.stderr).rstrip("\n")
        where = f"README.md line {block.line}: $ {command}\nprinted:\n{printed}"
        assert printed == expected.rstrip("\n"), where
        assert (result.returncode != 0) == expected.startswith("lakehose:"), where
