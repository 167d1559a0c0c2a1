"""Docker's shapes -> cai's values: ``--format`` templates, inspect JSON, size units.

Everything here is pure (text or parsed JSON in, ``domain/engine_objects`` values
out), so it is unit-tested against recorded ``docker`` output. This module is on
``cai list``'s path: no ``re`` until a size is parsed, no ``typing``.
"""

from __future__ import annotations

import math

from containai.domain import labels as L
from containai.domain.age import parse_engine_time
from containai.domain.engine_facts import EngineInfo, EngineVersion, OciRuntime
from containai.domain.engine_objects import (
    ContainerInfo,
    ContainerStats,
    ImageInfo,
    Mount,
    NetworkInfo,
    Removal,
    VolumeInfo,
)
from containai.domain.errors import Failed, summarize

TYPE_CHECKING = False  # `typing` costs ~4 ms with `re`; mypy and ruff read these
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from typing import Any, Final

# ------------------------------------------------------------------ docker ps
# One JSON object per container. Labels through `.Label "key"` + `json`: exact values
# (the comma-joined `.Labels` of `docker ps` cannot be split back when a value holds a
# comma, e.g. a workspace path `/src/a,b=c`).
_PS_FIELDS: Final = (
    ("id", "{{json .ID}}"),
    ("names", "{{json .Names}}"),
    ("state", "{{json .State}}"),
    ("image", "{{json .Image}}"),
    ("created", "{{json .CreatedAt}}"),
)
MANAGED_KEYS: Final = (
    L.MANAGED,
    L.WORKSPACE,
    L.SSH_PORT,
    L.DATA_VOLUME,
    L.RUNTIME,
    L.KEEP,
    L.WEAKENED,
    L.NETWORK_POLICY,
    L.TEMPLATE,  # with the hash: the image tag `cai list` shows when ps gives an id
    L.TEMPLATE_HASH,
)
"""The labels a listing of managed containers reads (``cai list``, gc, doctor)."""


def ps_format(keys: Iterable[str] = (), *, mounts: bool = False) -> str:
    """The ``docker ps --format`` template of one JSON object per container, with the
    exact value of each label in ``keys`` (and the names of its mounts)."""
    fields = [f'"{key}":{tpl}' for key, tpl in _PS_FIELDS]
    if mounts:
        fields.append('"mounts":{{json .Mounts}}')
    labels = ",".join(f'"{key}":{{{{json (.Label "{key}")}}}}' for key in keys)
    return "{" + ",".join(fields) + ',"labels":{' + labels + "}}"


LIST_FORMAT: Final = ps_format(MANAGED_KEYS)


def container_of_row(row: Mapping[str, Any]) -> ContainerInfo:
    """One object of ``ps_format`` (parsed): labels that are unset or empty left out."""
    raw_labels = row.get("labels") or {}
    mounts = row.get("mounts")
    return ContainerInfo(
        id=str(row.get("id") or ""),
        name=str(row.get("names") or "").split(",")[0].lstrip("/"),
        state=str(row.get("state") or ""),
        image=str(row.get("image") or ""),
        created=parse_engine_time(str(row.get("created") or "")),
        labels={str(k): str(v) for k, v in raw_labels.items() if v not in (None, "")},
        mounts=[Mount("", m, "") for m in str(mounts).split(",") if m] if mounts else (),
    )


# ----------------------------------------------------------------- inspect
def _labels(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in (value or {}).items()}


def _env(items: Sequence[Any] | None) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in items or ():
        key, _, value = str(item).partition("=")
        env[key] = value
    return env


def _mount(doc: Mapping[str, Any]) -> Mount:
    kind = str(doc.get("Type") or "")
    source = doc.get("Name") if kind == "volume" else doc.get("Source")
    return Mount(
        kind,
        str(source or ""),
        str(doc.get("Destination") or ""),
        readonly=doc.get("RW") is False,
    )


def container_of(doc: Mapping[str, Any]) -> ContainerInfo:
    """A ``docker container inspect`` document."""
    state = doc.get("State") or {}
    config = doc.get("Config") or {}
    nets = (doc.get("NetworkSettings") or {}).get("Networks") or {}
    runtime = (doc.get("HostConfig") or {}).get("Runtime")
    return ContainerInfo(
        id=str(doc.get("Id") or ""),
        name=str(doc.get("Name") or "").lstrip("/"),
        state=str(state.get("Status") or ""),
        running=bool(state.get("Running")),
        image=str(config.get("Image") or ""),
        image_id=str(doc.get("Image") or "") or None,
        labels=_labels(config.get("Labels")),
        created=parse_engine_time(str(doc.get("Created") or "")),
        started=parse_engine_time(str(state.get("StartedAt") or "")),
        finished=parse_engine_time(str(state.get("FinishedAt") or "")),
        runtime=str(runtime) if runtime else None,
        env=_env(config.get("Env")),
        mounts=[_mount(m) for m in doc.get("Mounts") or []],
        networks={str(k): str((v or {}).get("IPAddress") or "") for k, v in nets.items()},
    )


