"""Which container serves a workspace (SPEC section 3 lookup order), and who is in it.

Read-only: ``cai status``, ``stop``, ``export``, ``network`` and ``ensure_running``
find their container here; nothing is created, started or removed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from containai.domain import labels as L
from containai.domain import naming
from containai.domain.engine_objects import ContainerInfo
from containai.domain.errors import NotFound, Refused
from containai.domain.sessions import PROBE_SCRIPT, Sessions, parse_probe
from containai.services.ports import Config, Engine, Ssh
from containai.services.workspace import Workspace


@dataclass(frozen=True)
class Target:
    """A container found for a workspace (or by name), with what the engine knows of it
    if it exists."""

    name: str
    info: ContainerInfo | None
    workspace: str

    @property
    def exists(self) -> bool:
        return self.info is not None

    @property
    def labels(self) -> dict[str, str]:
        if self.info is None:
            return {}
        return dict(self.info.labels)

    @property
    def state(self) -> str:
        if self.info is None:
            return "absent"
        return self.info.state or "unknown"


class Lookup:
    """Finding containers: by workspace, by ``--container``, every managed one."""

    def __init__(
        self,
        engine: Engine,
        config: Config,
        *,
        elsewhere: Callable[[str], str | None] = lambda _name: None,
    ) -> None:
        self.engine = engine
        self.config = config
        self.elsewhere = elsewhere  # the other engine whose container a name's SSH entry is

    def _owner(self, name: str, taken: dict[str, ContainerInfo]) -> naming.Owner:
        """Who holds ``name``, by ``taken`` (every container of the engine, by name)."""
        info = taken.get(name)
        if info is None:
            # The SSH alias, host key and control socket are named after the container:
            # a name whose entry belongs to a container on another engine is taken.
            other = self.elsewhere(name)
            return None if other is None else f"(context {other})"
        labels = info.labels
        if not L.is_managed(labels):
            return naming.UNMANAGED
        return str(labels.get(L.WORKSPACE, ""))

    def find(self, workspace: Workspace, container: str | None = None) -> Target:
        """The container serving ``workspace`` (SPEC section 3 lookup order), or the name a
        new one would get. ``--container`` names it directly."""
        if container is not None:
            info = self.engine.find(container)
            if info is None:
                return Target(container, None, workspace.path)
            labels = info.labels
            if not L.is_managed(labels):
                raise Refused(
                    f"container '{container}' is not managed by cai (no label "
                    f"{L.MANAGED}=true); cai will not touch it: choose another --container"
                )
            return Target(container, info, str(labels.get(L.WORKSPACE) or workspace.path))
        state_name = self.config.workspace_state(workspace.path).get("container_name")
        if isinstance(state_name, str) and state_name:
            info = self.engine.find(state_name)
            if info is not None:
                labels = info.labels
                if L.is_managed(labels) and labels.get(L.WORKSPACE) == workspace.path:
                    return Target(state_name, info, workspace.path)
        # ONE listing of every container: the workspace's own (by label), and the names
        # a new one may not take.
        rows = self.engine.list_containers(keys=(L.MANAGED, L.WORKSPACE))
        names = sorted(
            {
                r.name
                for r in rows
                if r.name and L.is_managed(r.labels) and r.labels.get(L.WORKSPACE) == workspace.path
            }
        )
        if len(names) > 1:
            raise Refused(
                f"workspace {workspace.path} has several containers ({', '.join(names)}); "
                "choose one with --container NAME"
            )
        if names:
            info = self.engine.find(names[0])
            if info is not None:
                return Target(names[0], info, workspace.path)
        taken = {r.name: r for r in rows if r.name}
        name = naming.choose_name(
            workspace.base_name, workspace.path, lambda n: self._owner(n, taken)
        )
        # A name listed as this workspace's would have been found above; one taken since
        # the listing is refused by the engine at the create (``Creation.create``).
        info = self.engine.find(name) if name in taken else None
        return Target(name, info, workspace.path)

    def find_existing(self, workspace: Workspace, container: str | None) -> Target:
        """Like ``find`` but the container must exist (exit 4 otherwise)."""
        target = self.find(workspace, container)
        if not target.exists:
            where = "" if container else f" (workspace {workspace.path})"
            raise NotFound(
                f"container '{target.name}'{where} does not exist; create it with "
                "`cai run --detached`"
            )
        return target

    def managed_targets(self) -> list[Target]:
        """Every container cai manages on this engine."""
        ids = self.engine.container_ids({L.MANAGED: L.TRUE})
        return [
            Target(info.name, info, info.labels.get(L.WORKSPACE, ""))
            for info in self.engine.find_many(ids)
        ]

    def sessions(self, name: str, timeout: float = 5.0) -> Sessions | None:
        """Best-effort session count from inside the container; ``None`` when unknown."""
        try:
            proc = self.engine.exec(name, ["sh", "-c", PROBE_SCRIPT], timeout=timeout, check=False)
        except Exception:
            return None
        if proc.returncode != 0 and not proc.stdout:
            return None
        return parse_probe(proc.stdout)


def entry_elsewhere(ssh: Ssh, here: str) -> Callable[[str], str | None]:
    """For ``Lookup``: the context of another engine whose container holds the SSH entry
    named ``name`` (``local`` for this machine's), ``None`` when the name is free here;
    ``here``: the selected engine's context as entries record it (``""`` locally)."""

    def other(name: str) -> str | None:
        entry = ssh.entry_context(name)
        return None if entry is None or entry == here else (entry or "local")

    return other
