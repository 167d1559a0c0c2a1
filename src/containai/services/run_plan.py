"""What ``cai run --dry-run`` answers: what ``ensure_running`` would do and what would
run once attached, changing nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from containai.domain import labels as L
from containai.domain.errors import EngineUnreachable, UnknownContext
from containai.domain.isolation import choose_runtime
from containai.services.lookup import Lookup
from containai.services.ports import HostProbe
from containai.services.run_request import RunRequest

if TYPE_CHECKING:
    from containai.services.run import Request, RunWorld
    from containai.services.workspace import Settings


def label_int(value: str | None) -> int | None:
    """A number label (an SSH port), ``None`` when missing or damaged."""
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def plan_engine(lookup: Lookup, host: HostProbe, req: RunRequest) -> dict[str, Any]:
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
        plan["image"] = None  # the build for today's inputs: `dry_run` asks the images
        plan["template"] = req.template
    return plan


def dry_run(
    request: Request, req: RunRequest, settings: Settings, world: RunWorld
) -> dict[str, Any]:
    """SPEC's plan fields; the engine's part is left empty (and said so) when no engine
    answers, but a context that does not exist is an error even for a plan (exit 3)."""
    from containai.services.run import agent_name

    plan: dict[str, Any] = {
        "action": None,
        "container": req.container,
        "workspace": req.workspace.path,
        "branch": req.workspace.branch,
        "data_volume": None if req.reset else req.data_volume,
        "image": None,  # the hashed tag of the build it would use, below
        "template": req.template,
        "runtime": None if req.runtime == "auto" else req.runtime,
        "context": None,
        "ssh_port": None,
        "ssh_alias": None,
        # Beyond SPEC's list (decision in docs/decisions.md): what would run once attached.
        "agent": None,
        "command": _planned_command(request, settings),
    }
    if request.command == "run":
        plan["agent"] = agent_name(request.agent, settings)
    try:
        plan["context"] = world.selection.context or "DOCKER_HOST"
        # The lifecycle's port probe: on a remote engine the port is on the remote's
        # loopback, asked there, as the run itself would.
        lifecycle = world.lifecycle(settings)
        plan.update(plan_engine(world.lookup, lifecycle.host, req))
        if plan.get("action") in ("create", "recreate"):
            # containai:<template>-<hash> of today's inputs (None: not known)
            plan["image"] = lifecycle.images.planned_tag(req.template)
    except UnknownContext:
        raise
    except EngineUnreachable as exc:
        world.out.info(f"no engine for the plan's engine fields: {exc}")
        if plan["container"] is None:
            state = world.config.workspace_state(req.workspace.path).get("container_name")
            plan["container"] = state if isinstance(state, str) else req.workspace.base_name
    if plan["container"] is not None:
        plan["ssh_alias"] = L.ssh_alias(plan["container"])
    return plan


def _planned_command(request: Request, settings: Settings) -> list[str] | None:
    """The argv that attaching would run (``None`` for --detached and shell)."""
    if request.detached or request.command == "shell":
        return None
    if request.command == "exec":
        return list(request.rest)
    from containai import agents
    from containai.services.run import agent_name

    name = agent_name(request.agent, settings)
    if name == "shell":
        return None
    agent = agents.load(name)
    return [agent.binary, *agent.default_args, *request.rest]