def volume_of(doc: Mapping[str, Any]) -> VolumeInfo:
    return VolumeInfo(str(doc.get("Name") or ""), _labels(doc.get("Labels")))


def network_of(doc: Mapping[str, Any]) -> NetworkInfo:
    configs = (doc.get("IPAM") or {}).get("Config") or []
    return NetworkInfo(
        str(doc.get("Name") or ""),
        _labels(doc.get("Labels")),
        internal=bool(doc.get("Internal")),
        subnets=[str(c["Subnet"]) for c in configs if c.get("Subnet")],
    )


def image_of(doc: Mapping[str, Any]) -> ImageInfo:
    """A ``docker image inspect`` document (named by its first tag, if any)."""
    tags = doc.get("RepoTags") or []
    repo, _, tag = str(tags[0]).rpartition(":") if tags else ("", "", "")
    labels = (doc.get("Config") or {}).get("Labels")
    return ImageInfo(str(doc.get("Id") or ""), repo, tag, _labels(labels))


def image_of_row(row: Mapping[str, Any]) -> ImageInfo:
    """A ``docker image ls --format '{{json .}}'`` row."""
    return ImageInfo(
        str(row.get("ID") or ""), str(row.get("Repository") or ""), str(row.get("Tag") or "")
    )


# ------------------------------------------------------------------- sizes
# Patterns as text: compiled (and cached by `re`) at first use, not at import (cai list).
_SIZE_RE: Final = r"([0-9]+(?:\.[0-9]+)?|\.[0-9]+)\s*([A-Za-z]*)"
_SIZE_UNITS: Final = {
    "": 1,
    "b": 1,
    # docker's binary units (MemUsage uses these: units.BytesSize)
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
    "pib": 1024**5,
    # docker's decimal units (NetIO/BlockIO: units.HumanSize)
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "pb": 1000**5,
}
_PERCENT_RE: Final = r"([0-9]+(?:\.[0-9]+)?|\.[0-9]+)\s*%"


def version_of(doc: Mapping[str, Any]) -> EngineVersion:
    """``docker version --format '{{json .}}'`` -> the server's version."""
    server = doc.get("Server") or {}
    api = server.get("ApiVersion")
    return EngineVersion(str(server.get("Version") or "unknown"), str(api) if api else None)


def info_of(doc: Mapping[str, Any]) -> EngineInfo:
    """``docker info --format '{{json .}}'`` -> runtimes (with their path and
    ``runtimeArgs``), default runtime, data root, host name, memory and CPUs."""
    runtimes = doc.get("Runtimes") or {}
    if not isinstance(runtimes, dict):
        runtimes = {}
    memory, cpus = doc.get("MemTotal"), doc.get("NCPU")
    return EngineInfo(
        runtimes=list(runtimes),
        default_runtime=str(doc.get("DefaultRuntime") or "") or None,
        root_dir=str(doc.get("DockerRootDir") or ""),
        host_name=str(doc.get("Name") or ""),
        registered=[_oci_runtime(str(name), entry) for name, entry in runtimes.items()],
        memory_bytes=memory if isinstance(memory, int) and memory > 0 else 0,
        cpus=cpus if isinstance(cpus, int) and cpus > 0 else 0,
    )


def _oci_runtime(name: str, entry: Any) -> OciRuntime:
    """One ``Runtimes`` entry: ``{"path": ..., "runtimeArgs": [...]}``."""
    if not isinstance(entry, dict):
        return OciRuntime(name)
    path = entry.get("path")
    args = entry.get("runtimeArgs") or []
    return OciRuntime(
        name,
        str(path) if path is not None else None,
        [str(a) for a in args] if isinstance(args, list) else [],
    )


def parse_size(text: str) -> int | None:
    """``1.2GiB`` -> bytes (binary ``KiB``/``MiB``/``GiB``, decimal ``kB``/``MB``/``GB``,
    plain ``B``); ``None`` for anything else (``--``, empty)."""
    import re

    match = re.fullmatch(_SIZE_RE, text.strip())
    if match is None:
        return None
    factor = _SIZE_UNITS.get(match.group(2).lower())
    if factor is None:
        return None
    value = float(match.group(1)) * factor
    if not math.isfinite(value):
        return None
    return round(value)


