"""``cai trust``: accept (or revoke) a repository's own settings files (SPEC section 14).

As direnv does: the SHA-256 of the exact file content is recorded in the global config;
any change to the file un-trusts it until ``cai trust`` is run again.
"""

from __future__ import annotations

from dataclasses import dataclass

from containai.domain.errors import NotFound
from containai.services.ports import Config


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
