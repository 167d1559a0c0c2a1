"""Where a workspace's devcontainer.json is (SPEC 18), without reading it: cheap enough
for ``cai run``'s attach path, which asks only whether there is one before loading the
parser (``devcontainer_file.py``)."""

from __future__ import annotations

import os

CANDIDATES = (".devcontainer/devcontainer.json", ".devcontainer.json")


def find(workspace: str) -> str | None:
    """The workspace's devcontainer.json (absolute, not resolved), or ``None``."""
    for name in CANDIDATES:
        path = os.path.join(workspace, name)
        if os.path.lexists(path):
            return path
    return None
