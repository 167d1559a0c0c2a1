"""``cai doctor`` (SPEC section 13): check the machine and say how to fix what is missing.

Nine checks, in this order: engine, context, isolation, base image, OpenSSH
client, user key, ``Include`` line, SSH ports, disk space. Each ends ``OK``,
``WARN``, ``FAIL`` or ``SKIP`` with a one-line detail and, when not ``OK``, a
one-line fix. A workspace can be created when no check is ``FAIL``.

How it runs: every fact is gathered in a worker thread with its own time budget
(a few seconds), all engine-independent facts and the engine's ``docker
version``/``docker info`` at once, then the facts that need an answering engine
(images, managed containers' SSH ports, disk of ``DockerRootDir``). A fact that
is not there in time is reported as such; the engine-independent checks are
decided even when the engine does not answer. The decisions themselves are
pure functions of the facts (``decide_*``), unit-tested with in-memory fakes.

Doctor never changes anything: it creates no key, writes no ``~/.ssh/config``
and pulls no image.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol

from containai.domain import labels as L
from containai.domain.errors import CaiError, EngineUnreachable
from containai.domain.isolation import LADDER, is_weakened, tier
from containai.services.engine_select import DEDICATED_CONTEXT, Selection
from containai.services.inventory import PsRow, managed_rows
from containai.services.ports import RunEngine

OK: Final = "OK"
WARN: Final = "WARN"
FAIL: Final = "FAIL"
SKIP: Final = "SKIP"
STATUSES: Final = (OK, WARN, FAIL, SKIP)

#: check id -> title shown in the text output, in report order.
TITLES: Final[Mapping[str, str]] = {
    "engine": "Engine",
    "context": "Context",
    "isolation": "Isolation",
    "base-image": "Base image",
    "ssh-client": "OpenSSH client",
    "user-key": "User key",
    "ssh-include": "SSH Include",
    "ports": "SSH ports",
    "disk": "Disk space",
    "network": "Network",
}
ORDER: Final = tuple(TITLES)

DEFAULT_BUDGET: Final = 5.0
"""Seconds each fact may take (engine calls, ``ssh -V``, port scan, statvfs)."""

GIB: Final = 1024**3
DISK_WARN: Final = 5 * GIB
DISK_FAIL: Final = 1 * GIB
PORTS_WARN: Final = 5
"""Fewer free SSH ports than this is a warning (none at all is a failure)."""

OFFLINE_BASE: Final = "containai-base:bookworm"
DEFAULT_BASE: Final = "debian:bookworm-slim"
INCLUDE_PATTERN: Final = "~/.ssh/containai.d/*.conf"

_SOURCES: Final[Mapping[str, str]] = {
    "flag": "from --context",
    "env": "from CONTAINAI_CONTEXT",
    "config": "from config engine.context",
    "dedicated": "the dedicated engine of `cai setup`",
    "docker": "Docker's own choice",
}
_START_FIX: Final = (
    "start it (`sudo scripts/ensure-engine` for the default engine, `sudo cai setup` for "
    "cai's dedicated one), or choose another engine with --context"
)
_SETUP_FIX: Final = "start it with `sudo cai setup` (or choose another engine with --context)"


# --------------------------------------------------------------------------- #
# results
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Check:
    """One line of the report. ``check`` is the stable id (see ``TITLES``)."""

    check: str
    status: str
    detail: str
    fix: str | None = None

    @property
    def title(self) -> str:
        return TITLES.get(self.check, self.check.replace("-", " ").capitalize())

    def to_json(self) -> dict[str, Any]:
        return {"check": self.check, "status": self.status, "detail": self.detail, "fix": self.fix}


@dataclass(frozen=True)
class DoctorReport:
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        """A workspace can be created: no check failed."""
        return all(c.status != FAIL for c in self.checks)

    def get(self, check: str) -> Check:
        for c in self.checks:
            if c.check == check:
                return c
        raise KeyError(check)

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [c.to_json() for c in self.checks]}


# --------------------------------------------------------------------------- #
# what doctor reads (Protocols; the CLI wires the concrete adapters)
# --------------------------------------------------------------------------- #


class DoctorEngine(RunEngine, Protocol):
    """What doctor asks an engine (``DockerEngine`` satisfies it)."""

    @property
    def display_name(self) -> str: ...

    def version(self) -> dict[str, Any]: ...

    def info(self) -> dict[str, Any]: ...

    def inspect_image(self, ref: str) -> dict[str, Any] | None: ...


class DoctorHost(Protocol):
    """Facts about this machine (``adapters.daemon.MachineProbe`` satisfies it)."""

    def ssh_client_version(self) -> str | None:
        """``ssh -V``'s version (``OpenSSH_9.2p1 ...``), ``None`` when ssh is missing."""
        ...

    def has_program(self, name: str) -> bool: ...

    def exists(self, path: Path) -> bool: ...

    def read_bytes(self, path: Path) -> bytes | None:
        """The file's content, ``None`` when it does not exist."""
        ...

    def port_is_free(self, port: int) -> bool: ...

    def disk_free(self, path: str) -> int | None:
        """Bytes available to unprivileged users at ``path``, ``None`` when not local."""
        ...

    def hostname(self) -> str: ...

    def offline_bootstrap(self) -> tuple[bool, str]:
        """``(possible, detail)``: root + debootstrap + an apt mirror (the mirror), or why not."""
        ...


