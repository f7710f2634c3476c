"""The `coffer watch` configuration file (TOML): repository, policy, retention, hooks, daemon.

Every mistake is reported as `FILE:LINE: [table] key: problem` (a `UsageError`, exit code 2):
tomllib gives the line of a syntax error; for a wrong value the key's line is found by
reading the file. Unknown keys are errors too, so a typo never silently means "default".
Relative paths are relative to the configuration file. docs/fleet.md is the reference.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import shlex
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from agent.errors import UsageError
from agent.fleet.hooks import HOOK_EVENTS, HookCommands
from agent.fleet.policy import Policy, QuietHours, default_max_concurrent
from agent.ios.categories import Category
from agent.paths import state_root
from agent.repository.retention import Duration, RetentionPolicy

T = TypeVar("T")
STATUS_SOCKET_NAME = "status.sock"
STATE_FILE_NAME = "fleet-state.json"
EVENT_LOG_NAME = "events.jsonl"
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([dhms])")
_DURATION_WHOLE = re.compile(r"\s*(?:\d+(?:\.\d+)?\s*[dhms]\s*)+")
_UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_CLOCK = re.compile(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*")
_TABLE_LINE = re.compile(r"^\[\s*([^\[\]]+?)\s*\]\s*(?:#.*)?$")
_KEY_LINE = re.compile(r"^(\"[^\"]*\"|'[^']*'|[A-Za-z0-9_-]+)\s*=")
_TOML_POSITION = re.compile(r"\(at line (\d+), column \d+\)")
_RETENTION_KEYS = ("keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly")


class ConfigError(UsageError):
    """A configuration file is wrong; the message names the file, the line and the key."""

    def __init__(self, path: Path, line: int | None, key: str, problem: str) -> None:
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {key + ': ' if key else ''}{problem}")
        self.path, self.line, self.key = path, line, key


@dataclass(frozen=True)
class RepositorySettings:
    url: str | None  # None: --repo or COFFER_REPOSITORY
    key_file: Path | None
    password_file: Path | None


@dataclass(frozen=True)
class DaemonSettings:
    state_dir: Path
    event_log: Path
    http: tuple[str, int] | None
    metrics_port: int | None

    @property
    def status_socket(self) -> Path:
        return self.state_dir / STATUS_SOCKET_NAME

    @property
    def state_file(self) -> Path:
        return self.state_dir / STATE_FILE_NAME


@dataclass(frozen=True)
class FleetConfig:
    path: Path
    repository: RepositorySettings
    policy: Policy
    hooks: HookCommands
    daemon: DaemonSettings


def default_state_dir(config_path: Path) -> Path:
    """Per configuration file, so two daemons on one host never share a state folder or socket."""
    digest = hashlib.sha256(str(config_path.resolve()).encode()).hexdigest()[:12]
    return state_root() / "fleet" / digest


class _Source:
    """The file's text, to point at the line of a key."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()

    def line_of(self, table: str, key: str | None) -> int | None:
        current = ""
        table_line = None
        for number, raw in enumerate(self.lines, start=1):
            line = raw.strip()
            header = _TABLE_LINE.match(line)
            if header:
                current = header.group(1).replace('"', "").replace("'", "")
                if current == table:
                    table_line = number
                continue
            match = _KEY_LINE.match(line)
            name = match.group(1).strip("\"'") if match else None
            if name is not None and current == table and key is not None and name == key:
                return number
            if name is not None and current == "" and key is None and name == table and table_line is None:
                table_line = number  # `policy = 3` where a table belongs
        return table_line

    def error(self, table: str, key: str | None, problem: str) -> ConfigError:
        label = f"[{table}] {key}" if key else f"[{table}]"
        return ConfigError(self.path, self.line_of(table, key), label, problem)


