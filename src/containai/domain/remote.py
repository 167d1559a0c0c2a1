"""Remote engines (SPEC section 16, DESIGN decision 8): pure rules.

A Docker context whose docker endpoint is ``ssh://[user@]host[:port]`` is an engine on
another machine, even when its host resolves to this one (the test fixture is such a
machine): cai cannot see that machine's files or its loopback. ``unix://`` and
``npipe://`` endpoints (and no endpoint: ``DOCKER_HOST`` of a local socket) are local.
``tcp://`` is remote too, but there is no SSH host to reach the container through, so
cai refuses to make containers on it.

Nothing here does I/O: the endpoint string comes from the context store
(``adapters/engine/client.py``).
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple

from containai.domain.errors import UsageError
from containai.domain.labels import SSH_ALIAS_PREFIX

# [user@]host[:port]: what the docker CLI's ssh helper accepts, without spaces, quotes,
# commas (ssh's jump list separator) or '%' (ssh's token character).
_SSH_ENDPOINT: Final = re.compile(
    r"ssh://(?P<target>(?:[A-Za-z0-9_.][A-Za-z0-9_.$-]*@)?"
    r"(?:[A-Za-z0-9_.][A-Za-z0-9_.-]*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?)/?"
)
WORKSPACE_VOLUME_SUFFIX: Final = "-ws"
# The label of the volume that holds a remote container's copy of the workspace.
WORKSPACE_VOLUME_LABEL: Final = "containai.workspace-volume"


class Endpoint(NamedTuple):
    """Where a context's engine is, as cai needs to know it."""

    url: str  # the endpoint as Docker records it ("" when none)
    remote: bool  # on another machine (no bind mounts, no loopback of ours)
    jump: str | None  # ``[user@]host[:port]`` to reach its loopback through, or None


def classify(url: str) -> Endpoint:
    """What kind of engine ``url`` (a context's docker ``Host``) names."""
    text = url.strip()
    low = text.lower()
    if not text or low.startswith(("unix://", "npipe://", "fd://")):
        return Endpoint(text, False, None)
    if low.startswith("ssh://"):
        match = _SSH_ENDPOINT.fullmatch(text)
        if match is None:
            raise UsageError(
                f"cannot use the Docker endpoint {text!r}: expected ssh://[user@]host[:port]"
            )
        return Endpoint(text, True, match.group("target"))
    return Endpoint(text, True, None)


def require_jump(context: str, endpoint: Endpoint) -> str:
    """The SSH host of a remote ``endpoint``; a ``tcp://`` one is refused (exit 2)."""
    if endpoint.jump is None:
        raise UsageError(
            f"context '{context}' reaches its engine at {endpoint.url}, not over SSH: cai makes "
            "containers on a remote engine only through an ssh:// context (`docker context "
            "create NAME --docker host=ssh://user@host`)"
        )
    return endpoint.jump


def git_remote_name(container: str) -> str:
    """The git remote that brings a remote container's commits home: ``cai-<name>``."""
    return SSH_ALIAS_PREFIX + container


def git_remote_url(container: str, workspace: str) -> str:
    """``cai-<name>:<abs path>``: git's scp-like form, through the container's SSH alias
    (its entry, jump and control master). No ``ssh://`` URL: that form would need the
    path percent-free and the alias without a port."""
    if not workspace.startswith("/"):
        raise ValueError(f"workspace must be absolute: {workspace!r}")
    return f"{SSH_ALIAS_PREFIX}{container}:{workspace}"


_OBJECT_NAME: Final = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def is_object_name(text: str) -> bool:
    """A full git object name (SHA-1 or SHA-256 hex), nothing an option parser could read."""
    return _OBJECT_NAME.fullmatch(text) is not None


def workspace_volume(container: str) -> str:
    """The remote volume that holds the container's copy of the workspace."""
    return container + WORKSPACE_VOLUME_SUFFIX
