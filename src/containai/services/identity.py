"""The host's git identity for a new container (issue 16): what ``Creation.create``
adds to the container's environment. The entrypoint writes it into the container's
system git config, below the agent's ``~/.gitconfig`` on the data volume (``cai import``
or the agent's own ``git config --global`` win)."""

from __future__ import annotations

from containai.domain.git_identity import identity_env
from containai.services.ports import HostProbe


def git_identity_env(host: HostProbe) -> dict[str, str]:
    """``CAI_GIT_NAME`` / ``CAI_GIT_EMAIL`` from the host's global git config, each left
    out when unset or unsafe (control characters, too long)."""
    name, email = host.git_identity()
    return identity_env(name, email)
