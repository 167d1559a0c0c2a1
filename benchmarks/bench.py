"""cai against the raw engine, OpenSSH and the devcontainers CLI, in one interleaved run.

    .venv/bin/python benchmarks/bench.py [--quick] [--only CASE ...] [--build-from-nothing]
                                         [--json PATH]

The goals are issue 19's (speed, round 2); each case runs under gVisor (runsc, cai's
default where the engine has it) and runc where the runtime matters. Medians of
interleaved runs (A B A B ...), printed as a table with ratios and written as JSON.
Everything runs in a sandboxed HOME; every container, volume, network, workspace and
image it creates is removed at the end. The devcontainers CLI comes from npm (installed
into benchmarks/.node/ on first use). cai is the installed launcher when it is this
checkout's ``bin/cai``, else a copy of that (an older install is not measured).
Benchmarks are not tests: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import bench_scale  # benchmarks/ is this script's directory: on sys.path

ROOT = Path(__file__).resolve().parent.parent
CAI = str(Path(sys.executable).parent / "cai")  # replaced by main() when stale
NODE_DIR = ROOT / "benchmarks" / ".node"
IMAGE = "containai:default"
# The egress test host: 200 MB at /blob over HTTP on 8000 and HTTPS on 8443.
_SERVE = (
    "import http.server as h, ssl, threading\n"
    "def srv(port):\n"
    "    return h.ThreadingHTTPServer(('0.0.0.0', port), h.SimpleHTTPRequestHandler)\n"
    "tls = srv(8443)\n"
    "ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n"
    "ctx.load_cert_chain('cert.pem', 'key.pem')\n"
    "tls.socket = ctx.wrap_socket(tls.socket, server_side=True)\n"
    "threading.Thread(target=tls.serve_forever, daemon=True).start()\n"
    "srv(8000).serve_forever()\n"
)


def run(
    argv: list[str], env: dict[str, str], cwd: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr[-800:]}")
    return proc


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleave(
    n: int, a: Callable[[], float], b: Callable[[], float], c: Callable[[], float] | None = None
) -> tuple[list[float], ...]:
    xs: list[float] = []
    ys: list[float] = []
    zs: list[float] = []
    for _ in range(n):
        xs.append(a())
        ys.append(b())
        if c is not None:
            zs.append(c())
    return (xs, ys, zs) if c is not None else (xs, ys)


def devcontainer_cli() -> str | None:
    exe = NODE_DIR / "node_modules" / ".bin" / "devcontainer"
    if not exe.exists():
        NODE_DIR.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            [
                "npm",
                "install",
                "--prefix",
                str(NODE_DIR),
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                "@devcontainers/cli",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            print(f"devcontainers CLI unavailable: {proc.stderr[-300:]}", file=sys.stderr)
            return None
    return str(exe)


class Bench:
    def __init__(self, quick: bool) -> None:
        self.n = 5 if quick else 15
        self.n_cold = 3 if quick else 6
        self.tmp = Path(tempfile.mkdtemp(prefix="cai-bench-"))
        self.home = self.tmp / "home"
        self.home.mkdir()
        self.tag = uuid.uuid4().hex[:6]
        self.env = {
            k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "CONTAINAI_", "CAI_"))
        }
        self.env.update(HOME=str(self.home), CONTAINAI_DATA_VOLUME=f"cai-bench-{self.tag}")
        self.results: dict[str, dict[str, float | str]] = {}
        self.containers: list[str] = []
        self.volumes: list[str] = [f"cai-bench-{self.tag}"]
        self.images: list[str] = []
        self.warm: dict[str, tuple[str, Path]] = {}  # runtime -> (container, workspace)
        self._runtimes: list[str] | None = None

    def workspace(self, name: str) -> Path:
        ws = self.tmp / "ws" / name
        ws.mkdir(parents=True)
        run(["git", "init", "-q", "-b", "main", str(ws)], self.env)
        return ws

    def record(
        self, key: str, ours: list[float], theirs: list[float], label: str, goal: str
    ) -> None:
        a, b = statistics.median(ours), statistics.median(theirs)
        self.results[key] = {
            "cai_s": round(a, 4),
            "baseline_s": round(b, 4),
            "ratio": round(a / b, 3) if b else float("nan"),
            "baseline": label,
            "goal": goal,
        }

    # ------------------------------------------------------------------ cases
    def runtimes(self) -> list[str]:
        """gVisor (cai's default where the engine has it) first, then runc."""
        if self._runtimes is None:
            self._runtimes = [*(["runsc"] if self.has_runtime("runsc") else []), "runc"]
        return self._runtimes

    def warm_exec(self) -> None:
        """Warm ``cai exec -- true`` against ``docker exec`` (goal <= 0.7x) and against the
        floor: ``ssh`` through the control master running the same remote command cai
        sends (``cd <workspace> && exec true``), under each runtime."""
        for runtime in self.runtimes():
            ws = self.workspace(f"warm{runtime}")
            run([CAI, "run", "--detached", "--runtime", runtime], self.env, ws)
            name = json.loads(run([CAI, "run", "--dry-run", "--json"], self.env, ws).stdout)[
                "container"
            ]
            self.containers.append(name)
            self.warm[runtime] = (name, ws)
            entry = self.home / ".ssh" / "containai.d" / f"{name}.conf"
            run([CAI, "exec", "--", "true"], self.env, ws)
            floor = ["ssh", "-F", str(entry), "-T", f"cai-{name}", f"cd {ws} && exec true"]
            ours, docker, ssh = interleave(
                self.n * 2,
                lambda ws=ws: timed(lambda: run([CAI, "exec", "--", "true"], self.env, ws)),
                lambda name=name: timed(lambda: run(["docker", "exec", name, "true"], self.env)),
                lambda floor=floor: timed(lambda: run(floor, self.env)),
            )
            self.record(f"warm_exec_{runtime}", ours, docker, f"docker exec ({runtime})", "<= 0.7")
            self.record(
                f"warm_exec_vs_ssh_{runtime}", ours, ssh, "ssh via control master (floor)", "info"
            )
        # Peak memory of `cai exec` (the process, through its exec into ssh), measured by
        # GNU time: a child of this (larger) Python would inherit its high-water mark.
        _name, ws = self.warm[self.runtimes()[0]]
        gnu_time = "/usr/bin/time"
        if not os.access(gnu_time, os.X_OK):
            self.results["exec_peak_memory"] = {"error": "needs GNU time (/usr/bin/time)"}
            return

        def peak(argv: list[str]) -> float:
            proc = run([gnu_time, "-f", "%M", *argv], self.env, ws)
            return int(proc.stderr.strip().splitlines()[-1]) / 1024

        # The first exec after another workspace's `cai run` (which rewrote config.toml,
        # part of the cache key) takes the full path and asks the engine: measured alone.
        first = round(peak([CAI, "exec", "--", "true"]), 1)
        ours = [round(peak([CAI, "exec", "--", "true"]), 1) for _ in range(5)]
        python = max(peak([sys.executable, "-c", "pass"]) for _ in range(3))
        self.results["exec_peak_memory"] = {
            "cai_mib": max(ours),
            "each_mib": ours,
            "first_after_config_change_mib": first,
            "python_mib": round(python, 1),  # the interpreter alone, for scale
            "goal": "<= 30 MiB",
        }

    def cold_create(self) -> None:
        """``cai run --detached`` of a new workspace against ``devcontainer up`` with the
        same image and the same runtime (``runArgs: ["--runtime", ...]``), per runtime;
        ``docker run -d`` of the image as info."""
        devc = devcontainer_cli()
        for runtime in self.runtimes():
            ours: list[float] = []
            docker_run: list[float] = []
            dev: list[float] = []
            for i in range(self.n_cold):
                ws = self.workspace(f"cold{runtime}{i}")
                argv = [CAI, "run", "--detached", "--runtime", runtime]
                ours.append(timed(lambda ws=ws, argv=argv: run(argv, self.env, ws)))
                run([CAI, "stop", "--remove", "--force"], self.env, ws)  # and its gateway
                cname = f"cai-bench-run-{self.tag}-{runtime}-{i}"
                plain = ["docker", "run", "-d", "--name", cname, "--runtime", runtime,
                         "--label", f"cai-bench={self.tag}", "--entrypoint", "sleep",
                         IMAGE, "infinity"]  # fmt: skip
                docker_run.append(timed(lambda plain=plain: run(plain, self.env)))
                run(["docker", "rm", "-f", cname], self.env)
                if devc:
                    dws = self.workspace(f"devc{runtime}{i}")
                    (dws / ".devcontainer").mkdir()
                    spec = {
                        "image": IMAGE,
                        "overrideCommand": True,
                        "runArgs": ["--runtime", runtime, "--label", f"cai-bench={self.tag}"],
                    }
                    (dws / ".devcontainer" / "devcontainer.json").write_text(json.dumps(spec))
                    up = [devc, "up", "--workspace-folder", str(dws)]
                    dev.append(timed(lambda up=up: run(up, self.env)))
                    made = ["docker", "ps", "-aq", "--filter",
                            f"label=devcontainer.local_folder={dws}"]  # fmt: skip
                    ids = run(made, self.env).stdout.split()
                    if ids:  # one at a time, as cai's own are
                        run(["docker", "rm", "-f", *ids], self.env, check=False)
            suffix = f"_{runtime}"
            self.record(
                f"cold_create_vs_docker_run{suffix}", ours, docker_run, "docker run -d", "info"
            )
            if dev:
                label = f"devcontainer up (same image, {runtime})"
                self.record(f"cold_create{suffix}", ours, dev, label, "<= 0.9")

    def restart(self) -> None:
        """A stopped container (and its gateway) back to an SSH login: ``cai run
        --detached`` against ``docker start`` of both plus the first SSH login."""
        no_mux = [
            "-o",
            "ControlMaster=no",
            "-o",
            "ControlPath=none",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=2",
        ]
        for runtime, (name, ws) in self.warm.items():
            entry = self.home / ".ssh" / "containai.d" / f"{name}.conf"
            # the raw engine's part: the gateway (which publishes SSH), then the container
            gateway = f"{name}-gateway"
            has_gateway = run(["docker", "inspect", gateway], self.env, check=False).returncode == 0
            to_start = [gateway, name] if has_gateway else [name]
            login = ["ssh", "-F", str(entry), *no_mux, f"cai-{name}", "true"]

            def docker_start(ws: Path = ws, to_start: list[str] = to_start,
                             login: list[str] = login) -> float:  # fmt: skip
                run([CAI, "stop", "--force"], self.env, ws)
                start = time.perf_counter()
                run(["docker", "start", *to_start], self.env)
                while run(login, self.env, check=False).returncode != 0:
                    time.sleep(0.05)
                return time.perf_counter() - start

            def cai_start(ws: Path = ws, runtime: str = runtime) -> float:
                run([CAI, "stop", "--force"], self.env, ws)
                argv = [CAI, "run", "--detached", "--runtime", runtime]
                return timed(lambda: run(argv, self.env, ws))

            ours, theirs = interleave(self.n_cold, cai_start, docker_start)
            self.record(
                f"restart_{runtime}",
                ours,
                theirs,
                f"docker start + SSH login ({runtime})",
                "<= 1.2",
            )

    def listing(self) -> None:
        """``cai list --json`` with 200 more managed containers than the engine had
        (never started, labelled like cai's: ``bench_scale.create``) against ``docker ps``
        of the same rows."""
        count = 200 if self.n > 5 else 50
        names = [f"cai-bench-{self.tag}-list-{i:03d}" for i in range(count)]
        bench_scale.create(self.tag, names, started=False)
        raw = ["docker", "ps", "-a", "--no-trunc", "--filter", "label=containai.managed=true",
               "--format", "{{json .}}"]  # fmt: skip
        run([CAI, "list", "--json"], self.env)  # the engine selection cache
        ours, theirs = interleave(
            self.n * 2,
            lambda: timed(lambda: run([CAI, "list", "--json"], self.env)),
            lambda: timed(lambda: run(raw, self.env)),
        )
        rows = len(run(raw, self.env).stdout.splitlines())
        self.record(f"list_{rows}", ours, theirs, "docker ps (label filter)", "<= 2.0")
        ids = run(
            ["docker", "ps", "-aq", "--filter", f"label={bench_scale.BENCH_LABEL}={self.tag}"],
            self.env,
        ).stdout.split()
        if ids:
            run(["docker", "rm", "-f", *ids], self.env, check=False)

    def image(self) -> None:
        """The size of the image cai made the default (gVisor) warm container from
        (``docker image inspect``'s Size): the default template as built for this
        checkout. Asked by the container, not by tag: other cai processes may retag."""
        name, _ws = self.warm[self.runtimes()[0]]
        image_id = run(["docker", "inspect", name, "--format", "{{.Image}}"], self.env)
        out = run(
            ["docker", "image", "inspect", image_id.stdout.strip(), "--format", "{{.Size}}"],
            self.env,
        )
        self.results["image_size"] = {
            "cai_mb": round(int(out.stdout.strip()) / 1e6),
            "image": image_id.stdout.strip()[:19],
            "goal": "<= 900 MB",
        }

    def build_from_nothing(self) -> None:
        """Opt-in (``--build-from-nothing``, minutes of CPU): the offline base bootstrap
        (debootstrap) plus the default template with Claude Code plus cai's system layer,
        with no layer to reuse. Everything is built under names of this run (a base tag
        of its own, the default template copied as a user template ``bench<tag>`` of the
        sandboxed HOME, built with ``image.base`` set to that base): the user's own
        images are never replaced, and all three are removed at the end."""
        from containai.adapters.rootfs.bootstrap import bootstrap_base_image

        base = f"cai-bench-{self.tag}-base:bookworm"
        template = f"bench{self.tag}"
        images = [base, f"containai-template:{template}", f"containai:{template}"]
        self.images += images
        tdir = self.home / ".config" / "containai" / "templates" / template
        shutil.copytree(ROOT / "src" / "containai" / "templates" / "default", tdir)
        cfg = self.home / ".config" / "containai" / "config.toml"
        cfg.parent.mkdir(parents=True, exist_ok=True)
        saved = cfg.read_text() if cfg.exists() else None
        cfg.write_text(f'[image]\nbase = "{base}"\n')
        try:
            start = time.perf_counter()
            bootstrap_base_image(["docker"], base)
            boot = time.perf_counter() - start
            run([CAI, "image", "build", "--template", template], self.env, self.tmp)
            total = time.perf_counter() - start
            # the hashed tag of this build goes too (the alias is in the list already)
            label = '{{index .Config.Labels "ai.containai.template-hash"}}'
            inspect = ["docker", "image", "inspect", f"containai:{template}", "--format", label]
            built = run(inspect, self.env).stdout.strip()
            self.images.append(f"containai:{template}-{built}")
        finally:
            if saved is None:
                cfg.unlink()
            else:
                cfg.write_text(saved)
        self.results["build_from_nothing"] = {
            "cai_s": round(total, 1),
            "bootstrap_s": round(boot, 1),
            "goal": "<= 180 s",
        }

    def export(self) -> None:
        name, ws = self.warm[self.runtimes()[0]]
        run(
            [
                CAI,
                "exec",
                "--root",  # the data volume's root is root's (the agent is not)
                "--",
                "sh",
                "-c",
                "mkdir -p /mnt/agent-data/big && head -c 1073741824 /dev/urandom "
                "> /mnt/agent-data/big/blob",
            ],
            self.env,
            ws,
        )
        out = self.tmp / "exports"
        out.mkdir()

        def ours() -> float:
            target = out / "cai.tgz"
            t = timed(lambda: run([CAI, "export", "--output", str(target)], self.env, ws))
            target.unlink()
            return t

        def pipeline() -> float:
            target = out / "pipe.tgz"
            t = timed(
                lambda: subprocess.run(
                    f"docker cp {name}:/mnt/agent-data - | gzip > {target}",
                    shell=True,
                    check=True,
                    env=self.env,
                )
            )
            target.unlink()
            return t

        a, b = interleave(3, ours, pipeline)
        # throughput ratio = pipeline time / cai time (higher is better)
        self.results["export_1gib"] = {
            "cai_s": round(statistics.median(a), 3),
            "baseline_s": round(statistics.median(b), 3),
            "throughput_ratio": round(statistics.median(b) / statistics.median(a), 3),
            "baseline": "docker cp | gzip",
            "goal": ">= 0.8",
        }
        run([CAI, "exec", "--root", "--", "rm", "-rf", "/mnt/agent-data/big"], self.env, ws)

    def gc(self) -> None:
        count = 100 if self.n > 5 else 30
        # `cai gc --force --age 0s` takes every stopped managed container of the engine:
        # measured only when all of those are the benchmark's own (workspaces under its
        # temporary directory).
        rows = run(
            [
                "docker",
                "ps",
                "--all",
                "--filter",
                "label=containai.managed=true",
                "--format",
                '{{.Names}}\t{{.State}}\t{{.Label "containai.workspace"}}',
            ],
            self.env,
        ).stdout.splitlines()
        others = [
            name
            for name, state, workspace in (row.split("\t", 2) for row in rows)
            if state in ("exited", "created") and not workspace.startswith(f"{self.tmp}/")
        ]
        if others:
            raise RuntimeError(
                "not measured: `cai gc --force --age 0s` would also remove these stopped "
                f"containers that are not the benchmark's: {', '.join(sorted(others))}"
            )

        def make(prefix: str) -> list[str]:
            names = [f"{prefix}-{i}" for i in range(count)]
            for n in names:
                run(
                    [
                        "docker",
                        "create",
                        "--name",
                        n,
                        "--label",
                        "containai.managed=true",
                        "--label",
                        f"containai.workspace={self.tmp}/gc/{n}",
                        "--label",
                        f"cai-bench={self.tag}",
                        "--entrypoint",
                        "true",
                        IMAGE,
                    ],
                    self.env,
                )
            return names

        def ours() -> float:
            make(f"cai-bench-gc-{self.tag}")
            return timed(lambda: run([CAI, "gc", "--force", "--age", "0s"], self.env))

        def theirs() -> float:
            names = make(f"cai-bench-rm-{self.tag}")
            return timed(lambda: run(["docker", "rm", *names], self.env))

        a, b = interleave(2, ours, theirs)
        self.record("gc_100", a, b, f"one docker rm of {count}", "<= 1.5")

    def egress(self) -> None:
        """SPEC 15's costs: a cold create behind the gateway (allowlist, the default)
        against plain Docker networking (open), under runc and under gVisor; and a 200 MB
        download from a test host on this machine through the gateway against the same
        download from the same kind of workspace container (same runtime) with
        ``network.policy = "open"`` (the honest baseline), both by ``docker exec``; the
        download from a plain container on the test host's network is reported as info."""
        cfg = self.home / ".config" / "containai" / "config.toml"
        cfg.parent.mkdir(parents=True, exist_ok=True)
        runtimes = ["runc", *(["runsc"] if self.has_runtime("runsc") else [])]
        for runtime in runtimes:
            behind, open_ = [], []
            for i in range(self.n_cold):
                for policy, out in (("allowlist", behind), ("open", open_)):
                    cfg.write_text(f'[network]\npolicy = "{policy}"\n')
                    ws = self.workspace(f"eg{runtime}{policy[0]}{i}")
                    argv = [CAI, "run", "--detached", "--runtime", runtime]
                    out.append(timed(lambda ws=ws, argv=argv: run(argv, self.env, ws)))
                    run([CAI, "stop", "--remove", "--force"], self.env, ws)
            key = "cold_create_egress" + ("" if runtime == "runc" else f"_{runtime}")
            self.record(key, behind, open_, f"cai with network.policy open ({runtime})", "<= 1.1")
        # throughput: a test host serving 200 MB on a network of our own
        net = f"cai-bench-{self.tag}-hosts"
        host = f"cai-bench-{self.tag}-web"
        run(["docker", "network", "create", "--label", f"cai-bench={self.tag}", net], self.env)
        # The same 200 MB over plain HTTP (8000: squid relays it from its store, 4 KiB a
        # write) and HTTPS (8443, a self-signed certificate: curl -k; through the gateway
        # a CONNECT tunnel, which is how the package registries are reached).
        serve = (
            "head -c 209715200 /dev/zero > /tmp/blob && cd /tmp && "
            "openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem "
            "-days 1 -subj /CN=blob.cai.bench 2>/dev/null && exec python3 -c " + shlex.quote(_SERVE)
        )
        run(
            ["docker", "run", "-d", "--name", host, "--label", f"cai-bench={self.tag}",
             "--network", net, "--network-alias", "blob.cai.bench", "--entrypoint", "sh",
             IMAGE, "-c", serve],
            self.env,
        )  # fmt: skip
        subnet = json.loads(run(["docker", "network", "inspect", net], self.env).stdout)[0]["IPAM"][
            "Config"
        ][0]["Subnet"]
        url = "http://blob.cai.bench:8000/blob"
        get = ["curl", "-sS", "-o", "/dev/null", "--retry", "5", "--retry-connrefused", url]
        get_tls = [*get[:-1], "-k", "https://blob.cai.bench:8443/blob"]
        client = f"cai-bench-{self.tag}-client"
        run(
            ["docker", "run", "-d", "--name", client, "--label", f"cai-bench={self.tag}",
             "--network", net, "--entrypoint", "sleep", IMAGE, "infinity"],
            self.env,
        )  # fmt: skip
        run(["docker", "exec", client, *get], self.env)  # the server is up
        run(["docker", "exec", client, *get_tls], self.env)
        ports = '"blob.cai.bench:8000", "blob.cai.bench:8443"'
        allow = f'allow = [{ports}]\nallow_cidrs = ["{subnet}"]\n'
        for runtime in runtimes:
            made = []
            for policy in ("allowlist", "open"):
                cfg.write_text(f'[network]\npolicy = "{policy}"\n{allow}')
                ws = self.workspace(f"blob-{runtime}-{policy}")
                run([CAI, "run", "--detached", "--runtime", runtime], self.env, ws)
                dry = run([CAI, "run", "--dry-run", "--json"], self.env, ws).stdout
                name = json.loads(dry)["container"]
                # the test host's network stands for the internet: the gateway reaches it
                # (allowlist), the container itself does (open)
                attach = f"{name}-gateway" if policy == "allowlist" else name
                run(["docker", "network", "connect", net, attach], self.env)
                run(["docker", "exec", name, *get], self.env)
                made.append((ws, name))
            (_, through_c), (_, open_c) = made
            through, direct = interleave(
                3,
                lambda c=through_c: timed(lambda: run(["docker", "exec", c, *get], self.env)),
                lambda c=open_c: timed(lambda: run(["docker", "exec", c, *get], self.env)),
            )
            suffix = "" if runtime == "runc" else f"_{runtime}"
            self.record_throughput(
                f"egress_throughput{suffix}", through, direct,
                f"same container kind ({runtime}), network.policy open",
            )  # fmt: skip
            through_tls, direct_tls = interleave(
                3,
                lambda c=through_c: timed(lambda: run(["docker", "exec", c, *get_tls], self.env)),
                lambda c=open_c: timed(lambda: run(["docker", "exec", c, *get_tls], self.env)),
            )
            self.record_throughput(
                f"egress_throughput_https{suffix}", through_tls, direct_tls,
                f"same, over HTTPS (CONNECT through the gateway) ({runtime})",
            )  # fmt: skip
            if runtime == "runc":
                plain = [timed(lambda: run(["docker", "exec", client, *get], self.env))]
                plain += [timed(lambda: run(["docker", "exec", client, *get], self.env))]
                self.record_throughput(
                    "egress_throughput_vs_host_net", through, plain,
                    "plain container on the test host's network (runc)", goal="info",
                )  # fmt: skip
            for ws, _name in made:
                run([CAI, "stop", "--remove", "--force"], self.env, ws)
        run(["docker", "rm", "-f", host, client], self.env, check=False)
        run(["docker", "network", "rm", net], self.env, check=False)
        cfg.unlink()

    def has_runtime(self, name: str) -> bool:
        out = run(["docker", "info", "--format", "{{json .Runtimes}}"], self.env, check=False)
        return name in json.loads(out.stdout or "{}")

    def record_throughput(
        self, key: str, ours: list[float], theirs: list[float], label: str, goal: str = ">= 0.8"
    ) -> None:
        a, b = statistics.median(ours), statistics.median(theirs)
        self.results[key] = {
            "cai_s": round(a, 3),
            "baseline_s": round(b, 3),
            "throughput_ratio": round(b / a, 3),
            "baseline": label,
            "goal": goal,
        }

    def cleanup(self) -> None:
        ids = run(
            ["docker", "ps", "-aq", "--filter", f"label=cai-bench={self.tag}"],
            self.env,
            check=False,
        ).stdout.split()
        ids += run(
            ["docker", "ps", "-aq", "--filter", f"label={bench_scale.BENCH_LABEL}={self.tag}"],
            self.env,
            check=False,
        ).stdout.split()
        rows = run(
            [
                "docker",
                "ps",
                "-a",
                "--format",
                '{{.ID}}\t{{.Label "containai.workspace"}}{{.Label "containai.gateway-workspace"}}',
            ],
            self.env,
            check=False,
        ).stdout
        ids += [
            line.split("\t")[0]
            for line in rows.splitlines()
            if line.partition("\t")[2].startswith(str(self.tmp))
        ]
        if ids:
            run(["docker", "rm", "-f", *ids], self.env, check=False)
        nets = run(
            ["docker", "network", "ls", "--format", '{{.Name}}\t{{.Label "containai.workspace"}}'],
            self.env,
            check=False,
        ).stdout
        for line in nets.splitlines():
            name, _, ws = line.partition("\t")
            if ws.startswith(str(self.tmp)) or name.startswith(f"cai-bench-{self.tag}"):
                run(["docker", "network", "rm", name], self.env, check=False)
        run(["docker", "volume", "rm", "-f", *self.volumes], self.env, check=False)
        if self.images:
            run(["docker", "image", "rm", *self.images], self.env, check=False)
        shutil.rmtree(self.tmp, ignore_errors=True)


def launcher(tmp: Path) -> tuple[str, str]:
    """The ``cai`` to measure: the installed launcher if it is this checkout's
    ``bin/cai`` (shebang aside), else a copy of that run by this Python."""
    ours = (ROOT / "bin" / "cai").read_text().split("\n", 1)[1]
    installed = Path(CAI)
    if installed.exists() and installed.read_text().split("\n", 1)[1:] == [ours]:
        return CAI, "installed"
    copy = tmp / "cai"
    copy.write_text(f"#!{sys.executable}\n{ours}")
    copy.chmod(0o755)
    return str(copy), "bin/cai of this checkout (the installed launcher is older)"


def row(key: str, r: dict[str, float | str]) -> str:
    if "error" in r:
        return f"| {key} | error: {str(r['error'])[:60]} | | | |"
    if "cai_mib" in r:
        python = f"python -c pass: {r['python_mib']} MiB"
        return f"| {key} | {r['cai_mib']} MiB | {python} | | {r['goal']} |"
    if "cai_mb" in r:
        return f"| {key} | {r['cai_mb']} MB (`docker image inspect` Size) | | | {r['goal']} |"
    if "bootstrap_s" in r:
        return f"| {key} | {r['cai_s']} s (bootstrap {r['bootstrap_s']} s) | | | {r['goal']} |"
    ratio = r.get("ratio", r.get("throughput_ratio"))
    return (
        f"| {key} | {r['cai_s']} s | {r['baseline']}: {r['baseline_s']} s | {ratio} | {r['goal']} |"
    )


def main() -> int:
    global CAI
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "latest.json"))
    parser.add_argument("--only", nargs="*", help="cases to run (default: all)")
    parser.add_argument(
        "--build-from-nothing",
        action="store_true",
        help="also time the image build from nothing (minutes; under names of its own)",
    )
    args = parser.parse_args()
    # Measure cai as installed: byte-compiled (PYTHONDONTWRITEBYTECODE would otherwise make
    # an editable checkout recompile every module on every run).
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "src")], check=False)
    bench = Bench(args.quick)
    CAI, which = launcher(bench.tmp)
    cases = ["warm_exec", "cold_create", "restart", "listing", "image", "export", "gc", "egress"]
    if args.build_from_nothing:
        cases.append("build_from_nothing")
    try:
        for case in cases:
            if args.only and case not in args.only and case != "warm_exec":
                continue
            print(f"... {case}", file=sys.stderr)
            try:
                getattr(bench, case)()
            except Exception as exc:  # a case that cannot run is reported, not fatal
                bench.results[case] = {"error": str(exc)[:300]}
    finally:
        bench.cleanup()
    machine = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3, 1),
        "kernel": platform.release(),
        "docker": run(
            ["docker", "version", "--format", "{{.Server.Version}}"], bench.env, check=False
        ).stdout.strip(),
        "runsc": run(["runsc", "--version"], bench.env, check=False).stdout.split("\n")[0],
        "load_average": [round(x, 1) for x in os.getloadavg()],
        "cai": which,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    doc = {"machine": machine, "results": bench.results}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(doc, indent=2))
    print("| case | cai | baseline | ratio | goal |\n|---|---|---|---|---|")
    for key, r in bench.results.items():
        print(row(key, r))
    print(f"\nmachine: {json.dumps(machine)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
