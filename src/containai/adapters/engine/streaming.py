"""``docker`` commands whose output is read line by line as it comes: ``docker build``
(each line to a callback, with the Dockerfile step it starts) and ``docker logs``. Out of
``DockerEngine`` (which delegates here) so the engine's module stays one page per job;
loaded only by the commands that build or show logs."""

from __future__ import annotations

import collections
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from containai.adapters.engine import shapes
from containai.adapters.engine.client import DockerCli
from containai.domain.errors import EngineUnreachable, Failed

# The longest piece of a container's log line that ``logs`` yields at once.
LINE_MAX = 65536


def build_argv(
    context_dir: Path,
    *,
    tag: str,
    build_args: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    dockerfile: Path | None = None,
    target: str | None = None,
) -> list[str]:
    """The ``docker build`` arguments (after ``docker``)."""
    args = ["build", "--force-rm", "--tag", tag]  # no containers left by a failed step
    if dockerfile is not None:
        args += ["--file", str(dockerfile)]
    if target is not None:
        args += ["--target", target]
    for key, value in (build_args or {}).items():
        args += ["--build-arg", f"{key}={value}"]
    for key, value in (labels or {}).items():
        args += ["--label", f"{key}={value}"]
    args.append(str(context_dir))
    return args


def build(
    cli: DockerCli,
    context_dir: Path,
    *,
    tag: str,
    build_args: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    dockerfile: Path | None = None,
    on_line: Callable[[str, tuple[int, int] | None], None] | None = None,
    timeout: float = 3600.0,
    target: str | None = None,
) -> None:
    """``docker build``; each output line goes to ``on_line`` as it comes, with
    ``(step, of)`` when it starts a step of the Dockerfile (progress); the last lines
    are kept for the error."""
    args = build_argv(
        context_dir,
        tag=tag,
        build_args=build_args,
        labels=labels,
        dockerfile=dockerfile,
        target=target,
    )
    env = {**cli.env, "DOCKER_BUILDKIT": cli.env.get("DOCKER_BUILDKIT", "0")}
    last: collections.deque[str] = collections.deque(maxlen=15)
    try:
        proc = subprocess.Popen(
            cli.argv(*args),
            env=env,
            text=True,
            errors="replace",
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
    except FileNotFoundError:
        raise EngineUnreachable(f"the docker CLI ('{cli.docker}') is not installed") from None
    timed_out = threading.Event()

    def expire() -> None:
        timed_out.set()
        proc.kill()

    timer = threading.Timer(timeout, expire)
    timer.daemon = True
    timer.start()
    try:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip("\n")
            last.append(line)
            if on_line is not None:
                on_line(line, shapes.build_step(line))
        proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if timed_out.is_set():
        raise Failed(f"building image '{tag}' took longer than {timeout:.0f} s")
    if proc.returncode != 0:
        tail = "\n".join(line for line in last if line.strip()).strip()
        err = cli._translate(["build"], tail)
        if isinstance(err, EngineUnreachable):
            raise err
        raise Failed(f"building image '{tag}' failed:\n{tail}")


def logs(
    cli: DockerCli, name: str, *, tail: int | None = None, follow: bool = False
) -> Iterator[str]:
    """``docker logs [--tail N] [--follow] NAME``: the container's stdout and stderr
    merged in one stream, line by line as they come; the process ends when the
    caller stops iterating. A failure of the call itself is translated at the end."""
    args = ["logs", *(["--tail", str(tail)] if tail is not None else [])]
    args += [*(["--follow"] if follow else []), name]
    try:
        proc = subprocess.Popen(
            cli.argv(*args),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=cli.env,
        )
    except FileNotFoundError:
        raise EngineUnreachable(f"the docker CLI ('{cli.docker}') is not installed") from None
    last = ""
    try:
        assert proc.stdout is not None
        # A line longer than LINE_MAX (the container writes what it likes) comes in pieces.
        stdout = proc.stdout
        for raw in iter(lambda: stdout.readline(LINE_MAX), b""):
            last = raw.decode("utf-8", "replace").rstrip("\r\n")
            yield last
    finally:
        if proc.poll() is None:
            proc.kill()
        code = proc.wait()
    if code not in (0, -9) and last.startswith(("Error", "error")):
        raise cli._translate(args, last)
