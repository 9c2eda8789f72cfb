"""The README and docs/ cannot rot: what they show must still run.

Every TOML block parses and is a valid scenario (a block after a
``<!-- fragment -->`` line only has to parse; any other is validated inside a
minimal scenario it completes); every ``rtbench`` command line in a shell block
names real subcommands and options; every ``make`` target named exists; every
repository path named in backticks exists; every relative link and anchor
resolves; and the README stays an entry page.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer.main

from loadgen.cli import app
from loadgen.scenario import ScenarioError, parse_scenario

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
README_MAX_LINES = 250
FRAGMENT = "<!-- fragment -->"
SHELLS = {"sh", "bash", "console", "shell"}

#: Backticked names that are repository paths (checked), by their first folder.
TOP_FOLDERS = (
    "servers",
    "loadgen",
    "reports",
    "scenarios",
    "tests",
    "notebooks",
    "benchmarks",
    "baselines",
    "docs",
    ".github",
    ".ci",
)
PATH_RE = re.compile(rf"^(?:{'|'.join(re.escape(t) for t in TOP_FOLDERS)})/[\w./-]*$")
LINK_RE = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
INLINE_CODE_RE = re.compile(r"`([^`\n]+)`")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    lang: str
    text: str
    fragment: bool

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """The fenced code blocks of ``page`` (indented fences too)."""
    found: list[Block] = []
    lines = page.read_text().splitlines()
    i = 0
    while i < len(lines):
        m = re.match(r"^(\s*)```(\w*)\s*$", lines[i])
        if not m:
            i += 1
            continue
        indent, lang, start = m.group(1), m.group(2), i
        body: list[str] = []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i][len(indent) :] if lines[i].startswith(indent) else lines[i])
            i += 1
        previous = lines[start - 1].strip() if start else ""
        found.append(Block(page, start + 1, lang, "\n".join(body), previous == FRAGMENT))
        i += 1
    return found


ALL_BLOCKS = [b for page in PAGES for b in blocks(page)]


def prose(page: Path) -> str:
    """``page`` without its fenced blocks."""
    return re.sub(r"^\s*```.*?^\s*```\s*$", "", page.read_text(), flags=re.S | re.M)


# -- TOML ----------------------------------------------------------------------------------

#: What a block that is not a whole scenario is completed with.
BASE: dict[str, Any] = {
    "scenario": {"name": "docs"},
    "cells": [{"transport": "http", "client": "aiohttp"}],
}


def completed(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc``'s tables over :data:`BASE` (its own cells or parts replace the base cells)."""
    merged: dict[str, Any] = {k: (dict(v) if isinstance(v, dict) else v) for k, v in BASE.items()}
    if "parts" in doc:
        merged.pop("cells")
    for key, value in doc.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key].update(value)
        else:
            merged[key] = value
    return merged


TOML_BLOCKS = [b for b in ALL_BLOCKS if b.lang == "toml"]


def test_there_are_toml_examples() -> None:
    assert len(TOML_BLOCKS) >= 5


@pytest.mark.parametrize("block", TOML_BLOCKS, ids=lambda b: b.where)
def test_toml_examples_are_valid_scenarios(block: Block) -> None:
    try:
        doc = tomllib.loads(block.text)
    except tomllib.TOMLDecodeError as exc:
        pytest.fail(f"{block.where}: not valid TOML: {exc}")
    if block.fragment:
        return
    try:
        parse_scenario(completed(doc), block.where)
    except ScenarioError as exc:
        pytest.fail(f"{block.where}: not a valid scenario: {exc}")


# -- rtbench commands ----------------------------------------------------------------------


def shell_lines() -> list[tuple[str, str]]:
    """``(where, command line)`` of every ``rtbench`` line in a shell block."""
    found = []
    for block in ALL_BLOCKS:
        if block.lang not in SHELLS:
            continue
        for offset, raw in enumerate(block.text.splitlines(), start=1):
            line = raw.strip().removeprefix("$ ")
            if line.startswith("rtbench "):
                found.append((f"{block.where}+{offset}", line))
    return found


