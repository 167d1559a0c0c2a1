"""``cai trust``: accept (or revoke) a repository's own settings files (SPEC section 14).

As direnv does: the SHA-256 of the exact file content is recorded in the global config;
any change to the file un-trusts it until ``cai trust`` is run again.
"""

from __future__ import annotations

from dataclasses import dataclass

from containai.domain.errors import NotFound
from containai.services.ports import Config

TYPE_CHECKING = False
if TYPE_CHECKING:
    from containai.services.devcontainer import DevcontainerSource


@dataclass(frozen=True)
class TrustState:
    file: str
    digest: str
    recorded: str | None  # the digest trusted before, if any

    @property
    def trusted(self) -> bool:
        return self.recorded == self.digest

    @property
    def status(self) -> str:
        if self.trusted:
            return "trusted"
        return "changed since trusted" if self.recorded else "not trusted"


def states(
    config: Config, workspace: str, devcontainer: DevcontainerSource | None = None
) -> list[TrustState]:
    """Every repository settings file of ``workspace``: ``.containai/config.toml`` and
    its devcontainer.json (whose digest covers its build's Dockerfile too, SPEC 18);
    exit 4 when it has neither."""
    found: list[TrustState] = []
    trusted = config.trusted_digests()
    digest = config.repo_digest(workspace)
    if digest is not None:
        file = str(config.repo_path(workspace))
        found.append(TrustState(file, digest, trusted.get(file)))
    loaded = devcontainer.load(workspace) if devcontainer is not None else None
    if loaded is not None:
        found.append(TrustState(loaded.path, loaded.digest, trusted.get(loaded.path)))
    if not found:
        raise NotFound(
            f"workspace {workspace} has no repository settings ({config.repo_path(workspace)}"
            " or .devcontainer/devcontainer.json); nothing to trust"
        )
    return found


def trust_all(
    config: Config, workspace: str, devcontainer: DevcontainerSource | None = None
) -> list[TrustState]:
    """Trust every settings file of ``workspace`` as it is now."""
    done = []
    for current in states(config, workspace, devcontainer):
        config.set_trust(current.file, current.digest)
        done.append(TrustState(current.file, current.digest, current.digest))
    return done


def revoke_all(
    config: Config, workspace: str, devcontainer: DevcontainerSource | None = None
) -> list[str]:
    """Forget the trust of every settings file of ``workspace`` (a devcontainer.json is
    found, not parsed: a broken one can be revoked too); returns the files forgotten."""
    files = [str(config.repo_path(workspace))]
    path = devcontainer.path(workspace) if devcontainer is not None else None
    if path is not None:
        files.append(str(path))
    return [file for file in files if config.set_trust(file, None)]


def state(config: Config, workspace: str) -> TrustState:
    """The repository settings file of ``workspace`` and whether it is trusted (exit 4
    when the workspace has none)."""
    file = str(config.repo_path(workspace))
    digest = config.repo_digest(workspace)
    if digest is None:
        raise NotFound(
            f"workspace {workspace} has no repository settings ({file}); nothing to trust"
        )
    return TrustState(file, digest, config.trusted_digests().get(file))


def trust(config: Config, workspace: str) -> TrustState:
    current = state(config, workspace)
    config.set_trust(current.file, current.digest)
    return TrustState(current.file, current.digest, current.digest)


def revoke(config: Config, workspace: str) -> str | None:
    """Forget the trust of ``workspace``'s settings file; returns the file, or ``None``
    when nothing was trusted."""
    file = str(config.repo_path(workspace))
    return file if config.set_trust(file, None) else None
