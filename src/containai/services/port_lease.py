"""Leasing a container's SSH port on the host (under the port lock, ``Locks.ports``)."""

from __future__ import annotations

from containai.domain.errors import Failed
from containai.services.egress import gateway_name
from containai.services.ports import Engine, HostProbe


def lease_port(
    engine: Engine,
    host: HostProbe,
    port_range: tuple[int, int],
    preferred: int | None,
    avoid: set[int] | None = None,
    own: str | None = None,
) -> int:
    """A port in ``port_range`` that no managed container holds and the host has free;
    ``preferred`` when it still is."""
    # Every container with an SSH port label: cai's own and their gateways (which
    # publish the port), running or not; but the gateway of ``own`` (the container
    # being made), which is re-made for whatever port it gets.
    mine = gateway_name(own) if own else None
    used = set(avoid or ())
    held_by_mine: set[int] = set()  # published by this container's own gateway
    for name, p in engine.used_ssh_ports():
        (held_by_mine if name == mine else used).add(p)
    start, end = port_range
    if (
        preferred is not None
        and start <= preferred <= end
        and preferred not in used
        and (preferred in held_by_mine or host.port_is_free(preferred))
    ):
        return preferred  # (--fresh keeps the port its gateway still holds)
    for port in range(start, end + 1):
        if port not in used and host.port_is_free(port):
            return port
    raise Failed(
        f"no free SSH port in {start}..{end}: every port is used by a managed container or "
        "bound on the host; remove old containers (`cai gc`) or widen the range with "
        "`cai config set ssh.port_range_end N`"
    )
