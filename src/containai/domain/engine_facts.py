"""What an engine says about itself, in cai's words (DESIGN decision 9): its version,
its OCI runtimes and its machine, as doctor, setup and remote engines read them
(``EngineInfo``, ``EngineVersion``, ``OciRuntime``). What it holds and what cai asks
it to make is ``engine_objects.py``; both are ``Record`` values."""

from __future__ import annotations

from containai.record import Record

TYPE_CHECKING = False  # `typing` costs ~4 ms with `re`; mypy and ruff read these
if TYPE_CHECKING:
    from collections.abc import Sequence


class EngineVersion(Record):
    """The engine's server version (``server`` "unknown" when it does not say)."""

    __slots__ = ("api", "server")

    def __init__(self, server: str = "unknown", api: str | None = None) -> None:
        self._set(server=server, api=api)

    server: str  # 24.0.7
    api: str | None  # the API version (1.43)


class OciRuntime(Record):
    """An OCI runtime an engine has registered: the program and the arguments it runs
    it with (what a ``runtimes`` entry of daemon.json says)."""

    __slots__ = ("args", "name", "path")

    def __init__(self, name: str, path: str | None = None, args: Sequence[str] = ()) -> None:
        self._set(name=name, path=path, args=tuple(args))

    name: str  # runsc
    path: str | None  # /usr/bin/runsc (None when the engine does not say)
    args: tuple[str, ...]  # --network=host


class EngineInfo(Record):
    """What an engine says about itself (doctor and setup read it)."""

    __slots__ = (
        "cpus",
        "default_runtime",
        "host_name",
        "memory_bytes",
        "registered",
        "root_dir",
        "runtimes",
    )

    def __init__(
        self,
        runtimes: Sequence[str] = (),
        default_runtime: str | None = None,
        root_dir: str = "",
        host_name: str = "",
        registered: Sequence[OciRuntime] = (),
        memory_bytes: int = 0,
        cpus: int = 0,
    ) -> None:
        self._set(
            runtimes=tuple(sorted(runtimes)),
            default_runtime=default_runtime,
            root_dir=root_dir,
            host_name=host_name,
            registered=tuple(sorted(registered, key=lambda r: r.name)),
            memory_bytes=memory_bytes,
            cpus=cpus,
        )

    runtimes: tuple[str, ...]  # OCI runtimes it knows, sorted (runc, runsc ...)
    default_runtime: str | None
    root_dir: str  # where it keeps images and containers ("" when it does not say)
    host_name: str  # the machine it runs on
    registered: tuple[OciRuntime, ...]  # those runtimes with their path and arguments
    memory_bytes: int  # the machine's memory (0: not said); a remote's limits (SPEC 16)
    cpus: int  # its CPUs (0: not said)

    def runtime(self, name: str) -> OciRuntime | None:
        """The registered runtime ``name``, if the engine has it."""
        return next((r for r in self.registered if r.name == name), None)
