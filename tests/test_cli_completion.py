"""`coffer completion SHELL`: the scripts come from the parser, and the bash one completes in a real bash."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest
from conftest import ROOT

from agent.cli import build_parser


def _script(shell: str) -> str:
    done = subprocess.run([sys.executable, "-m", "agent", "completion", shell], cwd=ROOT, capture_output=True,
                          text=True, check=True, timeout=60)
    assert done.stderr == ""
    return done.stdout


@pytest.fixture(scope="module")
def bash_script() -> str:
    return _script("bash")


def _complete(script: str, words: list[str]) -> list[str]:
    """What bash offers for the last of `words` (COMP_WORDS/COMP_CWORD set as bash sets them)."""
    quoted = " ".join(f"'{w}'" for w in words)
    program = f'{script}\nCOMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}; _coffer; printf "%s\\n" "${{COMPREPLY[@]}}"'
    done = subprocess.run(["bash", "-c", program], cwd=ROOT, capture_output=True, text=True, check=True,
                          timeout=30)
    assert done.stderr == "", done.stderr
    return [line for line in done.stdout.splitlines() if line]


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["coffer", "ba"], {"backup"}),
        (["coffer", "backup", "--u"], {"--udid", "--upload-jitter"}),  # its own option and a global one
        (["coffer", "--repo", "/tmp/r", "sn"], {"snapshots"}),  # an option's value is skipped
        (["coffer", "fleet", ""], {"status", "run", "pause", "resume"}),
        (["coffer", "fleet", "pause", "--c"], {"--config"}),
        (["coffer", "completion", ""], {"bash", "zsh", "fish"}),
        (["coffer", "restore", "--categories", "x", "--no-s"], {"--no-system"}),
    ],
)
def test_bash_completes_commands_and_options(bash_script: str, words: list[str], expected: set[str]) -> None:
    assert set(_complete(bash_script, words)) == expected


def test_scripts_name_every_command_and_option(bash_script: str) -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    fish, zsh = _script("fish"), _script("zsh")
    assert zsh.startswith("#compdef coffer") and "_coffer()" in zsh and "bashcompinit" in zsh
    for name, sub in commands.items():
        assert f" -a {name} " in fish, name
        assert f" {name} " in bash_script or f"'{name} " in bash_script, name
        for action in sub._actions:
            for option in action.option_strings:
                assert option in bash_script, (name, option)
                flag = f"-l {option[2:]}" if option.startswith("--") else f"-s {option[1:]}"
                assert flag in fish, (name, option)
