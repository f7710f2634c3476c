"""Where a secret comes from, first found wins (DESIGN.md section 4):

`--key-file F` / `COFFER_KEY_FILE`, `--recovery-key-file F` / `COFFER_RECOVERY_KEY`,
`--password-file F` / `COFFER_PASSWORD_FILE`, `COFFER_PASSWORD_COMMAND`, `COFFER_PASSWORD`,
else a prompt when standard input is a terminal.
"""

from __future__ import annotations

import getpass
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from agent.errors import UsageError, WrongSecretError
from agent.keys import recovery_key
from agent.keys.slots import KeyFile, Passphrase, RecoveryKey, Secret


@dataclass
class SecretOptions:
    key_file: str | None = None
    recovery_key_file: str | None = None
    password_file: str | None = None


def read_secret_file(path: str, what: str) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise UsageError(f"{what} {path} does not exist") from exc
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror}") from exc
    return text.rstrip("\r\n")


def _password_from_command(command: str) -> str:
    try:
        done = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UsageError(f"COFFER_PASSWORD_COMMAND failed: {exc}") from exc
    if done.returncode != 0:
        raise UsageError(f"COFFER_PASSWORD_COMMAND exited with {done.returncode}")
    return done.stdout.rstrip("\r\n")


def _configured_passphrase(options: SecretOptions) -> str | None:
    if options.password_file or os.environ.get("COFFER_PASSWORD_FILE"):
        path = options.password_file or os.environ["COFFER_PASSWORD_FILE"]
        return read_secret_file(path, "password file")
    if os.environ.get("COFFER_PASSWORD_COMMAND"):
        return _password_from_command(os.environ["COFFER_PASSWORD_COMMAND"])
    return os.environ.get("COFFER_PASSWORD")


def passphrase_from_environment(options: SecretOptions, *, prompt: str) -> str | None:
    configured = _configured_passphrase(options)
    if configured is not None:
        return configured
    return getpass.getpass(prompt) if sys.stdin.isatty() else None


def resolve_secret(options: SecretOptions) -> Secret:
    """The secret that opens an existing repository."""
    key_file = options.key_file or os.environ.get("COFFER_KEY_FILE")
    if key_file:
        return KeyFile(Path(key_file))
    if options.recovery_key_file:
        return RecoveryKey(recovery_key.parse_key(read_secret_file(options.recovery_key_file, "recovery key file")))
    if os.environ.get("COFFER_RECOVERY_KEY"):
        return RecoveryKey(recovery_key.parse_key(os.environ["COFFER_RECOVERY_KEY"]))
    passphrase = passphrase_from_environment(options, prompt="Repository passphrase: ")
    if passphrase is None:
        raise UsageError(
            "no passphrase: use --password-file, COFFER_PASSWORD_FILE, COFFER_PASSWORD_COMMAND, COFFER_PASSWORD, "
            "a recovery key or a key file"
        )
    if not passphrase:
        raise WrongSecretError("the passphrase is empty")
    return Passphrase(passphrase)


def new_passphrase(options: SecretOptions, *, what: str = "new passphrase") -> str:
    """A passphrase to set (init, passwd, key add): asked twice on a terminal."""
    passphrase = _configured_passphrase(options)
    return checked_passphrase(passphrase) if passphrase is not None else prompt_new_passphrase(what)


def prompt_new_passphrase(what: str) -> str:
    if not sys.stdin.isatty():
        raise UsageError(f"no {what} given and no terminal to ask on")
    passphrase = getpass.getpass(f"Enter {what}: ")
    if getpass.getpass(f"Repeat {what}: ") != passphrase:
        raise UsageError("the passphrases do not match")
    return checked_passphrase(passphrase)


def checked_passphrase(passphrase: str) -> str:
    if len(passphrase) < 8:
        raise UsageError("the passphrase is too short (8 characters at least)")
    return passphrase


def replacement_passphrase(new_password_file: str | None) -> str:
    """The passphrase to set in `key passwd`, `key add` or a recovery: never the one that unlocked
    (COFFER_PASSWORD is the current one), so it comes from --new-password-file, COFFER_NEW_PASSWORD
    or a prompt."""
    if new_password_file:
        return checked_passphrase(read_secret_file(new_password_file, "new password file"))
    if "COFFER_NEW_PASSWORD" in os.environ:
        return checked_passphrase(os.environ["COFFER_NEW_PASSWORD"])
    return prompt_new_passphrase("new passphrase")
