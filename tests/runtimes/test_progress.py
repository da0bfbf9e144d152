"""The shared progress reporter: real rate and ETA from the first step, lines at a steady interval."""

from __future__ import annotations

import pytest

from dehazekit.runtimes.progress import ProgressReporter, StageProgress, format_seconds, parse_duration


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_first_step_gives_a_real_rate_and_eta() -> None:
    clock, lines = _Clock(), []
    rep = ProgressReporter("search", 300, emit=lines.append, clock=clock)
    clock.now += 2.0
    rep.update(1, loss=0.5)
    assert rep.rate == pytest.approx(0.5) and rep.eta_s == pytest.approx(598.0)
    assert lines == ["search 1/300  2 s/step  ETA 9:58  elapsed 0:02  loss 0.5"]


def test_measured_step_times_exclude_the_setup_before_the_loop() -> None:
    clock, lines = _Clock(), []
    rep = ProgressReporter("finetune", 10, emit=lines.append, clock=clock)
    clock.now += 60.0  # loading, checkpoints: not part of a step
    rep.update(1, step_s=0.25)
    assert rep.rate == pytest.approx(4.0) and rep.eta_s == pytest.approx(9 * 0.25)


def test_lines_come_at_a_steady_interval_plus_the_last_step() -> None:
    clock, lines = _Clock(), []
    rep = ProgressReporter("pretrain", 100, emit=lines.append, interval_s=10.0, clock=clock)
    for step in range(1, 101):
        clock.now += 1.0
        rep.update(step)
    assert [line.split()[1] for line in lines] == [
        "1/100",
        "11/100",
        "21/100",
        "31/100",
        "41/100",
        "51/100",
        "61/100",
        "71/100",
        "81/100",
        "91/100",
        "100/100",
    ]


def test_stage_progress_one_reporter_per_stage_and_resume_offset() -> None:
    lines: list[str] = []
    progress = StageProgress(emit=lines.append, metrics=("loss",))
    progress({"stage": "search", "step": 51, "total": 60, "step_s": 0.5, "loss": 1.0, "w_grad_norm": 3.0})
    progress({"stage": "finetune", "step": 1, "total": 4, "step_s": 0.1, "loss": 0.9})
    assert lines[0].startswith("search 51/60  2 step/s  ETA 0:04") and "w_grad_norm" not in lines[0]
    assert lines[1].startswith("finetune 1/4  10 step/s")


def test_default_emit_is_logging(caplog) -> None:
    with caplog.at_level("INFO", logger="dehazekit.progress"):
        ProgressReporter("x", 2).update(2)
    assert "x 2/2" in caplog.text


def test_durations() -> None:
    assert parse_duration("10m") == 600 and parse_duration("1h30m") == 5400 and parse_duration("90") == 90
    assert parse_duration("1.5h") == 5400 and parse_duration("45s") == 45
    for bad in ("10 minutes", "m", "", "1x"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    assert format_seconds(3725) == "1:02:05" and format_seconds(None) == "?"