@dataclass(frozen=True)
class DoctorInputs:
    select: Callable[[], Selection]
    """Engine selection, SPEC section 5 step 1 (``CaiError`` for an unknown context)."""
    engine_for: Callable[[str | None], DoctorEngine]
    dedicated_exists: Callable[[], bool]
    host: DoctorHost
    user_key: Path
    ssh_config: Path
    include_is_first: Callable[[bytes], bool] = lambda _data: False
    """Whether a ``~/.ssh/config`` starts with cai's ``Include`` (the SSH adapter knows)."""
    include_line: str = f"Include {INCLUDE_PATTERN}"
    image_base: str = DEFAULT_BASE
    template: str = "default"
    runtime: str = "auto"
    port_range: tuple[int, int] = (2300, 2499)
    budget: float = DEFAULT_BUDGET
    extra: Sequence[Check] = field(default_factory=tuple)
    """Checks decided by the caller (e.g. a config file that cannot be read), shown first."""
    network_policy: str = "allowlist"
    gateway_image: str | None = None
    """The egress gateway's image for this configuration (``None``: unknown)."""


# --------------------------------------------------------------------------- #
# facts within a time budget
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Outcome:
    """A fact: its value, the error it raised, or no answer within the budget."""

    value: Any = None
    error: BaseException | None = None
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and not self.timed_out


TIMED_OUT: Final = Outcome(timed_out=True)