class _Table:
    """One TOML table: typed reads that remember which keys were used."""

    def __init__(self, source: _Source, name: str, values: object) -> None:
        if not isinstance(values, dict):
            raise source.error(name, None, "must be a table")
        self.source, self.name, self.values = source, name, values
        self.used: set[str] = set()

    def error(self, key: str | None, problem: str) -> ConfigError:
        return self.source.error(self.name, key, problem)

    def get(self, key: str, parse: Callable[[Any], T], default: T) -> T:
        self.used.add(key)
        if key not in self.values:
            return default
        try:
            return parse(self.values[key])
        except (TypeError, ValueError) as exc:
            raise self.error(key, str(exc)) from None

    def check_unknown(self) -> None:
        for key in self.values:
            if key not in self.used:
                raise self.error(key, f"unknown key (known: {', '.join(sorted(self.used))})")


# --- value parsers (ValueError/TypeError messages become the reported problem) -----------------


def parse_duration(value: object) -> float:
    """`"12h"`, `"1h30m"`, `"90s"`, `"2d"` or a number of seconds."""
    if isinstance(value, bool):
        raise TypeError('expected a duration such as "12h", "30m" or "45s"')
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and _DURATION_WHOLE.fullmatch(value):
        seconds = sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION.findall(value))
    else:
        raise ValueError(
            f'{value!r} is not a duration: use a number with d, h, m or s, such as "12h" or "1h30m"'
        )
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


def _retention_span(value: object) -> Duration:
    """`keep_within`: a calendar span as `coffer forget --keep-within` takes it ("7d", "2w", "1y2m")."""
    if not isinstance(value, str):
        raise TypeError(f'expected a duration such as "7d", "2w" or "1y2m", not {value!r}')
    try:
        return Duration.parse(value)
    except UsageError as exc:
        raise ValueError(str(exc)) from None


def _positive_int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected a whole number, not {value!r}")
    if value < 1:
        raise ValueError("must be 1 or more")
    return value


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"expected a whole number 0 or more, not {value!r}")
    return value


def _boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, not {value!r}")
    return value


def _string(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError(f"expected a non-empty string, not {value!r}")
    return value


def _strings(value: object) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(i, str) and i for i in items):
        raise TypeError(f"expected a string or a list of strings, not {value!r}")
    return tuple(items)


def _devices(value: object) -> tuple[str, ...] | None:
    if value == "all":
        return None
    if isinstance(value, str) or not isinstance(value, list) or not value:
        raise ValueError('expected "all" or a list of UDIDs')
    return _strings(value)


def _categories(value: object) -> tuple[str, ...] | None:
    if value == "all":
        return None
    if isinstance(value, str) or not isinstance(value, list) or not value:
        raise ValueError('expected "all" or a list of category names')
    names = _strings(value)
    unknown = sorted(set(names) - {c.value for c in Category})
    if unknown:
        raise ValueError(f"unknown categories {', '.join(unknown)}")
    return names


def _quiet_hours(value: object) -> tuple[QuietHours, ...]:
    windows = []
    for item in _strings(value):
        match = _CLOCK.fullmatch(item)
        if not match:
            raise ValueError(f'{item!r} is not a time window: use "HH:MM-HH:MM", such as "22:00-07:00"')
        hour1, minute1, hour2, minute2 = (int(g) for g in match.groups())
        try:
            windows.append(QuietHours(dt.time(hour1, minute1), dt.time(hour2, minute2)))
        except ValueError as exc:
            raise ValueError(f"{item!r}: {exc}") from None
    return tuple(windows)


def _command(value: object) -> tuple[str, ...]:
    """A hook command: a string (split like a shell would, but run without one) or an argv list."""
    if isinstance(value, str):
        argv = shlex.split(value)
        if not argv:
            raise ValueError("the command is empty")
        return tuple(argv)
    return _strings(value)


def _http_address(value: object) -> tuple[str, int]:
    return parse_http_address(_string(value))


