"""The dialer of cai's own first login to a new container: ssh's ``ProxyCommand``
with ``ProxyUseFdpass`` (``python -I -S dialer.py HOST PORT SECONDS``).

It connects to ``HOST:PORT`` every 10 ms until sshd greets (``SSH-``, read with
``MSG_PEEK``, so the greeting stays for ssh to read), turns Nagle off (OpenSSH does
that only for interactive sessions, so a login's handshake waits on delayed ACKs:
~30 ms measured) and hands that very connection to ssh. So the connection that saw
the banner is the one that logs in: sshd forks and re-executes itself once per
connection (~0.1 s under gVisor), and a probe that closed its connection would cost
that twice. Docker's proxy, or the gateway's forwarder, accepts and closes while
nothing listens inside: no banner, next try. After ``SECONDS`` without a banner it
exits 1 and ssh fails; ``Sessions.wait_ready`` then asks plain ssh for its error.

Standard library C modules only (``-S``: no site, ~10 ms); imported by nothing on
the hot path.
"""

from __future__ import annotations

import _socket
import sys
import time

_POLL_SECONDS = 0.01
_BANNER = b"SSH-"


def dial(host: str, port: int, seconds: float) -> _socket.socket | None:
    """A connection to ``host:port`` on which sshd has greeted (the greeting unread);
    ``None`` after ``seconds`` without one."""
    deadline = time.monotonic() + seconds
    while True:
        conn = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
        try:
            conn.settimeout(max(0.05, min(1.0, deadline - time.monotonic())))
            conn.connect((host, port))
            conn.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            if conn.recv(len(_BANNER), _socket.MSG_PEEK | _socket.MSG_WAITALL) == _BANNER:
                conn.settimeout(None)  # blocking again, as ssh expects it
                return conn
        except OSError:
            pass
        conn.close()
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        time.sleep(min(_POLL_SECONDS, left))


def main(argv: list[str]) -> int:
    host, port, seconds = argv[1], int(argv[2]), float(argv[3])
    conn = dial(host, port, seconds)
    if conn is None:
        sys.stderr.write(f"cai: no SSH banner on {host}:{port} within {seconds:g}s\n")
        return 1
    out = _socket.socket(fileno=1)  # ssh's end of the socketpair: the fd goes over it
    out.sendmsg(
        [bytes(1)],
        [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, conn.fileno().to_bytes(4, sys.byteorder))],
    )
    out.detach()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
