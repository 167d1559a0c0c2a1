"""``diagnose``: gather every fact within its budget, decide every check, assemble the
report. What doctor reads is two Protocols (``DoctorEngine``, ``DoctorHost``) and
``DoctorInputs``; the CLI wires the concrete adapters."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from containai.domain.engine_facts import EngineInfo, EngineVersion
from containai.domain.engine_objects import ImageInfo
from containai.domain.errors import CaiError
from containai.services.doctor.engine_checks import (
    DEFAULT_BASE,
    base_candidates,
    decide_base_image,
    decide_context,
    decide_disk,
    decide_engine,
    decide_isolation,
    decide_network,
)
from containai.services.doctor.gather import DEFAULT_BUDGET, Outcome, gather
from containai.services.doctor.report import Check, DoctorReport
from containai.services.doctor.ssh_checks import (
    INCLUDE_PATTERN,
    decide_include,
    decide_ports,
    decide_ssh_client,
    decide_user_key,
    held_ports,
)
from containai.services.engine_select import DEDICATED_CONTEXT, Selection
from containai.services.ports import ListEngine


class DoctorEngine(ListEngine, Protocol):
    """What doctor asks an engine (``DockerEngine`` satisfies it)."""

    @property
    def display_name(self) -> str: ...

    def engine_version(self) -> EngineVersion: ...

    def engine_info(self) -> EngineInfo: ...

    def image(self, ref: str) -> ImageInfo | None: ...


class DoctorHost(Protocol):
    """Facts about this machine (``adapters.machine.MachineProbe`` satisfies it)."""

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


def _image_present(engine: DoctorEngine, ref: str) -> bool:
    return engine.image(ref) is not None


def _answers(engine: DoctorEngine) -> bool:
    engine.engine_version()
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
        tasks["version"] = engine.engine_version
        tasks["info"] = engine.engine_info
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
        more["held"] = lambda: held_ports(eng.list_managed())
        if inp.gateway_image:
            more["gateway"] = functools.partial(_image_present, eng, inp.gateway_image)
        if info is not None and info.ok and isinstance(info.value, EngineInfo):
            root = info.value.root_dir
            local = info.value.host_name == host.hostname()
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
