"""State-change lines (SPEC section 2) and build progress: phase lines when stderr is not
a TTY (never silent for more than the heartbeat), nothing with -q."""

from __future__ import annotations

import io
import threading

import pytest

from containai.cli.output import Output
from containai.cli.progress import BuildDisplay, instruction
from containai.services.changes import ready_lines, stop_line
from containai.services.run_request import Ready


def ready(action: str) -> Ready:
    return Ready("app-main", "/src/app", "vol-1", 2300, "agent", action, "runsc")


@pytest.mark.parametrize(
    ("action", "lines"),
    [
        ("create", ["created app-main (ssh cai-app-main)"]),
        ("recreate", ["recreated app-main (ssh cai-app-main)"]),
        ("start", ["started app-main (ssh cai-app-main)"]),
        ("attach", []),
    ],
)
def test_ready_lines(action: str, lines: list[str]) -> None:
    assert ready_lines(ready(action)) == lines


def test_reset_says_which_new_volume() -> None:
    assert ready_lines(ready("recreate"), reset=True) == [
        "new data volume vol-1",
        "recreated app-main (ssh cai-app-main)",
    ]


def test_stop_lines() -> None:
    assert stop_line("a", "running", removed=False) == "stopped a"
    assert stop_line("a", "exited", removed=False) == "a was not running (exited)"
    assert stop_line("a", "running", removed=True, volume="v") == (
        "removed a (and its SSH entry; data volume v kept)"
    )


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def out(quiet: bool = False) -> tuple[Output, io.StringIO]:
    err = io.StringIO()
    return Output(quiet=quiet, stderr=err, stdout=io.StringIO()), err


def test_piped_build_prints_phase_step_and_done_lines() -> None:
    output, err = out()
    clock = FakeClock()
    display = BuildDisplay(output, tty=False, clock=clock, heartbeat=1000)
    with display("building template 'default' on debian") as on_line:
        assert on_line is not None
        on_line("Step 1/2 : FROM debian", (1, 2))
        on_line(" ---> abc", None)
        clock.now = 25.2
        on_line("Step 2/2 : RUN apt-get   install -y\tgit", (2, 2))
    assert err.getvalue().splitlines() == [
        "cai: building template 'default' on debian",
        "cai:   step 1/2: FROM debian",
        "cai:   step 2/2: RUN apt-get install -y git",
        "cai:   done (25 s)",
    ]


def test_piped_build_is_never_silent_longer_than_the_heartbeat() -> None:
    output, err = out()
    display = BuildDisplay(output, tty=False, heartbeat=0.05)
    with display("building") as on_line:
        assert on_line is not None
        on_line("Step 3/9 : RUN sleep", (3, 9))
        threading.Event().wait(0.4)  # a step that takes a while and prints nothing
    lines = err.getvalue().splitlines()
    assert any(line.startswith("cai:   still working at step 3/9 (") for line in lines)
    assert lines[-1].startswith("cai:   done (")


def test_a_failed_build_does_not_say_done() -> None:
    output, err = out()
    display = BuildDisplay(output, tty=False, heartbeat=1000)
    with pytest.raises(RuntimeError), display("building"):
        raise RuntimeError("docker build failed")
    assert "done" not in err.getvalue()


def test_quiet_prints_nothing() -> None:
    output, err = out(quiet=True)
    display = BuildDisplay(output, tty=False)
    display.phase("pulling")
    with display("building") as on_line:
        assert on_line is None
    assert err.getvalue() == ""


def test_tty_build_draws_a_bar_and_leaves_one_line() -> None:
    output, err = out()
    display = BuildDisplay(output, tty=True)
    with display("building [x]") as on_line:
        assert on_line is not None
        on_line('Step 1/2 : RUN ["echo", "[red]x"]', (1, 2))
    assert err.getvalue().rstrip().endswith("cai: building [x]: done (0 s)")


@pytest.mark.parametrize(
    ("line", "text"),
    [
        ("Step 3/12 : RUN apt-get update", "RUN apt-get update"),
        ("#7 [2/4] COPY a b", "COPY a b"),
        ("Step 1/1 : RUN " + "x" * 200, "RUN " + "x" * 83 + "..."),
    ],
)
def test_instruction(line: str, text: str) -> None:
    assert instruction(line) == text