def gather(tasks: Mapping[str, Callable[[], Any]], budget: float) -> dict[str, Outcome]:
    """Run every task in its own daemon thread; wait at most ``budget`` seconds in all.

    A task still running then is reported ``timed_out`` and abandoned (its own
    subprocess timeout ends it; a daemon thread does not keep cai alive).
    """
    results: dict[str, Outcome] = {}
    lock = threading.Lock()

    def work(key: str, fn: Callable[[], Any]) -> None:
        try:
            outcome = Outcome(value=fn())
        except Exception as exc:
            outcome = Outcome(error=exc)
        with lock:
            results[key] = outcome

    threads = [
        threading.Thread(target=work, args=(key, fn), name=f"cai-doctor-{key}", daemon=True)
        for key, fn in tasks.items()
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + budget
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    with lock:
        return {key: results.get(key, TIMED_OUT) for key in tasks}


def _why(outcome: Outcome, budget: float) -> str:
    if outcome.timed_out:
        return f"no answer within {budget:g} s"
    return _first_line(str(outcome.error))


def _first_line(text: str, limit: int = 160) -> str:
    line = text.strip().splitlines()[0] if text.strip() else "unknown error"
    return line if len(line) <= limit else line[: limit - 3] + "..."


# --------------------------------------------------------------------------- #
# decisions (pure)
# --------------------------------------------------------------------------- #


def _engine_name(selection: Selection | None, display: str | None) -> str:
    if display:
        return display
    if selection is not None and selection.context:
        return selection.context
    return "DOCKER_HOST"


def _dedicated(selection: Selection | None) -> bool:
    return selection is not None and selection.context == DEDICATED_CONTEXT


def decide_engine(
    selection: Selection | None,
    version: Outcome | None,
    *,
    display: str | None = None,
    budget: float = DEFAULT_BUDGET,
) -> Check:
    """(a) The engine answers, and its server version. ``version=None``: no selection."""
    if selection is None or version is None:
        return Check("engine", SKIP, "no engine selected (see Context)")
    name = _engine_name(selection, display)
    where = f"context '{name}'" if selection.context is not None else f"engine at {name}"
    fix = _SETUP_FIX if _dedicated(selection) else _START_FIX
    if not version.ok:
        if version.timed_out:
            return Check("engine", FAIL, f"{where}: no answer within {budget:g} s", fix)
        err = version.error
        if isinstance(err, EngineUnreachable) and "not installed" in str(err):
            return Check(
                "engine",
                FAIL,
                "the docker CLI is not installed",
                "install the distribution's docker.io package (`sudo scripts/ensure-engine`)",
            )
        reason = "does not answer" if isinstance(err, EngineUnreachable) else _why(version, budget)
        return Check("engine", FAIL, f"{where} {reason}", fix)
    data = version.value if isinstance(version.value, dict) else {}
    server = data.get("Server") or {}
    ver = str(server.get("Version") or "unknown")
    api = server.get("ApiVersion")
    api_text = f", API {api}" if api else ""
    return Check("engine", OK, f"Docker {ver}{api_text} (context {name})")


def decide_context(
    selection: Selection | None,
    error: CaiError | None,
    *,
    dedicated_exists: bool,
    dedicated_answers: Outcome | None,
    docker_host: str | None = None,
) -> Check:
    """(b) Which context is selected and why; a dedicated engine that is down."""
    if selection is None:
        return Check(
            "context",
            FAIL,
            _first_line(str(error) if error else "no context", 300),
            "list contexts with `docker context ls`; `sudo cai setup` creates "
            f"'{DEDICATED_CONTEXT}'",
        )
    if selection.context is None:
        name = f"DOCKER_HOST={docker_host}" if docker_host else "DOCKER_HOST"
    else:
        name = selection.context
    detail = f"{name} ({_SOURCES.get(selection.source, selection.source)})"
    if dedicated_exists and selection.context != DEDICATED_CONTEXT:
        if dedicated_answers is not None and not dedicated_answers.ok:
            return Check(
                "context",
                WARN,
                f"{detail}; '{DEDICATED_CONTEXT}' exists but its engine does not answer",
                "start the dedicated engine with `sudo cai setup`",
            )
        return Check("context", OK, f"{detail}; '{DEDICATED_CONTEXT}' is also available")
    return Check("context", OK, detail)


def _runtime_names(info: Mapping[str, Any]) -> list[str]:
    runtimes = info.get("Runtimes") or {}
    return sorted(runtimes) if isinstance(runtimes, dict) else []


def _shown_runtimes(names: Sequence[str]) -> str:
    # dockerd 20.10 also lists its containerd shims (io.containerd.*): not runtimes to pick.
    shown = [n for n in names if not n.startswith("io.containerd.")]
    return ", ".join(shown) or "none"


_TIER_LABELS: Final[Mapping[str, str]] = {
    "sysbox-runc": "sysbox-runc (Sysbox)",
    "runsc": "runsc (gVisor)",
    "runc": "runc only (no sandbox: containers share the host kernel)",
}


def decide_isolation(
    engine_ok: bool, info: Outcome | None, *, runtime: str = "auto", budget: float = DEFAULT_BUDGET
) -> Check:
    """(c) Runtimes the engine has and the isolation tier ``--runtime auto`` gets."""
    if not engine_ok or info is None:
        return Check("isolation", SKIP, "engine does not answer")
    if not info.ok:
        return Check("isolation", WARN, f"cannot read `docker info`: {_why(info, budget)}")
    data = info.value if isinstance(info.value, dict) else {}
    names = _runtime_names(data)
    default = data.get("DefaultRuntime")
    have = _shown_runtimes(names)
    suffix = f"; runtimes: {have}" + (f" (default {default})" if default else "")
    if runtime != "auto":
        if runtime not in names:
            return Check(
                "isolation",
                FAIL,
                f"runtime '{runtime}' (config runtime) is not on this engine{suffix}",
                "run `sudo cai setup` for gVisor, or `cai config set runtime auto`",
            )
        if is_weakened(runtime, names):
            return Check(
                "isolation",
                WARN,
                f"{runtime} (config runtime), weakened: the engine offers {tier(names)}{suffix}",
                "`cai config set runtime auto` for the strongest runtime",
            )
        return Check("isolation", OK if runtime in LADDER[:2] else WARN, f"{runtime}{suffix}")
    strongest = tier(names)
    if strongest in ("sysbox-runc", "runsc"):
        return Check("isolation", OK, f"{_TIER_LABELS[strongest]}{suffix}")
    if strongest == "runc":
        return Check(
            "isolation",
            WARN,
            f"{_TIER_LABELS['runc']}{suffix}",
            "run `sudo cai setup` for a dedicated engine with gVisor (runsc)",
        )
    return Check(
        "isolation",
        FAIL,
        f"the engine reports no known OCI runtime{suffix}",
        "check `docker info`; reinstall the engine (docker.io) or run `sudo cai setup`",
    )


def base_candidates(template: str, image_base: str) -> list[str]:
    """Images that make a build unnecessary or possible, strongest first."""
    found = [f"containai:{template}", image_base or DEFAULT_BASE]
    if OFFLINE_BASE not in found:
        found.append(OFFLINE_BASE)
    return found


def decide_base_image(
    engine_ok: bool,
    present: Mapping[str, Outcome],
    bootstrap: Outcome | None,
    *,
    template: str = "default",
    image_base: str = DEFAULT_BASE,
    budget: float = DEFAULT_BUDGET,
) -> Check:
    """(d) present / pullable (not verified: doctor pulls nothing) / offline bootstrap."""
    if not engine_ok:
        return Check("base-image", SKIP, "engine does not answer")
    image_base = image_base or DEFAULT_BASE
    built = f"containai:{template}"
    for ref in base_candidates(template, image_base):
        outcome = present.get(ref)
        if outcome is not None and outcome.ok and outcome.value:
            if ref == built:
                return Check("base-image", OK, f"{built} is built")
            what = "offline base" if ref == OFFLINE_BASE and ref != image_base else "base"
            return Check("base-image", OK, f"{what} {ref} is present; {built} builds on it")
    unknown = [r for r, o in present.items() if not o.ok]
    can, how = (
        bootstrap.value
        if bootstrap is not None and bootstrap.ok and isinstance(bootstrap.value, tuple)
        else (False, _why(bootstrap, budget) if bootstrap is not None else "unknown")
    )
    lead = f"{image_base} is not present" + (
        f" (could not check {', '.join(unknown)})" if unknown else ""
    )
    if can:
        return Check(
            "base-image",
            OK,
            f"{lead}; will try to pull, then bootstrap offline from {how}",
        )
    return Check(
        "base-image",
        WARN,
        f"{lead}; a pull will be tried (not verified by doctor); no offline bootstrap: {how}",
        "load an image (`docker load`), set `cai config set image.base IMAGE`, or install "
        "debootstrap and run `sudo cai image build --offline`",
    )


def decide_ssh_client(
    version: Outcome, keygen: Outcome, *, budget: float = DEFAULT_BUDGET
) -> Check:
    """(e) OpenSSH client version (``ssh -V``), and ``ssh-keygen``."""
    fix = "install the OpenSSH client (`sudo apt-get install openssh-client`)"
    if not version.ok:
        return Check("ssh-client", FAIL, f"`ssh -V` failed: {_why(version, budget)}", fix)
    if not version.value:
        return Check("ssh-client", FAIL, "ssh is not installed", fix)
    if keygen.ok and keygen.value is False:
        return Check("ssh-client", FAIL, f"{version.value}, but ssh-keygen is missing", fix)
    return Check("ssh-client", OK, str(version.value))


def decide_user_key(path: Path, exists: Outcome, *, budget: float = DEFAULT_BUDGET) -> Check:
    """(f) The user key; never created here."""
    if not exists.ok:
        return Check("user-key", WARN, f"cannot check {path}: {_why(exists, budget)}")
    if exists.value:
        return Check("user-key", OK, str(path))
    return Check(
        "user-key",
        WARN,
        f"{path} does not exist yet",
        "nothing to do: it is created on first use (`cai run`)",
    )


def decide_include(
    config: Path,
    content: Outcome,
    is_first: Callable[[bytes], bool],
    line: str,
    *,
    budget: float = DEFAULT_BUDGET,
) -> Check:
    """(g) ``Include ~/.ssh/containai.d/*.conf`` is the first line of ``~/.ssh/config``."""
    if not content.ok:
        return Check("ssh-include", WARN, f"cannot read {config}: {_why(content, budget)}")
    if content.value is None:
        return Check(
            "ssh-include",
            WARN,
            f"{config} does not exist",
            f"nothing to do: `cai run` creates it with '{line}' first",
        )
    if is_first(content.value):
        return Check("ssh-include", OK, f"'{line}' is the first line of {config}")
    return Check(
        "ssh-include",
        WARN,
        f"'{line}' is not the first line of {config}",
        f"put '{line}' as the first line of {config} (cai does it on the next `cai run` "
        "when the file is writable)",
    )


def held_ports(rows: Sequence[PsRow]) -> set[int]:
    """SSH ports recorded in managed containers' ``containai.ssh-port`` labels."""
    held: set[int] = set()
    for row in rows:
        value = row.labels.get(L.SSH_PORT, "")
        if value.isdigit():
            held.add(int(value))
    return held


def decide_ports(
    port_range: tuple[int, int],
    bound_free: Outcome,
    held: Outcome | None,
    *,
    budget: float = DEFAULT_BUDGET,
) -> Check:
    """(h) Ports of ``ssh.port_range_*`` neither held by a managed container nor bound."""
    start, end = port_range
    total = max(0, end - start + 1)
    where = f"{start}-{end}"
    if not bound_free.ok:
        return Check("ports", WARN, f"cannot scan 127.0.0.1:{where}: {_why(bound_free, budget)}")
    free = set(bound_free.value or ())
    note = ""
    if held is not None and held.ok:
        free -= set(held.value or ())
    else:
        note = " (engine down: ports of stopped containers unknown)"
    count = len(free)
    detail = f"{count} of {total} free in {where}{note}"
    fix = (
        "remove old containers (`cai gc`, `cai stop --remove`) or widen the range "
        "(`cai config set ssh.port_range_end N`)"
    )
    if count == 0:
        return Check("ports", FAIL, detail, fix)
    if count < PORTS_WARN:
        return Check("ports", WARN, detail, fix)
    return Check("ports", OK, detail)


def _gib(n: int) -> str:
    return f"{n / GIB:.1f} GiB"


def decide_disk(
    engine_ok: bool,
    info: Outcome | None,
    free: Outcome | None,
    *,
    budget: float = DEFAULT_BUDGET,
) -> Check:
    """(i) Space for the engine's ``DockerRootDir`` (statvfs when the engine is local)."""
    if not engine_ok or info is None or not info.ok:
        return Check("disk", SKIP, "engine does not answer")
    data = info.value if isinstance(info.value, dict) else {}
    root = str(data.get("DockerRootDir") or "")
    if not root:
        return Check("disk", SKIP, "the engine does not report its DockerRootDir")
    if free is None:
        return Check("disk", SKIP, f"{root} is on another machine (remote engine); check it there")
    if not free.ok:
        return Check("disk", WARN, f"cannot measure {root}: {_why(free, budget)}")
    if free.value is None:
        return Check("disk", SKIP, f"{root} is not on this machine; check it there")
    avail = int(free.value)
    detail = f"{_gib(avail)} free in {root}"
    fix = "free space (`cai gc --images`, `docker system prune`) or move the engine's data-root"
    if avail < DISK_FAIL:
        return Check("disk", FAIL, detail + " (under 1 GiB)", fix)
    if avail < DISK_WARN:
        return Check("disk", WARN, detail + " (under 5 GiB)", fix)
    return Check("disk", OK, detail)


# --------------------------------------------------------------------------- #
# the use case
# --------------------------------------------------------------------------- #


def decide_network(
    engine_ok: bool,
    policy: str,
    image: str | None,
    present: Outcome | None,
    *,
    budget: float = DEFAULT_BUDGET,
) -> Check:
    """(j) The egress policy and its gateway image (SPEC section 15)."""
    if policy == "open":
        return Check(
            "network",
            WARN,
            "network: open (plain Docker egress: an agent can reach any address)",
            "`cai config set network.policy allowlist --global`",
        )
    if not engine_ok:
        return Check("network", SKIP, f"{policy}; engine does not answer")
    if image is None or present is None:
        return Check("network", WARN, f"{policy}; cannot tell whether the gateway image exists")
    if not present.ok:
        return Check("network", WARN, f"{policy}; cannot inspect {image}: {_why(present, budget)}")
    if present.value:
        return Check("network", OK, f"{policy} through per-workspace gateways ({image})")
    return Check(
        "network",
        OK,
        f"{policy}; the gateway image {image} is built on first use",
        "`cai image build` builds it now",
    )


def _image_present(engine: DoctorEngine, ref: str) -> bool:
    return engine.inspect_image(ref) is not None


def _answers(engine: DoctorEngine) -> bool:
    engine.version()
    return True


def diagnose(inp: DoctorInputs) -> DoctorReport:
    """Run every check; engine-independent ones are decided even when the engine is down."""
    budget = inp.budget
    host = inp.host
    selection: Selection | None
    sel_error: CaiError | None = None
    try:
        selection = inp.select()
    except CaiError as exc:
        selection, sel_error = None, exc

    engine: DoctorEngine | None = None
    if selection is not None:
        engine = inp.engine_for(selection.context)

    dedicated_exists = False
    try:
        dedicated_exists = inp.dedicated_exists()
    except (OSError, CaiError):
        dedicated_exists = False

    start, end = inp.port_range
    tasks: dict[str, Callable[[], Any]] = {
        "ssh": host.ssh_client_version,
        "keygen": lambda: host.has_program("ssh-keygen"),
        "key": lambda: host.exists(inp.user_key),
        "config": lambda: host.read_bytes(inp.ssh_config),
        "bound": lambda: [p for p in range(start, end + 1) if host.port_is_free(p)],
        "bootstrap": host.offline_bootstrap,
    }
    if engine is not None:
        tasks["version"] = engine.version
        tasks["info"] = engine.info
    if dedicated_exists and (selection is None or selection.context != DEDICATED_CONTEXT):
        dedicated = inp.engine_for(DEDICATED_CONTEXT)
        tasks["dedicated"] = lambda: _answers(dedicated)
    first = gather(tasks, budget)

    version = first.get("version")
    info = first.get("info")
    engine_ok = version is not None and version.ok
    display = None
    if engine is not None:
        try:
            display = engine.display_name
        except Exception:  # pragma: no cover - a property of a fake
            display = None

    second: dict[str, Outcome] = {}
    refs = base_candidates(inp.template, inp.image_base)
    if engine is not None and engine_ok:
        eng = engine
        more: dict[str, Callable[[], Any]] = {}
        for ref in refs:
            more[f"image:{ref}"] = functools.partial(_image_present, eng, ref)
        more["held"] = lambda: held_ports(managed_rows(eng))
        if inp.gateway_image:
            more["gateway"] = functools.partial(_image_present, eng, inp.gateway_image)
        if info is not None and info.ok and isinstance(info.value, dict):
            root = str(info.value.get("DockerRootDir") or "")
            local = str(info.value.get("Name") or "") == host.hostname()
            if root and local:
                more["disk"] = lambda: host.disk_free(root)
        second = gather(more, budget)

    docker_host = None
    if selection is not None and selection.context is None and display:
        docker_host = display.removeprefix("DOCKER_HOST=") or None

    checks = [
        *inp.extra,
        decide_engine(selection, version, display=display, budget=budget),
        decide_context(
            selection,
            sel_error,
            dedicated_exists=dedicated_exists,
            dedicated_answers=first.get("dedicated"),
            docker_host=docker_host,
        ),
        decide_isolation(engine_ok, info, runtime=inp.runtime, budget=budget),
        decide_base_image(
            engine_ok,
            {ref: second[f"image:{ref}"] for ref in refs if f"image:{ref}" in second},
            first["bootstrap"],
            template=inp.template,
            image_base=inp.image_base,
            budget=budget,
        ),
        decide_ssh_client(first["ssh"], first["keygen"], budget=budget),
        decide_user_key(inp.user_key, first["key"], budget=budget),
        decide_include(
            inp.ssh_config, first["config"], inp.include_is_first, inp.include_line, budget=budget
        ),
        decide_ports(inp.port_range, first["bound"], second.get("held"), budget=budget),
        decide_disk(engine_ok, info, second.get("disk"), budget=budget),
        decide_network(
            engine_ok, inp.network_policy, inp.gateway_image, second.get("gateway"), budget=budget
        ),
    ]
    return DoctorReport(tuple(checks))
