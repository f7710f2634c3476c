"""The fleet configuration file and the policy decisions: values, defaults, and errors that name file, line, key."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from conftest import CofferCli

from agent.fleet.config import ConfigError, load_config, parse_duration
from agent.fleet.policy import Policy, QuietHours, default_max_concurrent, usb2_bus_count
from agent.repository.retention import RetentionPolicy

FULL = """\
[repository]
url = "s3://fleet-bucket/shop"
key_file = "keys/station.key"

[policy]
devices = ["00008030-001A2B3C4D5E6F70", "00008120-000946C68489E4C9"]
device_names = ["Shop *", "Loaner-?"]
min_interval = "1h30m"
max_concurrent = 3
categories = "all"
require_encryption = true
quiet_hours = ["12:00-13:00", "22:00-07:00"]
retry_initial = "10s"
retry_max = "5m"
recheck_interval = 2

[retention]
keep_daily = 7
keep_weekly = 4

[hooks]
on_success = "/usr/local/bin/notify --ok 'backup done'"
on_failure = ["/usr/local/bin/notify", "--failed"]
timeout = "30s"

[daemon]
state_dir = "run/fleet"
http = "127.0.0.1:8080"
metrics_port = 9477
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "coffer.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_full_configuration(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, FULL))
    assert config.repository.url == "s3://fleet-bucket/shop"
    assert config.repository.key_file == tmp_path / "keys/station.key"  # relative to the file
    assert config.repository.password_file is None
    policy = config.policy
    assert policy.devices == ("00008030-001A2B3C4D5E6F70", "00008120-000946C68489E4C9")
    assert policy.name_patterns == ("Shop *", "Loaner-?")
    assert policy.min_interval == 5400 and policy.max_concurrent == 3 and policy.require_encryption
    assert [str(q) for q in policy.quiet_hours] == ["12:00-13:00", "22:00-07:00"]
    assert (policy.retry_initial, policy.retry_max, policy.recheck_interval) == (10, 300, 2)
    assert policy.retention == RetentionPolicy(daily=7, weekly=4)
    assert config.hooks.commands["success"] == ("/usr/local/bin/notify", "--ok", "backup done")
    assert config.hooks.commands["failure"] == ("/usr/local/bin/notify", "--failed")
    assert config.hooks.commands["attach"] is None and config.hooks.timeout == 30
    assert config.daemon.state_dir == tmp_path / "run/fleet"
    assert config.daemon.status_socket == tmp_path / "run/fleet/status.sock"
    assert config.daemon.event_log == tmp_path / "run/fleet/events.jsonl"
    assert config.daemon.http == ("127.0.0.1", 8080) and config.daemon.metrics_port == 9477


def test_an_empty_file_means_the_defaults(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, ""))
    assert config.repository.url is None  # then --repo or COFFER_REPOSITORY
    assert config.policy.devices is None and config.policy.name_patterns == ()
    assert config.policy.min_interval == 12 * 3600
    assert config.policy.max_concurrent == default_max_concurrent()
    assert config.policy.retention.empty and config.policy.quiet_hours == ()
    # Each configuration file gets a state folder (and status socket) of its own.
    other = tmp_path / "other"
    other.mkdir()
    assert load_config(_write(other, "")).daemon.state_dir != config.daemon.state_dir


