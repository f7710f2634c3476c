"""The three backup tools of the ingest benchmark, each driven through its own command line.

Every tool keeps all its state in one home folder given by the benchmark (repository, cache, config), so a
run never touches the user's ~/.cache, and copying the home folder forks a repository together with its
cache. All three encrypt (Coffer always, restic always, borg with repokey-blake2) and all three compress
(Coffer zstd level 1 where it pays, restic `--compression auto`, borg `-C zstd,3`).

A restore writes the snapshot named by the backup's `snapshot` into a new folder: Coffer `export latest`
(an iTunes-style backup folder), `restic restore latest --target`, `borg extract` run inside the folder.

`reread` asks restic and borg to read every file again instead of skipping those their files cache says
are unchanged (restic `--force`, borg `--files-cache=disabled`). Coffer's files cache is skipped with `--force`:
it reads every file on every run, so its incremental run is always a re-read.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from agent.errors import CofferError, UsageError
from benchmarks.ingest.measure import run_measured

PASSWORD = "benchmark-password"  # a throw-away repository password, the same for all three tools
PROJECT_ROOT = Path(__file__).resolve().parents[2]
INSTALL_HINT = "install them with `apt-get update && apt-get install -y restic borgbackup`"


@dataclass(frozen=True)
class Command:
    argv: list[str]
    env: dict[str, str]
    cwd: Path = PROJECT_ROOT  # Coffer runs from the checkout; borg extracts into its working directory


class Tool(ABC):
    """A backup tool: how to create its repository in a home folder and how to back a folder up into it."""

    name: str
    executable: str
    version_arguments: tuple[str, ...]
    has_files_cache = True

    def repository(self, home: Path) -> Path:
        return home / "repo"

    def version(self) -> str:
        """The tool's version line; raises UsageError naming the install command if it is missing."""
        if shutil.which(self.executable) is None:
            raise UsageError(
                f"{self.name} is not installed ({self.executable} is not on PATH): {INSTALL_HINT}"
            )
        output = subprocess.run(
            [self.executable, *self.version_arguments],
            capture_output=True,
            text=True,
            check=False,
            env=self.environment(Path()),
        )
        if output.returncode != 0:
            raise UsageError(f"`{self.name}` does not run: {output.stderr.strip()}")
        return output.stdout.strip().splitlines()[0]

    @abstractmethod
    def environment(self, home: Path) -> dict[str, str]:
        """The process environment: the password and where the state lives."""

    @abstractmethod
    def init_command(self, home: Path) -> Command: ...

    @abstractmethod
    def backup_command(self, home: Path, data: Path, snapshot: str, *, reread: bool) -> Command: ...

    @abstractmethod
    def startup_command(self, home: Path) -> Command:
        """A command that opens the repository (process start, key derivation, repository listing) and does
        nothing else: its time is what the benchmark takes as the tool's start-up, and reports net of."""

    @abstractmethod
    def restore_command(self, home: Path, target: Path, snapshot: str) -> Command:
        """Write the latest snapshot (`snapshot`: the name its backup gave it) into the new folder
        `target`."""

    def init(self, home: Path, log: Path) -> None:
        """Create the repository (not measured)."""
        home.mkdir(parents=True, exist_ok=True)
        command = self.init_command(home)
        result = run_measured(command.argv, env=command.env, log=log, cwd=command.cwd)
        if result.exit_code != 0:
            raise CofferError(
                f"`{self.name}` could not create its repository (exit {result.exit_code}); see {log}"
            )