def parse_mem_usage(text: str) -> tuple[int | None, int | None]:
    """``docker stats`` MemUsage ``'1.2GiB / 4GiB'`` -> (used bytes, limit bytes).

    ``'--'`` and ``'0B / 0B'`` (what the engine reports for a container it has no
    cgroup data for) are unknown: ``(None, None)``, never "0 of 0".
    """
    used_text, sep, limit_text = text.partition("/")
    if not sep:
        return None, None
    used, limit = parse_size(used_text), parse_size(limit_text)
    if limit is None or limit <= 0:
        return None, None
    return used, limit


def parse_percent(text: str) -> float | None:
    """``'5.2%'`` -> 5.2; ``'--'``, empty or anything else -> ``None``."""
    import re

    match = re.fullmatch(_PERCENT_RE, text.strip())
    if match is None:
        return None
    value = float(match.group(1))
    return value if math.isfinite(value) else None


def stats_of(row: Mapping[str, Any] | None) -> ContainerStats:
    """A ``docker stats --format '{{json .}}'`` row -> what is known of it."""
    if not row:
        return ContainerStats()
    used, limit = parse_mem_usage(str(row.get("MemUsage") or ""))
    return ContainerStats(used, limit, parse_percent(str(row.get("CPUPerc") or "")))


# ---------------------------------------------------------------- docker rm
_RUNNING_MARKERS: Final = ("cannot remove a running container", "stop the container before")
_GONE_MARKERS: Final = ("no such container",)
NETWORK_GONE_MARKERS: Final = ("no such network", "not found")
"""How ``docker network rm`` says a network is not there."""
_PUNCTUATION: Final = "\"'/.,:;()[]"


def _line_about(stderr: str, ref: str) -> str | None:
    """The first line of ``stderr`` naming ``ref`` as a word of its own (``cai-net-a`` is
    not named by a line about ``cai-net-a-2``)."""
    for line in stderr.splitlines():
        if ref and ref in line and ref in (w.strip(_PUNCTUATION) for w in line.split()):
            return summarize(line.strip().removeprefix("Error response from daemon: "))
    return None


def removal_of(
    refs: Sequence[str],
    stdout: str,
    stderr: str,
    *,
    gone_markers: Sequence[str] = _GONE_MARKERS,
    what: str = "docker rm",
) -> Removal:
    """What one ``docker rm REFS`` (no ``--force``) did to each ref: removed (printed
    back), refused as running, gone, or failed with the daemon's line about it. A ref
    no line names failed for the call's last message; when that is every ref, the
    call as a whole failed: ``Failed``. Also read for ``docker rm --force`` and, with
    its ``gone_markers`` and ``what``, ``docker network rm``."""
    done = {line.strip() for line in stdout.splitlines() if line.strip()}
    removed: list[str] = []
    running: list[str] = []
    gone: list[str] = []
    failed: dict[str, str] = {}
    unexplained: list[str] = []
    for ref in refs:
        if ref in done:
            removed.append(ref)
            continue
        line = _line_about(stderr, ref)
        low = (line or "").lower()
        if any(m in low for m in _RUNNING_MARKERS):
            running.append(ref)
        elif any(m in low for m in gone_markers):
            gone.append(ref)
        elif line is not None:
            failed[ref] = line
        else:
            unexplained.append(ref)
    if unexplained:
        last = summarize(stderr.strip().splitlines()[-1]) if stderr.strip() else "no message"
        if not removed and len(unexplained) == len(refs):
            raise Failed(f"{what} failed: {last.removeprefix('Error: ')}")
        for ref in unexplained:
            failed[ref] = f"{what} failed: {last}"
    return Removal(removed, running, gone, failed)


def build_step(line: str) -> tuple[int, int] | None:
    """``(step, of)`` when a ``docker build`` output line starts a Dockerfile step: the
    classic builder's ``Step 3/12 : RUN ...``, BuildKit's ``#7 [2/4] RUN ...``."""
    text = line.strip()
    if text.startswith("Step "):
        head = text[5:].partition(" ")[0]
    elif text.startswith("#") and " [" in text and "] " in text:
        head = text.partition(" [")[2].partition("]")[0].rpartition(" ")[2]
    else:
        return None
    step, sep, of = head.partition("/")
    if sep and _digits(step) and _digits(of) and 0 < int(step) <= int(of):
        return int(step), int(of)
    return None


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()
