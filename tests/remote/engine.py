"""The handle the ``remote_engine`` fixture gives tests: run ``docker`` and ``ssh``
against the remote engine as a client on another machine would, send it images
(``docker save | docker --context remote load``), time round trips, and stop it.
Built by ``tests/remote/fixture.py``'s ``start()``."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from tests.remote import files
from tests.remote import machine as m
from tests.remote.machine import Unavailable

CONTEXT = "remote"
SSH_ALIAS = "cai-remote-test"
LABEL = m.LABEL
BASE_IMAGES = ("containai-base:bookworm", "debian:bookworm-slim", "debian:bookworm")
"""Local images ``base_image()`` sends to the remote, the first present (all have perl)."""


def _local_env() -> dict[str, str]:
    return dict(os.environ)


@dataclass
class RemoteEngine:
    """What the ``remote_engine`` fixture hands to tests."""

    client_dir: Path
    env: dict[str, str]  # PATH (the ssh wrapper first) and DOCKER_CONFIG (context 'remote')
    addresses: m.Addresses
    host_key: str  # "ssh-ed25519 AAAA..." of the remote's sshd
    context: str = CONTEXT
    ssh_alias: str = SSH_ALIAS
    account: str = m.ACCOUNT
    socket: Path = m.SOCKET  # only for inspection: cai must never be given it
    data_root: Path = m.DATA_ROOT
    sshd_port: int = m.SSH_PORT
    timings: dict[str, float] = field(default_factory=dict)
    loaded: dict[str, float] = field(default_factory=dict)
    _daemons: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _lock: IO[str] | None = None

    @property
    def ssh_config(self) -> Path:
        return self.client_dir / "ssh_config"

    @property
    def known_hosts(self) -> Path:
        return self.client_dir / "known_hosts"

    @property
    def identity(self) -> Path:
        return self.client_dir / "id_ed25519"

    @property
    def docker_config(self) -> Path:
        return self.client_dir / "docker"

    @property
    def sshd_host(self) -> str:
        return self.addresses.remote_ip

    # ------------------------------------------------------------- helpers
    def docker(
        self, *args: str, timeout: float = 300, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``docker --context remote ARGS`` (through ssh), never raising."""
        return subprocess.run(
            ["docker", "--context", self.context, *args],
            env=self.env,
            capture_output=True,
            text=True,
            input=input,
            timeout=timeout,
            check=False,
        )

    def ssh(
        self, *args: str, timeout: float = 60, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``ssh ARGS`` with the fixture's client config (the wrapper on PATH)."""
        return subprocess.run(
            ["ssh", *args],
            env=self.env,
            capture_output=True,
            text=True,
            input=input if input is not None else "",
            timeout=timeout,
            check=False,
        )

    def env_for(self, base: Mapping[str, str]) -> dict[str, str]:
        """``base`` (e.g. a sandbox's env) able to reach the remote: the ssh wrapper
        first on PATH, and the context ``remote`` in the docker config ``base``
        selects (``DOCKER_CONFIG``, else ``$HOME/.docker``)."""
        env = dict(base)
        env["PATH"] = f"{self.client_dir / 'bin'}{os.pathsep}{base.get('PATH', os.defpath)}"
        config = env.get("DOCKER_CONFIG") or str(Path(env.get("HOME", "~")) / ".docker")
        self.install_context(Path(config).expanduser())
        return env

    def install_context(self, docker_config: Path) -> None:
        """Create the context ``remote`` in another docker config directory."""
        env = {**self.env, "DOCKER_CONFIG": str(docker_config)}
        probe = subprocess.run(
            ["docker", "context", "inspect", self.context],
            env=env,
            capture_output=True,
            check=False,
        )
        if probe.returncode != 0:
            check(
                [
                    "docker",
                    "context",
                    "create",
                    self.context,
                    "--description",
                    "cai's remote-engine test fixture (tests/remote)",
                    "--docker",
                    f"host=ssh://{self.ssh_alias}",
                ],
                env,
            )

    def round_trips(self, n: int = 5) -> list[float]:
        """Seconds per ``docker --context remote version`` (one ssh connection each,
        unless the ssh config multiplexes)."""
        out = []
        for _ in range(n):
            t = time.monotonic()
            proc = self.docker("version", "--format", "{{.Server.Version}}", timeout=60)
            out.append(time.monotonic() - t)
            if proc.returncode != 0:
                raise RuntimeError(f"docker --context remote version: {proc.stderr}")
        return out

    def set_multiplex(self, on: bool) -> None:
        """Rewrite the client ssh config with or without an OpenSSH control master."""
        if not on:
            self.ssh("-O", "exit", self.ssh_alias)
        self.ssh_config.write_text(self._ssh_config_text(multiplex=on))

    def _ssh_config_text(self, *, multiplex: bool) -> str:
        return files.ssh_config(
            alias=self.ssh_alias,
            addrs=self.addresses,
            identity=self.identity,
            known_hosts=self.known_hosts,
            control_dir=self.client_dir if multiplex else None,
        )

    def load_image(self, ref: str) -> float:
        """``docker save REF | docker --context remote load``; seconds (cached per ref)."""
        if ref in self.loaded:
            return self.loaded[ref]
        t = time.monotonic()
        save = subprocess.Popen(
            ["docker", "save", ref],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_local_env(),
        )
        assert save.stdout is not None
        load = subprocess.run(
            ["docker", "--context", self.context, "load", "-q"],
            stdin=save.stdout,
            env=self.env,
            capture_output=True,
            timeout=1800,
            check=False,
        )
        save.stdout.close()
        err = save.stderr.read() if save.stderr else b""
        if save.wait() != 0 or load.returncode != 0:
            raise RuntimeError(f"save|load {ref}: {err.decode()} {load.stderr.decode()}")
        self.loaded[ref] = time.monotonic() - t
        return self.loaded[ref]

    def base_image(self) -> str:
        """The first of ``BASE_IMAGES`` present locally, loaded into the remote."""
        for ref in BASE_IMAGES:
            probe = subprocess.run(
                ["docker", "image", "inspect", ref],
                env=_local_env(),
                capture_output=True,
                check=False,
            )
            if probe.returncode == 0:
                self.load_image(ref)
                return ref
        raise Unavailable(
            f"none of {', '.join(BASE_IMAGES)} is on the local engine "
            "(scripts/test runs `cai image build`, which makes containai-base:bookworm)"
        )

    def stop(self) -> None:
        """Stop both daemons and remove the engine, its data, the account and the
        namespace (the client files stay with the caller's temp dir)."""
        t = time.monotonic()
        try:
            m.sweep([p.pid for p in self._daemons])
        finally:
            for proc in self._daemons:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=5)
            self._daemons.clear()
            if self._lock is not None:
                self._lock.close()
                self._lock = None
        self.timings["stop"] = time.monotonic() - t


def check(argv: list[str], env: Mapping[str, str] | None = None) -> str:
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} -> {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout
