"""Scale benchmark: `cai list` and `cai gc` against the raw engine, as ratios.

    .venv/bin/python -m benchmarks.bench_scale [--containers 200] [--batch 100] [--rounds 5]

1. Creates N stopped (never started) containers labelled like cai's own
   (``containai.managed=true``) plus ``containai.bench=<run id>``.
2. ``cai list --json`` vs the raw ``docker ps -a --filter label=containai.managed=true
   --format '{{json .}}'`` (the same rows), interleaved, medians.
3. ``cai gc --force --age 0s`` of B containers vs one ``docker rm`` of B others,
   interleaved per round, medians. gc is scoped to its round's containers by a
   ``docker`` shim on PATH that adds a label filter to ``docker ps`` (a ``sh`` script:
   ~1 ms per call), so the benchmark never removes anything it did not create.

Everything created is removed at the end (also on Ctrl-C). Not a test: no assertions,
it prints medians and ratios (goal for gc: <= 1.5x), and the machine's load, since
both sides are a few hundred milliseconds and a busy machine moves them a lot.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CAI = str(Path(sys.executable).parent / "cai")
IMAGE = "containai-base:bookworm"
BENCH_LABEL = "containai.bench"
ROUND_LABEL = "containai.bench-round"

SHIM = """#!/bin/sh
# docker, but `docker ps` sees only one benchmark round's containers.
if [ "$1" = "--context" ]; then c1=$1; c2=$2; shift 2; else c1=""; c2=""; fi
if [ "$1" = "ps" ]; then shift; set -- ps --filter "label={round_label}=$CAI_BENCH_ROUND" "$@"; fi
if [ -n "$c1" ]; then exec {real} "$c1" "$c2" "$@"; fi
exec {real} "$@"
"""


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check)


def create(
    run_id: str,
    names: Sequence[str],
    round_id: str = "none",
    home: Path | None = None,
    *,
    started: bool = True,
) -> None:
    """Stopped (exited) managed containers, as `cai run` + `cai stop` leave them: each
    with its workspace lock file (cai run creates it) when ``home`` is given; never
    started ones (``docker create``: faster to make) when not ``started``."""
    if home is not None:
        from containai.adapters.locks import FileLocks
        from containai.paths import resolve_paths

        locks = FileLocks(resolve_paths({"HOME": str(home)}).locks_dir)
        for name in names:
            with locks.workspace(f"/nonexistent/cai-bench/{name}"):  # type: ignore[attr-defined]
                pass

    def one(name: str) -> None:
        docker(
            "run" if started else "create",
            "--name",
            name,
            "--label",
            "containai.managed=true",
            "--label",
            f"containai.workspace=/nonexistent/cai-bench/{name}",
            "--label",
            "containai.runtime=runc",
            "--label",
            f"{BENCH_LABEL}={run_id}",
            "--label",
            f"{ROUND_LABEL}={round_id}",
            "--network",
            "none",
            IMAGE,
            "true",
        )

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(one, names))


def timed(cmd: Sequence[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])}... failed: {proc.stderr.strip()}")
    return elapsed


def interleaved(
    rounds: int, a: Callable[[int], float], b: Callable[[int], float]
) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for i in range(rounds):
        if i % 2 == 0:
            xs.append(a(i))
            ys.append(b(i))
        else:
            ys.append(b(i))
            xs.append(a(i))
    return xs, ys


def report(label: str, cai: list[float], raw: list[float], target: float | None) -> None:
    mc, mr = statistics.median(cai), statistics.median(raw)
    ratio = mc / mr if mr else float("inf")
    goal = ""
    if target is not None:
        goal = f" (goal <= {target}x: {'met' if ratio <= target else 'NOT met'})"
    print(
        f"{label:<34} cai {mc * 1000:8.1f} ms   raw {mr * 1000:8.1f} ms   ratio {ratio:5.2f}x{goal}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--containers", type=int, default=200)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    opts = parser.parse_args(argv)
    real = shutil.which("docker")
    if real is None:
        raise SystemExit("docker is not installed")
    run_id = uuid.uuid4().hex[:8]
    home = Path(tempfile.mkdtemp(prefix="cai-bench-"))
    shim_dir = home / "bin"
    shim_dir.mkdir()
    shim = shim_dir / "docker"
    shim.write_text(SHIM.format(real=real, round_label=ROUND_LABEL))
    shim.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONTAINAI_", "XDG_"))}
    env["DOCKER_CONFIG"] = os.environ.get("DOCKER_CONFIG") or str(Path.home() / ".docker")
    env["HOME"] = str(home)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"machine: {os.cpu_count()} CPUs, load average {load}")
    try:
        names = [f"cai-bench-{run_id}-{i:03d}" for i in range(opts.containers)]
        print(f"creating {len(names)} stopped managed containers ...", file=sys.stderr)
        create(run_id, names)

        raw_list = [
            "docker",
            "ps",
            "-a",
            "--no-trunc",
            "--filter",
            "label=containai.managed=true",
            "--format",
            "{{json .}}",
        ]
        timed([CAI, "list", "--json"], env)  # warm caches
        lists = interleaved(
            opts.rounds * 2,
            lambda _i: timed([CAI, "list", "--json"], env),
            lambda _i: timed(raw_list),
        )
        report(f"list ({len(names)}+ containers)", *lists, target=None)

        gc_env = {**env, "PATH": f"{shim_dir}{os.pathsep}{env.get('PATH', '')}"}

        def gc_round(i: int) -> float:
            round_id = f"{run_id}-gc{i}"
            batch = [f"cai-bench-{run_id}-gc{i}-{j:03d}" for j in range(opts.batch)]
            create(run_id, batch, round_id, home)
            time.sleep(1.1)  # older than --age 0s by a clear margin
            return timed(
                [CAI, "gc", "--force", "--age", "0s"], {**gc_env, "CAI_BENCH_ROUND": round_id}
            )

        def rm_round(i: int) -> float:
            batch = [f"cai-bench-{run_id}-rm{i}-{j:03d}" for j in range(opts.batch)]
            create(run_id, batch, f"{run_id}-rm{i}")
            time.sleep(1.1)
            return timed(["docker", "rm", *batch])

        print(f"gc vs docker rm of {opts.batch}, {opts.rounds} rounds ...", file=sys.stderr)
        gcs = interleaved(opts.rounds, gc_round, rm_round)
        report(f"gc --force ({opts.batch} containers)", *gcs, target=1.5)
    finally:
        left = docker(
            "ps", "-aq", "--filter", f"label={BENCH_LABEL}={run_id}", check=False
        ).stdout.split()
        if left:
            docker("rm", "-f", *left, check=False)
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