def parse_http_address(text: str) -> tuple[str, int]:
    """`HOST:PORT` (HOST may be omitted: 127.0.0.1; PORT 0 picks a free port, logged at start)."""
    host, _, port = text.rpartition(":")
    if not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"{text!r} is not HOST:PORT, such as 127.0.0.1:8080")
    return host or "127.0.0.1", int(port)


def _port(value: object) -> int:
    number = _positive_int(value)
    if number > 65535:
        raise ValueError(f"{number} is not a TCP port")
    return number


# --- the file ---------------------------------------------------------------------------------


def load_config(path: Path) -> FleetConfig:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"the configuration file {path} does not exist") from None
    except OSError as exc:
        raise UsageError(f"cannot read the configuration file {path}: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
        document = tomllib.loads(text)
    except UnicodeDecodeError:
        raise ConfigError(path, None, "", "is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        position = _TOML_POSITION.search(str(exc))
        problem = _TOML_POSITION.sub("", str(exc)).strip()
        raise ConfigError(
            path, int(position.group(1)) if position else None, "", f"TOML syntax: {problem}"
        ) from None
    source = _Source(path, text)
    base = path.resolve().parent
    known_tables = ("repository", "policy", "retention", "hooks", "daemon")
    for name in document:
        if name not in known_tables:
            raise source.error(name, None, f"unknown table (known: {', '.join(known_tables)})")
    tables = {name: _Table(source, name, document.get(name, {})) for name in known_tables}

    def relative(value: object) -> Path:
        return base / Path(_string(value)).expanduser()

    def url(value: object) -> str:
        text = _string(value)
        return text if "://" in text else str(base / Path(text).expanduser())

    repo = tables["repository"]
    repository = RepositorySettings(
        url=repo.get("url", url, None),
        key_file=repo.get("key_file", relative, None),
        password_file=repo.get("password_file", relative, None),
    )
    if repository.key_file and repository.password_file:
        raise repo.error("password_file", "give key_file or password_file, not both")

    retention_table = tables["retention"]
    retention = RetentionPolicy(
        *(retention_table.get(key, _count, 0) for key in _RETENTION_KEYS),
        within=retention_table.get("keep_within", _retention_span, None),
        partial=retention_table.get("keep_partial", _count, 0),
    )

    table = tables["policy"]
    policy = Policy(
        devices=table.get("devices", _devices, None),
        name_patterns=table.get("device_names", _strings, ()),
        min_interval=table.get("min_interval", parse_duration, Policy.min_interval),
        max_concurrent=table.get("max_concurrent", _positive_int, default_max_concurrent()),
        require_encryption=table.get("require_encryption", _boolean, False),
        retention=retention,
        quiet_hours=table.get("quiet_hours", _quiet_hours, ()),
        retry_initial=table.get("retry_initial", parse_duration, Policy.retry_initial),
        retry_max=table.get("retry_max", parse_duration, Policy.retry_max),
        recheck_interval=table.get("recheck_interval", parse_duration, Policy.recheck_interval),
        categories=table.get("categories", _categories, None),  # absent: every category (a default is not parsed)
    )
    if policy.retry_max < policy.retry_initial:
        raise table.error("retry_max", "must not be shorter than retry_initial")

    table = tables["hooks"]
    commands = {event: table.get(f"on_{event}", _command, None) for event in HOOK_EVENTS}
    hooks = HookCommands(
        commands=commands, timeout=table.get("timeout", parse_duration, HookCommands.timeout)
    )

    table = tables["daemon"]
    state_dir = table.get("state_dir", relative, default_state_dir(path))
    daemon = DaemonSettings(
        state_dir=state_dir,
        event_log=table.get("event_log", relative, state_dir / EVENT_LOG_NAME),
        http=table.get("http", _http_address, None),
        metrics_port=table.get("metrics_port", _port, None),
    )
    for each in tables.values():
        each.check_unknown()
    return FleetConfig(path=path, repository=repository, policy=policy, hooks=hooks, daemon=daemon)
