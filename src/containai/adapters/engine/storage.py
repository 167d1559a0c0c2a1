"""The engine's volumes and networks, in Docker's terms (a part of ``DockerEngine``,
split off by job; see the package's docstring)."""

from __future__ import annotations

from containai import jsonfast
from containai.adapters.engine import shapes
from containai.adapters.engine.client import DockerCli

TYPE_CHECKING = False  # `typing` costs ~4 ms with `re`; mypy and ruff read these
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from containai.domain.engine_objects import NetworkInfo, Removal, VolumeInfo

# `--opt` of a bridge network with no address on the host's side (the host's own
# services on the bridge address are then out of the network's reach).
_NO_HOST_ADDRESS = {"com.docker.network.bridge.inhibit_ipv4": "true"}


def _missing(stderr: str, *markers: str) -> bool:
    low = stderr.lower()
    return any(m in low for m in markers)


class VolumesAndNetworks(DockerCli):
    # ----------------------------------------------------------------- volumes
    def volume(self, name: str) -> VolumeInfo | None:
        proc = self.run("volume", "inspect", "--format", "{{json .}}", name, check=False)
        if proc.returncode != 0:
            if _missing(proc.stderr, "no such volume"):
                return None
            raise self._translate(["volume", "inspect"], proc.stderr)
        return shapes.volume_of(jsonfast.loads(proc.stdout))

    def create_volume(self, name: str, labels: Mapping[str, str] | None = None) -> None:
        args = ["volume", "create"]
        for key, value in (labels or {}).items():
            args += ["--label", f"{key}={value}"]
        self.run(*args, name)

    # ---------------------------------------------------------------- networks
    def network(self, name: str) -> NetworkInfo | None:
        proc = self.run("network", "inspect", "--format", "{{json .}}", name, check=False)
        if proc.returncode != 0:
            if _missing(proc.stderr, "no such network", "not found"):
                return None
            raise self._translate(["network", "inspect"], proc.stderr)
        return shapes.network_of(jsonfast.loads(proc.stdout))

    def create_network(
        self,
        name: str,
        labels: Mapping[str, str],
        *,
        internal: bool = False,
        host_address: bool = True,
        subnet: str | None = None,
        automatic: str | None = None,
    ) -> None:
        """A bridge network; ``internal``: no route out; ``host_address=False``: the host
        has no address on it (its services are out of the network's reach); ``subnet``
        (else the engine's choice), ``automatic``: the part of it the engine assigns
        addresses from by itself. ``SubnetTaken`` when the engine has a network on an
        overlapping subnet, ``NameInUse`` when it has one of that name."""
        args = ["network", "create", "--driver", "bridge"]
        if internal:
            args.append("--internal")
        if subnet is not None:
            args += ["--subnet", subnet]
        if automatic is not None:
            args += ["--ip-range", automatic]
        for key, value in labels.items():
            args += ["--label", f"{key}={value}"]
        for key, value in ({} if host_address else _NO_HOST_ADDRESS).items():
            args += ["--opt", f"{key}={value}"]
        self.run(*args, name)

    def remove_network(self, name: str) -> bool:
        """Remove network ``name``; ``False`` when it did not exist."""
        proc = self.run("network", "rm", name, check=False)
        if proc.returncode == 0:
            return True
        if _missing(proc.stderr, "no such network", "not found"):
            return False
        raise self._translate(["network", "rm"], proc.stderr)

    def remove_networks(self, names: Sequence[str]) -> Removal:
        """Remove networks in one call; those that do not exist are ``gone``, one still in
        use ``failed`` with the engine's reason."""
        if not names:
            return shapes.removal_of([], "", "")
        proc = self.run("network", "rm", *names, check=False)
        return shapes.removal_of(
            names,
            str(proc.stdout or ""),
            str(proc.stderr or ""),
            gone_markers=shapes.NETWORK_GONE_MARKERS,
            what="docker network rm",
        )

    def connect_network(
        self,
        network: str,
        container: str,
        aliases: Sequence[str] = (),
        address: str | None = None,
    ) -> None:
        """Connect ``container`` (created or running) to ``network``, at ``address`` if
        given (a network made with a subnet)."""
        args = ["network", "connect"]
        if address is not None:
            args += ["--ip", address]
        for alias in aliases:
            args += ["--alias", alias]
        self.run(*args, network, container)