def test_a_local_repository_path_is_relative_to_the_file(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, '[repository]\nurl = "backups/repo"\npassword_file = "pw"\n'))
    assert config.repository.url == str(tmp_path / "backups/repo")
    assert config.repository.password_file == tmp_path / "pw"


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("[policy]\nmin_interval = \n", 2, "TOML syntax"),
        (
            '[policy]\ndevices = "all"\nmin_interval = "soon"\n',
            3,
            "[policy] min_interval: 'soon' is not a duration",
        ),
        ("[policy]\n\nmax_concurent = 2\n", 3, "[policy] max_concurent: unknown key"),
        ("[polcy]\nmax_concurrent = 2\n", 1, "[polcy]: unknown table"),
        ('[policy]\ndevices = "some"\n', 2, '[policy] devices: expected "all" or a list of UDIDs'),
        ("[policy]\nmax_concurrent = 0\n", 2, "[policy] max_concurrent: must be 1 or more"),
        ("[policy]\nmax_concurrent = true\n", 2, "[policy] max_concurrent: expected a whole number"),
        ('[policy]\nquiet_hours = "25:00-07:00"\n', 2, "[policy] quiet_hours: '25:00-07:00'"),
        ('[policy]\nquiet_hours = "night"\n', 2, "is not a time window"),
        ('[policy]\ncategories = ["fotos"]\n', 2, "[policy] categories: unknown categories fotos"),
        ('[policy]\ncategories = "photos"\n', 2, '[policy] categories: expected "all" or a list of category names'),
        ('[policy]\nretry_initial = "1h"\nretry_max = "1m"\n', 3, "[policy] retry_max: must not be shorter"),
        (
            '[repository]\nkey_file = "a"\npassword_file = "b"\n',
            3,
            "give key_file or password_file, not both",
        ),
        ('[hooks]\non_success = ""\n', 2, "[hooks] on_success: the command is empty"),
        ("[retention]\nkeep_daily = -1\n", 2, "[retention] keep_daily: expected a whole number 0 or more"),
        ('[daemon]\nhttp = "localhost"\n', 2, "[daemon] http: 'localhost' is not HOST:PORT"),
        ("[daemon]\nmetrics_port = 70000\n", 2, "[daemon] metrics_port: 70000 is not a TCP port"),
        ("policy = 3\n", 1, "[policy]: must be a table"),
    ],
)
def test_errors_name_the_file_the_line_and_the_key(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.line == line
    assert str(caught.value).startswith(f"{path}:{line}: "), str(caught.value)
    assert message in str(caught.value)


def test_a_missing_file_is_a_usage_error(coffer: CofferCli, tmp_path: Path) -> None:
    run = coffer("watch", "--config", tmp_path / "nope.toml", expect=2)
    assert "nope.toml does not exist" in run.stderr


def test_the_command_reports_a_bad_file_in_one_line(coffer: CofferCli, tmp_path: Path) -> None:
    path = _write(tmp_path, '[policy]\nmax_concurrent = 2\nmin_interval = "every day"\n')
    run = coffer("watch", "--config", path, expect=2)
    assert run.stderr.strip() == (
        f"coffer: {path}:3: [policy] min_interval: 'every day' is not a duration: use a number with d, h, m or s, "
        'such as "12h" or "1h30m"'
    )
    coffer("fleet", "status", "--config", path, expect=2)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("12h", 43200), ("1h30m", 5400), ("90s", 90), ("2d", 172800), ("0.5m", 30), (45, 45)],
)
def test_durations(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["12", "h", "1x", "", True, -5, "1h 30"])
def test_bad_durations(value: object) -> None:
    with pytest.raises((ValueError, TypeError)):
        parse_duration(value)


def _at(hour: int, minute: int = 0, day: int = 5) -> float:
    return dt.datetime(2026, 1, day, hour, minute).timestamp()


def test_quiet_hours_wrap_midnight_and_chain() -> None:
    night = QuietHours(dt.time(22), dt.time(7))
    lunch = QuietHours(dt.time(12), dt.time(13))
    policy = Policy(quiet_hours=(night, lunch))
    assert policy.quiet_until(_at(23)) == _at(7, day=6)
    assert policy.quiet_until(_at(3)) == _at(7)
    assert policy.quiet_until(_at(12, 30)) == _at(13)
    assert policy.quiet_until(_at(7)) is None and policy.quiet_until(_at(21, 59)) is None
    # Windows that touch are one quiet stretch.
    evening = QuietHours(dt.time(18), dt.time(22))
    assert Policy(quiet_hours=(night, evening)).quiet_until(_at(19)) == _at(7, day=6)


def test_backoff_doubles_up_to_the_maximum() -> None:
    policy = Policy(retry_initial=10, retry_max=60)
    assert [policy.retry_delay(n) for n in range(1, 6)] == [10, 20, 40, 60, 60]


def test_categories_select_what_is_stored(tmp_path: Path) -> None:
    path = tmp_path / "coffer.toml"
    path.write_text('[repository]\nurl = "repo"\n[policy]\ncategories = ["photos", "messages"]\n')
    assert load_config(path).policy.categories == ("photos", "messages")
    path.write_text('[repository]\nurl = "repo"\n[policy]\ncategories = "all"\n')
    assert load_config(path).policy.categories is None
    path.write_text('[repository]\nurl = "repo"\n')  # absent means every category too (was the string "all")
    assert load_config(path).policy.categories is None


def test_device_selection() -> None:
    policy = Policy(devices=("00008030-001A2B3C4D5E6F70",), name_patterns=("Shop *",))
    assert policy.selects_udid("00008030001a2b3c4d5e6f70")  # usbmuxd may drop the dash
    assert not policy.selects_udid("00008030-001A2B3C4D5E6F71")
    assert policy.selects_name("Shop 12") and not policy.selects_name("Anna's iPhone")
    assert Policy().selects_udid("anything") and Policy().selects_name("anything")


def test_default_concurrency_follows_cores_and_usb_buses(tmp_path: Path) -> None:
    assert default_max_concurrent(cpu_count=16, usb2_buses=None) == 4
    assert default_max_concurrent(cpu_count=2, usb2_buses=None) == 2
    assert default_max_concurrent(cpu_count=16, usb2_buses=1) == 2
    assert default_max_concurrent(cpu_count=1, usb2_buses=3) == 1
    for name, speed in (("usb1", "480"), ("usb2", "5000"), ("usb3", "480"), ("1-1", "480")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "speed").write_text(speed + "\n")
    assert usb2_bus_count(tmp_path) == 2
    assert usb2_bus_count(tmp_path / "missing") is None