class Coffer(Tool):
    name = "coffer"
    executable = sys.executable
    version_arguments = ("-m", "agent", "--version")

    def environment(self, home: Path) -> dict[str, str]:
        # A half-second key derivation keeps `init` quick; it is not part of what is measured. Python may write
        # its bytecode cache, as an installed package has one (Debian's borg does): a machine that says
        # PYTHONDONTWRITEBYTECODE would otherwise have Coffer compile its modules on every start.
        inherited = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
        return {
            **inherited,
            "PYTHONPATH": str(PROJECT_ROOT),
            "COFFER_PASSWORD": PASSWORD,
            "COFFER_KDF_TARGET_SECONDS": "0.5",
            "COFFER_STATE_DIR": str(home / "state"),  # the files cache travels with the home
            "COFFER_CACHE_DIR": str(home / "cache"),
        }

    def _coffer(self, home: Path) -> list[str]:
        return [self.executable, "-m", "agent", "--repo", str(self.repository(home))]

    def init_command(self, home: Path) -> Command:
        return Command([*self._coffer(home), "init"], self.environment(home))

    def backup_command(self, home: Path, data: Path, snapshot: str, *, reread: bool) -> Command:
        return Command(
            [*self._coffer(home), "--quiet", "--json", "import", *(["--force"] if reread else []), str(data)],
            self.environment(home),
        )

    def startup_command(self, home: Path) -> Command:
        return Command([*self._coffer(home), "--quiet", "--json", "snapshots"], self.environment(home))

    def restore_command(self, home: Path, target: Path, snapshot: str) -> Command:
        return Command(
            [*self._coffer(home), "--quiet", "--json", "export", "latest", str(target)],
            self.environment(home),
        )


class Restic(Tool):
    name = "restic"
    executable = "restic"
    version_arguments = ("version",)

    def environment(self, home: Path) -> dict[str, str]:
        return {
            **os.environ,
            "RESTIC_PASSWORD": PASSWORD,
            "RESTIC_REPOSITORY": str(self.repository(home)),
            "RESTIC_CACHE_DIR": str(home / "cache"),
        }

    def init_command(self, home: Path) -> Command:
        return Command(["restic", "init", "--repository-version", "2"], self.environment(home))

    def backup_command(self, home: Path, data: Path, snapshot: str, *, reread: bool) -> Command:
        argv = [
            "restic",
            "backup",
            "--quiet",
            "--compression",
            "auto",
            "--host",
            "benchmark",
            "--tag",
            snapshot,
        ]
        return Command([*argv, *(["--force"] if reread else []), str(data)], self.environment(home))

    def startup_command(self, home: Path) -> Command:
        return Command(["restic", "snapshots", "--quiet"], self.environment(home))

    def restore_command(self, home: Path, target: Path, snapshot: str) -> Command:
        return Command(
            ["restic", "restore", "--quiet", "latest", "--target", str(target)], self.environment(home)
        )


class Borg(Tool):
    name = "borg"
    executable = "borg"
    version_arguments = ("--version",)

    def environment(self, home: Path) -> dict[str, str]:
        return {
            **os.environ,
            "BORG_PASSPHRASE": PASSWORD,
            "BORG_REPO": str(self.repository(home)),
            "BORG_BASE_DIR": str(home / "base"),
            # A forked home folder is the same repository at a new path: that is expected here.
            "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes",
        }

    def init_command(self, home: Path) -> Command:
        return Command(["borg", "init", "--encryption", "repokey-blake2"], self.environment(home))

    def backup_command(self, home: Path, data: Path, snapshot: str, *, reread: bool) -> Command:
        argv = [
            "borg",
            "create",
            "--compression",
            "zstd,3",
            *(["--files-cache", "disabled"] if reread else []),
        ]
        return Command([*argv, f"::{snapshot}", str(data)], self.environment(home))

    def startup_command(self, home: Path) -> Command:
        return Command(["borg", "list"], self.environment(home))

    def restore_command(self, home: Path, target: Path, snapshot: str) -> Command:
        # borg 1.2 has no `latest`: the archive is named after the phase that made it.
        return Command(["borg", "extract", f"::{snapshot}"], self.environment(home), cwd=target)


TOOLS: dict[str, Tool] = {tool.name: tool for tool in (Coffer(), Restic(), Borg())}
