"""What ``ensure_running`` would do, changing nothing (``cai run --dry-run``)."""

from __future__ import annotations

from typing import Any

from containai.domain import labels as L
from containai.domain.isolation import choose_runtime
from containai.services.lookup import Lookup
from containai.services.ports import HostProbe
from containai.services.run_request import RunRequest


def label_int(value: str | None) -> int | None:
    """A number label (an SSH port), ``None`` when missing or damaged."""
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def plan(lookup: Lookup, host: HostProbe, req: RunRequest) -> dict[str, Any]:
    """The plan's engine fields: container, action, volume, image, runtime, port."""
    target = lookup.find(req.workspace, req.container)
    plan: dict[str, Any] = {"container": target.name, "ssh_alias": L.ssh_alias(target.name)}
    if not target.exists:
        runtime, _warning = choose_runtime(
            req.runtime,
            lookup.engine.runtimes(),
            may_lower=req.runtime_may_lower,
            source=req.runtime_source,
        )
        plan.update(
            action="create", runtime=runtime, data_volume=None if req.reset else req.data_volume
        )
        return plan
    labels = target.labels
    port = label_int(labels.get(L.SSH_PORT))
    if req.fresh or req.reset:
        action = "recreate"
    elif target.state == "running":
        action = "attach"
    elif port is not None and not host.port_is_free(port):
        action = "recreate"
    else:
        action = "start"
    volume: str | None = labels.get(L.DATA_VOLUME, req.data_volume)
    if req.reset:
        volume = None
    elif req.fresh and req.data_volume_explicit:
        volume = req.data_volume
    plan.update(
        action=action,
        workspace=target.workspace,
        data_volume=volume,
        image=str((target.info.image if target.info else "") or plan.get("image")),
        template=labels.get(L.TEMPLATE, req.template),
        runtime=labels.get(L.RUNTIME),
        ssh_port=port,
    )
    if req.fresh or req.reset:
        plan["image"] = f"containai:{req.template}"
        plan["template"] = req.template
    return plan
