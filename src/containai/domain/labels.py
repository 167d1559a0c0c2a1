"""The labels cai puts on every container it creates (SPEC section 4), and the facts
they go with: the SSH alias prefix, the data volume's mount path, helper labels."""

from __future__ import annotations

from containai.domain.isolation import DISPLAY

TYPE_CHECKING = False  # `typing` costs ~4 ms with `re`; mypy and ruff read these
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Final


MANAGED: Final = "containai.managed"
WORKSPACE: Final = "containai.workspace"
SSH_PORT: Final = "containai.ssh-port"
DATA_VOLUME: Final = "containai.data-volume"
TEMPLATE: Final = "ai.containai.template"
TEMPLATE_HASH: Final = "ai.containai.template-hash"
RUNTIME: Final = "containai.runtime"
KEEP: Final = "containai.keep"
SCHEMA: Final = "containai.schema"
NETWORK_POLICY: Final = "containai.network-policy"
"""The egress policy a container was created with (SPEC 15); absent: made before them."""
WEAKENED: Final = "containai.weakened"
"""``true`` when the runtime was chosen below the engine's best at creation (SPEC 14)."""
BRANCH: Final = "containai.branch"
"""The workspace's branch when the container was made (status shows it beside the current)."""
GATEWAY_OF: Final = "containai.gateway-of"
"""On an egress gateway container (SPEC 15): the workspace container it serves."""
GATEWAY_WORKSPACE: Final = "containai.gateway-workspace"
"""On a gateway: the workspace of the container it serves (not ``WORKSPACE``: a gateway
is not a workspace's container, and lookups by that label must not find it)."""
GATEWAY_SPEC: Final = "containai.gateway-spec"
"""On a gateway: the hash of what cai created it with (one without it is not cai's)."""
DEVCONTAINER: Final = "containai.devcontainer"
"""The trust digest of the devcontainer.json a container was created with (SPEC 18)."""
DEVCONTAINER_BASE: Final = "containai.devcontainer-base"
"""On a container whose image has a devcontainer.json's ``image``/``build`` as its base."""

ALL: Final = (
    MANAGED,
    WORKSPACE,
    SSH_PORT,
    DATA_VOLUME,
    TEMPLATE,
    TEMPLATE_HASH,
    RUNTIME,
    KEEP,
    SCHEMA,
)

TRUE: Final = "true"
SCHEMA_VERSION: Final = "1"
MANAGED_FILTER: Final = f"{MANAGED}={TRUE}"
"""For ``docker ps --filter label=...``: every container cai manages."""

_ISOLATION: Final = DISPLAY
SSH_ALIAS_PREFIX: Final = "cai-"
"""SPEC section 10: the SSH entry of container NAME is ``Host cai-NAME``."""

DATA_MOUNT: Final = "/mnt/agent-data"
"""Where every cai container (and helper) mounts its data volume."""

# On helper containers (export, import, host import; never started by a workspace):
HELPER: Final = "containai.helper"
HELPER_OWNER: Final = "containai.helper.owner"  # the cai process that made it (adapters/procs)
HELPER_VOLUME: Final = "containai.helper.volume"
HELPER_STAGING: Final = "containai.helper.staging"  # an import's staging directory in it


def ssh_alias(container: str) -> str:
    return SSH_ALIAS_PREFIX + container


_KEEP_VALUES: Final = frozenset({"true", "1", "yes", "on"})


def build_labels(
    *,
    workspace: str,
    ssh_port: int,
    data_volume: str,
    template: str,
    template_hash: str,
    runtime: str,
    keep: bool,
    weakened: bool = False,
    branch: str | None = None,
) -> dict[str, str]:
    """All labels for a new container; ``containai.keep`` only when ``keep`` is true."""
    labels = {
        MANAGED: TRUE,
        WORKSPACE: workspace,
        SSH_PORT: str(ssh_port),
        DATA_VOLUME: data_volume,
        TEMPLATE: template,
        TEMPLATE_HASH: template_hash,
        RUNTIME: runtime,
        SCHEMA: SCHEMA_VERSION,
    }
    if keep:
        labels[KEEP] = TRUE
    if weakened:
        labels[WEAKENED] = TRUE
    if branch:
        labels[BRANCH] = branch
    return labels


def is_weakened(labels: Mapping[str, str] | None) -> bool:
    return labels is not None and labels.get(WEAKENED) == TRUE


def is_managed(labels: Mapping[str, str] | None) -> bool:
    """True only for ``containai.managed=true`` exactly: anything else is never touched."""
    return labels is not None and labels.get(MANAGED) == TRUE


def is_kept(labels: Mapping[str, str] | None) -> bool:
    """``containai.keep`` set to a true value (``true``, ``1``, ``yes``, ``on``, any case).

    Deliberately lenient: a hand-set ``containai.keep=True`` protects from gc too.
    """
    if labels is None:
        return False
    return labels.get(KEEP, "").strip().lower() in _KEEP_VALUES


def workspace_of(labels: Mapping[str, str] | None) -> str | None:
    """The ``containai.workspace`` label of a managed container, else ``None``."""
    if not is_managed(labels) or labels is None:
        return None
    return labels.get(WORKSPACE)


def isolation_label(runtime: str, weakened: bool = False) -> str:
    """How ``status``/``list``/``doctor`` describe a runtime: ``runsc (gVisor)`` etc.;
    ``..., weakened`` when it is below what the engine offered (SPEC section 14)."""
    if weakened:
        return isolation_label(runtime) + ", weakened"
    if runtime in _ISOLATION:
        return _ISOLATION[runtime]
    if not runtime:
        return "unknown"
    return f"{runtime} (unknown isolation)"
