"""Cold create behind the gateway, two versions of cai interleaved on one machine.

    .venv/bin/python benchmarks/ab_cold_create.py BASE_SRC NEW_SRC [--runtime runc] [--rounds 8]

BASE_SRC and NEW_SRC are ``src`` directories (e.g. ``git archive REV src | tar -x``);
each round creates a workspace with ``network.policy`` allowlist and one with open with
each version (``cai run --detached``), order reversed every other round, and removes them.
Prints per-round times, then medians and ratios as JSON. On a shared machine, the
interleaving is what makes the two versions comparable. Benchmarks are not tests.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CAI = str(Path(sys.executable).parent / "cai")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base")
    parser.add_argument("new")
    parser.add_argument("--runtime", default="runc")
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    srcs = {"base": str(Path(args.base).resolve()), "new": str(Path(args.new).resolve())}
    tmp = Path(tempfile.mkdtemp(prefix="cai-ab-"))
    home = tmp / "home"
    cfg = home / ".config" / "containai" / "config.toml"
    cfg.parent.mkdir(parents=True)
    volume = f"cai-ab-{os.getpid()}"
    env0 = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "CONTAINAI_", "CAI_"))}
    env0.update(HOME=str(home), CONTAINAI_DATA_VOLUME=volume)
    times: dict[tuple[str, str], list[float]] = {}

    def one(impl: str, policy: str, tag: str) -> None:
        env = dict(env0, PYTHONPATH=srcs[impl])
        cfg.write_text(f'[network]\npolicy = "{policy}"\n')
        ws = tmp / "ws" / f"{impl}-{policy[0]}-{tag}"
        ws.mkdir(parents=True)
        subprocess.run(["git", "init", "-q", "-b", "main", str(ws)], check=True)
        argv = [CAI, "run", "--detached", "--runtime", args.runtime]
        start = time.perf_counter()
        proc = subprocess.run(argv, cwd=ws, env=env, capture_output=True, text=True, check=False)
        took = time.perf_counter() - start
        subprocess.run(
            [CAI, "stop", "--remove", "--force"], cwd=ws, env=env, capture_output=True, check=False
        )
        if proc.returncode:
            print(f"failed: {impl} {policy}: {proc.stderr[-300:]}", file=sys.stderr)
            return
        times.setdefault((impl, policy), []).append(took)

    try:
        for impl in srcs:  # warm-up: images, caches
            one(impl, "allowlist", "warm")
        times.clear()
        for i in range(args.rounds):
            order = [(i_, p) for i_ in srcs for p in ("allowlist", "open")]
            for impl, policy in order if i % 2 == 0 else reversed(order):
                one(impl, policy, str(i))
            print(i, {f"{k[0]}/{k[1]}": round(v[-1], 2) for k, v in times.items()}, flush=True)
    finally:
        subprocess.run(["docker", "volume", "rm", "-f", volume], capture_output=True, check=False)
        shutil.rmtree(tmp, ignore_errors=True)
    med = {f"{k[0]}/{k[1]}": round(statistics.median(v), 3) for k, v in times.items()}
    pooled = statistics.median(times.get(("base", "open"), []) + times.get(("new", "open"), []))
    for impl in srcs:
        allow = times.get((impl, "allowlist"))
        if allow and pooled:
            med[f"ratio_{impl}_vs_pooled_open"] = round(statistics.median(allow) / pooled, 3)
    med["rounds"] = args.rounds
    print(json.dumps({"runtime": args.runtime, "load": os.getloadavg(), **med}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