def check_command(line: str) -> None:
    """Raise AssertionError unless ``line`` names real subcommands and options."""
    words = shlex.split(line, comments=True)[1:]
    command: Any = typer.main.get_command(app)
    while hasattr(command, "commands"):  # a group: the next word names a subcommand
        assert words, f"{line!r}: no subcommand"
        name, words = words[0], words[1:]
        sub = command.commands.get(name)
        assert sub is not None, f"{line!r}: no subcommand {name!r} (has {sorted(command.commands)})"
        command = sub
    known = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}
    known.add("--help")
    for word in words:
        if word == "--":
            break
        if word.startswith("-") and not re.fullmatch(r"-\d.*", word):
            option = word.split("=", 1)[0]
            assert option in known, f"{line!r}: {command.name} has no option {option}"


COMMANDS = shell_lines()


def test_there_are_commands() -> None:
    assert len(COMMANDS) >= 10


@pytest.mark.parametrize(("where", "line"), COMMANDS, ids=[w for w, _ in COMMANDS])
def test_rtbench_commands_name_real_subcommands_and_options(where: str, line: str) -> None:
    check_command(line)


def test_the_command_check_catches_drift() -> None:
    check_command("rtbench run x.toml --out results/x --no-report")
    check_command("rtbench baseline save results/ci --name ci --force")
    with pytest.raises(AssertionError, match="no subcommand 'rnu'"):
        check_command("rtbench rnu x.toml")
    with pytest.raises(AssertionError, match="no option --outt"):
        check_command("rtbench run x.toml --outt results/x")


# -- make targets, paths, links ------------------------------------------------------------


def make_targets() -> set[str]:
    text = (REPO / "Makefile").read_text()
    return set(re.findall(r"^([\w.-]+):", text, flags=re.M))


def named_make_targets() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        for block in blocks(page):
            if block.lang in SHELLS:
                for raw in block.text.splitlines():
                    if m := re.match(r"^\s*make ([\w.-]+)", raw):
                        found.append((block.where, m.group(1)))
        for code in INLINE_CODE_RE.findall(prose(page)):
            if m := re.match(r"^make ([\w.-]+)", code):
                found.append((str(page.relative_to(REPO)), m.group(1)))
    return found


def test_make_targets_named_exist() -> None:
    named = named_make_targets()
    assert {"bench", "test"} <= {t for _, t in named}
    missing = [(w, t) for w, t in named if t not in make_targets()]
    assert not missing, missing


def _is_placeholder(part: str) -> bool:
    # NAME, RUN_ID, <run-id>: stand for whatever the reader has.
    return bool(re.fullmatch(r"[A-Z][A-Z0-9_]*", part)) or "<" in part


def named_paths() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        for code in INLINE_CODE_RE.findall(prose(page)):
            code = code.strip()
            if PATH_RE.match(code) and not any(_is_placeholder(p) for p in code.split("/")):
                found.append((str(page.relative_to(REPO)), code))
    return found


def test_files_named_exist() -> None:
    named = named_paths()
    assert len(named) >= 20
    missing = [(w, p) for w, p in named if not (REPO / p).exists()]
    assert not missing, missing


def slug(heading: str) -> str:
    """A heading's anchor, as GitHub makes it."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {slug(m) for m in re.findall(r"^#+ (.+)$", prose(page), flags=re.M)}


def test_relative_links_and_anchors_resolve() -> None:
    broken = []
    for page in PAGES:
        for target in LINK_RE.findall(prose(page)):
            if re.match(r"^[a-z]+:", target):
                continue  # https:, mailto:
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            missing_anchor = bool(anchor) and dest.suffix == ".md" and anchor not in anchors(dest)
            if not dest.exists() or missing_anchor:
                broken.append((page.name, target))
    assert not broken, broken


def test_every_docs_page_is_linked_from_the_readme_and_the_index() -> None:
    readme = (REPO / "README.md").read_text()
    index = (REPO / "docs" / "README.md").read_text()
    for page in (REPO / "docs").glob("*.md"):
        if page.name != "README.md":
            assert f"(docs/{page.name})" in readme, page.name
            assert f"({page.name})" in index, page.name


def test_readme_is_an_entry_page() -> None:
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= README_MAX_LINES
    assert "make bench" in text and "make test" in text


def test_the_toml_check_catches_drift() -> None:
    cells = [{"transport": "ws-aiohttp", "client": "aiohttp"}]
    good = {
        "scenario": {"workload": "messaging"},
        "realtime": {"users": 4, "message_rate": 1.0},
        "cells": cells,
    }
    parse_scenario(completed(good))
    with pytest.raises(ScenarioError, match="userz"):
        parse_scenario(completed({**good, "realtime": {"userz": 4}}))
