"""docs/cli.md keeps up with the parser: a section for every command, naming each of its options."""

from __future__ import annotations

import argparse
import re

from conftest import ROOT
from test_cli_help import _parsers

from agent.cli import build_parser

DOC = (ROOT / "docs" / "cli.md").read_text()


def _section(command: str) -> str:
    """The text under the heading `coffer COMMAND…` up to the next heading of the same or a higher level."""
    match = re.search(rf"^(#+) `{re.escape(command)}(?: [^`]*)?`\n(.*?)(?=^#{{1,2}} |\Z)", DOC, re.M | re.S)
    if match is None:  # a subcommand documented inside its group's table (e.g. `coffer recovery`)
        group = command.rsplit(" ", 1)[0]
        match = re.search(rf"^(#+) `{re.escape(group)}`\n(.*?)(?=^## |\Z)", DOC, re.M | re.S)
    assert match is not None, f"docs/cli.md has no section for `{command}`"
    return match.group(2)


def test_every_command_and_option_is_documented() -> None:
    for path, parser in _parsers(build_parser()):
        if path == "coffer" or any(isinstance(a, argparse._SubParsersAction) for a in parser._actions):
            continue
        text = _section(path)
        for action in parser._actions:
            if action.help == argparse.SUPPRESS or not action.option_strings or action.dest in ("help",):
                continue
            if any(group.title == "global options" and action in group._group_actions for group in parser._action_groups):
                continue
            assert f"`{action.option_strings[0]}" in text, f"docs/cli.md: `{path}` does not mention {action.option_strings[0]}"


def test_global_options_and_exit_codes_are_documented() -> None:
    for option in ("--repo", "--json", "--quiet", "--key-file", "--recovery-key-file", "--password-file",
                   "--limit-upload", "--limit-download", "--verbose"):
        assert f"`{option}" in _section_of("Global options")
    for code in ("0", "1", "2", "3", "4", "5", "130"):
        assert f"| {code} |" in _section_of("Exit codes")


def _section_of(title: str) -> str:
    match = re.search(rf"^## {title}\n(.*?)(?=^## |\Z)", DOC, re.M | re.S)
    assert match is not None, title
    return match.group(1)
