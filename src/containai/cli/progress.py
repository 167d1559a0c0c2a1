"""Progress of long work on stderr (SPEC section 2): a live bar on a TTY, one line per
phase otherwise, so a log never sits silent for more than ~10 s. ``-q`` silences it.

Used for image builds (``services/images.py`` calls ``BuildDisplay(title)`` around each
image build and feeds it the build's lines). Not on the hot path: ``rich`` is
imported only when a build runs on a TTY.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

TYPE_CHECKING = False  # `typing` costs ~4 ms with `re`; mypy and ruff read these
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from containai.cli.output import Output

    OnLine = Callable[[str, "tuple[int, int] | None"], None]

HEARTBEAT_SECONDS = 10.0
INSTRUCTION_WIDTH = 90


def instruction(line: str) -> str:
    """The Dockerfile instruction of a step line (``Step 3/12 : RUN x`` -> ``RUN x``),
    shortened to one readable line."""
    text = line.strip()
    if text.startswith("Step ") and " : " in text:
        text = text.partition(" : ")[2]
    elif text.startswith("#") and "] " in text:
        text = text.partition("] ")[2]
    text = " ".join(text.split())
    if len(text) > INSTRUCTION_WIDTH:
        text = text[: INSTRUCTION_WIDTH - 3] + "..."
    return text


class BuildDisplay:
    """``with display(title) as on_line:`` around one build."""

    def __init__(
        self,
        out: Output,
        *,
        tty: bool | None = None,
        heartbeat: float = HEARTBEAT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.out = out
        self.tty = out.stderr.isatty() if tty is None else tty
        self.heartbeat = heartbeat
        self.clock = clock
        self._lock = threading.Lock()

    def phase(self, message: str) -> None:
        """One line for a phase (TTY or not)."""
        if self.out.quiet:
            return
        with self._lock:
            self.out.stderr.write(f"cai: {message}\n")
            self.out.stderr.flush()

    @contextmanager
    def __call__(self, title: str) -> Iterator[OnLine | None]:
        if self.out.quiet:
            yield None
        elif self.tty:
            with self._bar(title) as on_line:
                yield on_line
        else:
            with self._lines(title) as on_line:
                yield on_line

    # ---------------------------------------------------------- not a TTY
    @contextmanager
    def _lines(self, title: str) -> Iterator[OnLine]:
        """The title, each step as it starts, and a line after each ``heartbeat`` seconds
        without one; the time it took at the end."""
        start = self.clock()
        last = [start]  # when a line was last written
        current: list[str] = [""]  # the step being worked on
        stop = threading.Event()

        def write(text: str) -> None:
            self.phase(text)
            last[0] = self.clock()

        def beat() -> None:
            while not stop.wait(min(1.0, self.heartbeat)):
                now = self.clock()
                if now - last[0] >= self.heartbeat:
                    where = f" at {current[0]}" if current[0] else ""
                    write(f"  still working{where} ({now - start:.0f} s)")

        def on_line(line: str, step: tuple[int, int] | None) -> None:
            if step is not None:
                current[0] = f"step {step[0]}/{step[1]}"
                write(f"  {current[0]}: {instruction(line)}")

        write(title)
        ticker = threading.Thread(target=beat, name="cai-progress", daemon=True)
        ticker.start()
        try:
            yield on_line
        finally:
            stop.set()
            ticker.join()
        write(f"  done ({self.clock() - start:.0f} s)")

    # --------------------------------------------------------------- a TTY
    @contextmanager
    def _bar(self, title: str) -> Iterator[OnLine]:
        """A live bar of the Dockerfile's steps with a spinner and the current
        instruction; one line with the time it took stays when it ends."""
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        console = Console(file=self.out.stderr, highlight=False, markup=False, emoji=False)
        start = self.clock()
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as bar:
            task = bar.add_task(title, total=None)

            def on_line(line: str, step: tuple[int, int] | None) -> None:
                if step is not None:
                    bar.update(
                        task,
                        total=step[1],
                        completed=step[0] - 1,
                        description=f"{title}: {instruction(line)}",
                    )

            yield on_line
        self.phase(f"{title}: done ({self.clock() - start:.0f} s)")
