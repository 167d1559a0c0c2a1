"""The container's entrypoint, two versions interleaved: first start and restart.

    .venv/bin/python benchmarks/ab_entrypoint.py BASE_DIR NEW_DIR [--image containai:default]
        [--base-image IMAGE] [--runtime runsc] [--uid 65532] [--rounds 5]

BASE_DIR and NEW_DIR hold an ``entrypoint.sh`` (and ``link-home.sh`` where the version
has one), e.g. ``git archive REV src/containai/templates/system | tar -x``. Each is
bind-mounted over the image's own; ``--base-image`` runs the base in another image (the
system layer of its own revision: what the image holds matters, e.g. an agent account).
A round, for each version (order reversed every other round): a new volume, ``docker
create`` (as cai does: ``--init``, no-new-privileges, the uid, a workspace, a git
identity), the SSH files copied in, ``docker start``; then ``docker stop`` and ``docker
start`` again. The time of a start is the log line ``containai: starting sshd``
(``docker logs -t``) minus ``.State.StartedAt``: the entrypoint's own time before sshd,
untraced. Prints per-round times, then medians as JSON. Everything it makes is labelled
``cai-bench-entrypoint`` and removed. Benchmarks are not tests.
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

LABEL = "cai-bench-entrypoint"
LIB = "/usr/local/lib/containai"


def docker(*args: str, check: bool = True) -> str:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, check=False)
    if check and proc.returncode:
        raise SystemExit(f"docker {args[0]}: {proc.stderr.strip()}")
    return proc.stdout


def stamp(text: str) -> datetime.datetime:
    """A Docker RFC 3339 time with nanoseconds, to microseconds."""
    head, _, frac = text.strip().rstrip("Z").partition(".")
    return datetime.datetime.fromisoformat(f"{head}.{(frac + '000000')[:6]}")


def ssh_tar() -> bytes:
    """The SSH files cai copies in (services/container_keys.py: root's, 0600/0644)."""
    with tempfile.TemporaryDirectory() as tmp:
        key = Path(tmp) / "k"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        files = {
            "ssh_host_ed25519_key": (key.read_bytes(), 0o600),
            "authorized_keys": (Path(f"{key}.pub").read_bytes(), 0o644),
        }
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, (data, mode) in files.items():
            info = tarfile.TarInfo(f"etc/containai/ssh/{name}")
            info.size, info.mode, info.mtime = len(data), mode, int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def sshd_at(name: str, nth: int) -> float:
    """Seconds from the container's (last) start to its nth "starting sshd" line."""
    deadline = time.monotonic() + 60
    while True:
        lines = [
            line
            for line in docker("logs", "-t", name).splitlines()
            if "containai: starting sshd" in line
        ]
        if len(lines) >= nth:
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"{name}: no 'starting sshd' line: {docker('logs', name)[-500:]}")
        time.sleep(0.05)
    started = docker("inspect", "-f", "{{.State.StartedAt}}", name)
    return (stamp(lines[nth - 1].split(" ", 1)[0]) - stamp(started)).total_seconds()


def one(
    impl: Path, image: str, args: argparse.Namespace, keys: bytes, ws: Path, tag: str
) -> tuple[float, float]:
    name = f"{LABEL}-{os.getpid()}-{tag}"
    mounts = [f"{impl / 'entrypoint.sh'}:{LIB}/entrypoint.sh:ro"]
    if (impl / "link-home.sh").is_file():
        mounts.append(f"{impl / 'link-home.sh'}:{LIB}/link-home.sh:ro")
    docker("volume", "create", "--label", LABEL, name)
    try:
        argv = ["create", "--name", name, "--label", LABEL, "--runtime", args.runtime, "--init"]
        argv += ["--security-opt", "no-new-privileges", "--cap-drop", "NET_RAW"]
        argv += ["-v", f"{name}:/mnt/agent-data", "-v", f"{ws}:{ws}"]
        for mount in mounts:
            argv += ["-v", mount]
        for key, value in (
            ("CAI_UID", str(args.uid)),
            ("CAI_GID", str(args.uid)),
            ("CAI_USER", "agent"),
            ("CAI_WORKSPACE", str(ws)),
            ("CAI_GIT_NAME", "Bench Mark"),
            ("CAI_GIT_EMAIL", "bench@example.invalid"),
        ):
            argv += ["-e", f"{key}={value}"]
        docker(*argv, image)
        subprocess.run(["docker", "cp", "-", f"{name}:/"], input=keys, check=True)
        docker("start", name)
        first = sshd_at(name, 1)
        docker("stop", "-t", "5", name)
        docker("start", name)
        restart = sshd_at(name, 2)
        return first, restart
    finally:
        docker("rm", "-f", name, check=False)
        docker("volume", "rm", "-f", name, check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("base", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--image", default="containai:default")
    parser.add_argument("--base-image", help="image for BASE_DIR (default: --image)")
    parser.add_argument("--runtime", default="runsc")
    parser.add_argument("--uid", type=int, default=65532)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    impls = {"base": args.base.resolve(), "new": args.new.resolve()}
    keys = ssh_tar()
    times: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="cai-bench-ep-") as tmp:
        ws = Path(tmp) / "ws"
        ws.mkdir()
        for i in range(args.rounds):
            order = list(impls) if i % 2 == 0 else list(reversed(impls))
            for impl in order:
                image = args.base_image if impl == "base" and args.base_image else args.image
                first, restart = one(impls[impl], image, args, keys, ws, f"{impl}{i}")
                times.setdefault(f"{impl}/first", []).append(first)
                times.setdefault(f"{impl}/restart", []).append(restart)
            print(i, {k: round(v[-1], 3) for k, v in times.items()}, flush=True)
    med = {k: round(statistics.median(v), 3) for k, v in times.items()}
    print(
        json.dumps(
            {"runtime": args.runtime, "uid": args.uid, "rounds": args.rounds, **med},
        )
    )
    print(f"load average {os.getloadavg()}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
