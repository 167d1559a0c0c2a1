"""A port on a remote engine's loopback, probed through the context's SSH host (SPEC
section 16): ``ssh -W 127.0.0.1:PORT`` opens a direct-tcpip channel to it, exactly as
the container's SSH entry will. Refused by the remote: the port is free; the channel
opens: something listens there. Anything else (the box does not forward, or does not
answer) is not known here, and the engine says so when the container starts.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping

_FREE = ("open failed", "connect failed", "connection refused")


def remote_port_free(jump: str, port: int, env: Mapping[str, str], timeout: float = 10.0) -> bool:
    """Whether nothing listens on ``127.0.0.1:port`` of the machine behind ``jump``
    (``[user@]host[:port]``, already checked by ``domain.remote.classify``)."""
    argv = [
        "ssh",
        "-o",
        "BatchMode=yes",
        "-o",
        "LogLevel=INFO",  # the channel's refusal is an INFO line
        "-o",
        "ConnectTimeout=5",
        "-W",
        f"127.0.0.1:{int(port)}",
        "--",
        f"ssh://{jump}",
    ]
    try:
        proc = subprocess.run(
            argv,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False  # the channel opened and something holds it
    except OSError:
        return True
    err = proc.stderr.decode("utf-8", "replace").lower()
    if any(marker in err for marker in _FREE):
        return True
    return not (proc.returncode == 0 or proc.stdout)
