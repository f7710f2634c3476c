"""The fleet benchmark's capacity figure: how many devices at once keep their one-device speed."""

from __future__ import annotations

from benchmarks.bench_fleet import Run, capacity_markdown, devices_at_full_speed


def run(devices: int, rates: list[float]) -> Run:
    return Run(rate_mb_s=35, max_concurrent=devices, devices=devices, megabytes=sum(rates) * 10,
               wall_seconds=10, daemon_cpu_seconds=1, peak_running=devices, device_rates=rates)  # fmt: skip


def test_the_count_stops_at_the_first_number_of_devices_where_one_falls_behind() -> None:
    runs = [run(1, [30.0]), run(2, [29.0, 28.6]), run(3, [29.5, 27.0, 29.0]), run(4, [28.9] * 4)]
    assert devices_at_full_speed(runs) == 2  # 27.0 < 95 % of 30; four passing by luck afterwards does not count


def test_every_count_passing_gives_the_largest_and_none_gives_one_at_least() -> None:
    assert devices_at_full_speed([run(1, [30.0]), run(2, [30.0, 29.0]), run(3, [29.0] * 3)]) == 3
    assert devices_at_full_speed([run(1, [30.0]), run(2, [10.0, 30.0])]) == 1


def test_the_report_names_the_figure_and_the_nominal_cable_speed() -> None:
    report = capacity_markdown("small", [run(1, [30.0]), run(2, [29.0, 28.6])])
    assert "Devices at full speed at once: **2**" in report
    assert "nominal speed is 35 MB/s" in report
    assert "| 2 | 28.6 | 28.8 | 95% |" in report
