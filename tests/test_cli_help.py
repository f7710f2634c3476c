"""The help and the failure contract of every command: each option and positional says what it is for in
`--help`, `coffer --help` ends with secrets, environment and exit codes, and with `--json` every failure is one
JSON error object."""

from __future__ import annotations

import argparse
import json
import re
import socket
from collections.abc import Iterator

import pytest
from conftest import CofferCli

from agent.cli import build_parser


def _parsers(parser: argparse.ArgumentParser, path: str = "coffer") -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _parsers(child, f"{path} {name}")


def _undocumented(parser: argparse.ArgumentParser) -> list[str]:
    missing = []
    for action in parser._actions:
        if action.help == argparse.SUPPRESS or isinstance(action, argparse._SubParsersAction):
            continue
        if not (action.help or "").strip():
            missing.append("/".join(action.option_strings) or action.metavar or action.dest)
    return missing


def test_every_option_and_positional_has_a_help_line() -> None:
    parsers = dict(_parsers(build_parser()))
    assert {"coffer", "coffer diff", "coffer key add", "coffer fleet status"} <= set(parsers)
    missing = {path: names for path, parser in parsers.items() if (names := _undocumented(parser))}
    assert missing == {}, "options without help: " + "; ".join(f"{p}: {', '.join(n)}" for p, n in missing.items())


def test_every_command_has_a_summary_in_its_parents_help() -> None:
    for path, parser in _parsers(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                summaries = {choice.dest: choice.help for choice in action._choices_actions}
                assert all(summaries.get(name) for name in action.choices), (path, summaries)


def _bare_entries(help_text: str) -> list[str]:
    """Entries of a `--help` text that have no description: an option or positional line with nothing after its
    name, not followed by a deeper-indented description line."""
    lines = help_text.splitlines()
    bare = []
    for n, line in enumerate(lines):
        if not re.match(r"^  \S", line) or "  " in line.strip():
            continue  # not an entry, or the name and its description share the line
        following = lines[n + 1] if n + 1 < len(lines) else ""
        if not re.match(r"^ {6,}\S", following):
            bare.append(line.strip())
    return bare


def test_help_texts_show_a_description_for_every_entry(coffer: CofferCli) -> None:
    for path, parser in _parsers(build_parser()):
        assert _bare_entries(parser.format_help()) == [], path
    forget = coffer("forget", "--help").stdout  # and so does the real command
    assert "--keep-daily N" in forget and "last N days" in " ".join(forget.split()) and _bare_entries(forget) == []
    assert _bare_entries("options:\n  --dry-run, -n\n  --grace SECONDS  keep packs\n") == ["--dry-run, -n"]


def test_top_level_help_ends_with_secrets_environment_and_exit_codes(coffer: CofferCli) -> None:
    text = coffer("--help").stdout
    secrets, environment, codes = (text.index(title) for title in ("secrets", "environment:", "exit codes:"))
    assert secrets < environment < codes
    for name in ("COFFER_KEY_FILE", "COFFER_PASSWORD_COMMAND", "COFFER_REPOSITORY", "USBMUXD_SOCKET_ADDRESS"):
        assert name in text[secrets:codes], name
    assert all(f"{code}  " in text[codes:] for code in (0, 1, 2, 3, 4, 5, 130))


def test_every_command_fails_with_one_json_error_object(coffer: CofferCli, monkeypatch: pytest.MonkeyPatch) -> None:
    """With --json a failure prints {"error": {"message", "exit_code"}} on stdout, whatever the command."""
    commands = [path.split()[1:] for path, parser in _parsers(build_parser())
                if path != "coffer" and not any(isinstance(a, argparse._SubParsersAction) for a in parser._actions)]
    assert len(commands) > 30
    monkeypatch.setenv("USBMUXD_SOCKET_ADDRESS", f"127.0.0.1:{_closed_port()}")  # no usbmuxd: device commands fail
    for command in commands:
        if command[0] in ("sim", "demo"):
            continue  # they run until stopped, and need no repository that could fail
        run = coffer.inline("--json", *command, "--repo", "ftp://example.com/nothing", expect=None)
        assert run.returncode in (2, 5), run.describe()
        document = json.loads(run.stdout)  # exactly one JSON document
        assert document == {"error": {"message": run.stderr.removeprefix("coffer: ").strip(),
                                      "exit_code": run.returncode}}, run.describe()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
