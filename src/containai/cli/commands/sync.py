"""``cai sync push [--container NAME] [-w PATH] [--force]``: the local working tree and git
history into the workspace's container on a remote engine again (SPEC section 16).

Work comes home by git (``git fetch cai-<name>``), never by this command: nothing on
the local side is written. A push that would lose the agent's commits or uncommitted
changes in the container is refused unless ``--force``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from containai.cli.app import App
from containai.cli.options import (
    add_container_option,
    add_force_option,
    add_workspace_option,
    check_container_or_workspace,
)
from containai.domain.errors import UsageError

if TYPE_CHECKING:
    import argparse

NAME = "sync"
HELP = "send the workspace to its container on a remote engine again"
DESCRIPTION = (
    "push: copy the local working tree (tracked and untracked, not ignored files) and the "
    "git history into the container on a remote engine. The agent's work comes home with "
    "`git fetch cai-<name>`."
)


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["push"], help="push: local workspace -> container")
    add_container_option(p, "the container to send the workspace to")
    add_workspace_option(p, "the workspace to send")
    add_force_option(p, "overwrite the agent's commits or changes that are not home yet")


def run(args: argparse.Namespace) -> int:
    check_container_or_workspace(args)
    app = App(args)
    placement = app.remote_workspace()
    if placement is None:
        raise UsageError(
            f"context '{app.context_label}' is this machine's engine: the workspace is "
            "mounted there, so there is nothing to sync (sync is for ssh:// contexts)"
        )
    from containai.services.container_spec import container_user

    workspace = app.workspace()
    workspace.check()
    target = app.lookup.find_existing(workspace, args.container)
    uid, gid = app.host.agent_ids(target.workspace)
    placement.push(target.name, target.workspace, container_user(target.info), uid, gid, args.force)
    placement.link(target.name, target.workspace)
    return 0
