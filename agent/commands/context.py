"""What every command gets: parsed options, output helpers, and lazily opened repository."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from typing import Any

from agent.archive.progress import streaming_status, write_status
from agent.errors import UsageError
from agent.keys.sources import SecretOptions, resolve_secret
from agent.repository.repository import Repository
from agent.storage.base import Storage
from agent.storage.url import open_storage

DEFAULT_REPOSITORY_ENV = "COFFER_REPOSITORY"


@dataclass
class Context:
    args: argparse.Namespace
    _storage: Storage | None = field(default=None, repr=False)
    emitted: bool = False  # the command printed its document (then a failure adds no error object)

    @property
    def json(self) -> bool:
        return bool(getattr(self.args, "json", False))

    @property
    def progress(self) -> bool:
        return not getattr(self.args, "quiet", False) and sys.stderr.isatty()

    @property
    def secret_options(self) -> SecretOptions:
        return SecretOptions(
            key_file=getattr(self.args, "key_file", None),
            recovery_key_file=getattr(self.args, "recovery_key_file", None),
            password_file=getattr(self.args, "password_file", None),
        )

    def repository_url(self) -> str:
        import os

        url = getattr(self.args, "repo", None) or os.environ.get(DEFAULT_REPOSITORY_ENV)
        if not url:
            raise UsageError("no repository: give --repo URL or set COFFER_REPOSITORY")
        return url

    def storage(self) -> Storage:
        if self._storage is None:
            self._storage = open_storage(self.repository_url(), **self.storage_options())
        return self._storage

    def storage_options(self) -> dict[str, Any]:
        """Backend options from the global flags (a local folder takes none and ignores them)."""
        options: dict[str, Any] = {}
        for name in ("limit_upload", "limit_download", "upload_jitter"):
            value = getattr(self.args, name, None)
            if value is not None and value < 0:
                raise UsageError(f"--{name.replace('_', '-')} cannot be negative")
            if value:
                options[name] = value
        return options

    def open_repository(self) -> Repository:
        storage = self.storage()
        try:
            secret = resolve_secret(self.secret_options)
        except UsageError:
            Repository.read_config(storage)  # "there is no repository here" helps more than "no passphrase"
            raise
        return Repository.open(storage, secret)

    def close(self) -> None:
        if self._storage is not None:
            self._storage.close()

    # --- output -----------------------------------------------------------------
    def emit(self, document: Any, human: str | None = None) -> None:
        """Print the JSON document with --json, else the human text (both on stdout)."""
        self.emitted = True
        if self.json:  # after status lines, the summary is one line too: stdout stays JSON lines
            json.dump(document, sys.stdout, indent=None if streaming_status() else 2, sort_keys=True, default=str)
            sys.stdout.write("\n")
        elif human is not None:
            sys.stdout.write(human if human.endswith("\n") else human + "\n")
        sys.stdout.flush()

    @property
    def quiet(self) -> bool:
        return bool(getattr(self.args, "quiet", False))

    def note(self, text: str) -> None:
        """Human-only remarks (a skipped symlink, a step done): stderr, so --json stdout stays one document;
        `-q` silences them."""
        if not self.quiet:
            print(text, file=sys.stderr, flush=True)

    def warn(self, text: str) -> None:
        """What the user must see even with `-q` (damage, a lost file, a failed device): stderr."""
        print(text, file=sys.stderr, flush=True)

    def progress_note(self, phase: str, text: str) -> None:
        """A step of a long command: a status line with --json (see `status_lines`), else a note."""
        if streaming_status():
            write_status({"phase": phase, "message": text})
        else:
            self.note(text)
