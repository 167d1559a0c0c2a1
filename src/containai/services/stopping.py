"""Stopping and removing containers (``cai stop``), and the active-session guard that
``--fresh``/``--reset`` share with it. Volumes are never removed here."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from containai.domain import labels as L
from containai.domain.errors import ConfirmationNeeded, Failed, Refused
from containai.domain.sessions import Sessions
from containai.services.egress import Egress
from containai.services.lookup import Lookup, Target
from containai.services.ports import Config, Locks, Ssh

Warn = Callable[[str], None]
# confirm(container, sessions) -> proceed? (raises ConfirmationNeeded when it cannot ask)
Confirm = Callable[[str, Sessions], bool]


def confirm_unavailable(name: str, found: Sessions) -> bool:
    """The ``confirm`` for callers that can never ask."""
    raise ConfirmationNeeded(
        f"container '{name}' may have active sessions ({found.ssh_connections} SSH, "
        f"{found.active_terminals} terminals) and there is no TTY to ask; add --force"
    )


def guard_sessions(
    lookup: Lookup, ssh: Ssh, target: Target, *, force: bool, confirm: Confirm, info: Warn
) -> None:
    """Before a running container is stopped or recreated: ask when someone may be in it
    (cai's own idle control master does not count)."""
    if force or target.state != "running":
        return
    ssh.release_master(target.name)
    found = lookup.sessions(target.name)
    if found is None:
        info(f"active sessions of '{target.name}': unknown (could not look); proceeding")
        return
    if not found.any:
        return
    if not confirm(target.name, found):
        raise Failed(f"left container '{target.name}' as it was (not confirmed)")


class Stopping:
    def __init__(
        self,
        lookup: Lookup,
        ssh: Ssh,
        config: Config,
        locks: Locks,
        *,
        egress: Egress | None = None,
        info: Warn = lambda _msg: None,
    ) -> None:
        self.lookup = lookup
        self.engine = lookup.engine
        self.ssh = ssh
        self.config = config
        self.locks = locks
        self.egress = egress
        self.info = info

    def stop(
        self, targets: Sequence[Target], *, remove: bool, force: bool, confirm: Confirm
    ) -> list[str]:
        """Stop (or remove) each target; returns the names acted on. Never a volume."""
        for target in targets:
            if not L.is_managed(target.labels):
                raise Refused(
                    f"container '{target.name}' is not managed by cai; cai will not stop it"
                )
        for target in targets:
            guard_sessions(
                self.lookup, self.ssh, target, force=force, confirm=confirm, info=self.info
            )
        done = []
        for target in targets:
            with self.locks.workspace(target.workspace):
                self.ssh.exit_master(target.name)
                if remove:
                    self.engine.remove(target.name, force=True)
                    if self.egress is not None:
                        self.egress.remove(target.name)
                    self.ssh.remove(target.name)
                    state = self.config.workspace_state(target.workspace)
                    if state.get("container_name") == target.name:
                        self.config.set_workspace_state(target.workspace, {"container_name": None})
                elif target.state in ("running", "restarting", "paused"):
                    self.engine.stop(target.name)
                    if self.egress is not None:
                        self.egress.stop(target.name)
                elif self.egress is not None:
                    self.egress.stop(target.name)
            done.append(target.name)
        return done
