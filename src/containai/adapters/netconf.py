"""This machine's network configuration, for the egress policy (SPEC section 15): its
own addresses (never a destination), and the package registries it is configured to
use (preset ``package-registries``): the hosts of apt's sources, pip's index URLs and
npm's registry, read from their own configuration, never written in code.

Each reader is best-effort: a tool that is absent or does not answer adds nothing.
"""

from __future__ import annotations

import glob
import itertools
import os
import subprocess
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

APT_SOURCES = "/etc/apt/sources.list"
APT_SOURCES_DIR = "/etc/apt/sources.list.d"


def _host(url: str) -> str | None:
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname.lower()
    port = parts.port
    if port is not None and port not in (80, 443):
        return f"{host}:{port}"
    return host


def apt_hosts(root: str = "/") -> list[str]:
    """Hosts of the ``deb`` lines and deb822 ``URIs:`` fields of apt's sources."""
    files = [os.path.join(root, APT_SOURCES.lstrip("/"))]
    base = os.path.join(root, APT_SOURCES_DIR.lstrip("/"))
    files += sorted(glob.glob(os.path.join(base, "*.list")))
    files += sorted(glob.glob(os.path.join(base, "*.sources")))
    urls: list[str] = []
    for path in files:
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                text = fh.read()
        except OSError:
            continue
        if path.endswith(".sources"):
            urls += _deb822_uris(text)
        else:
            for line in text.splitlines():
                words = line.split("#", 1)[0].split()
                if words and words[0] in ("deb", "deb-src"):
                    urls += [w for w in words[1:] if "://" in w][:1]
    return _unique(h for h in map(_host, urls) if h)


def _deb822_uris(text: str) -> list[str]:
    out: list[str] = []
    enabled = True
    uris: list[str] = []
    for line in [*text.splitlines(), ""]:
        if not line.strip():
            if enabled:
                out += uris
            enabled, uris = True, []
            continue
        if line.lstrip().startswith("#"):
            continue
        key, _, value = line.partition(":")
        if key.strip().lower() == "uris":
            uris += value.split()
        elif key.strip().lower() == "enabled" and value.strip().lower() == "no":
            enabled = False
    return out


def _pip_config(env: Mapping[str, str]) -> list[tuple[str, str]]:
    """pip's configuration as ``(key, value)`` pairs (``global.index-url``, ...)."""
    out = []
    for line in _run(["python3", "-I", "-m", "pip", "config", "list"], env).splitlines():
        key, _, value = line.partition("=")
        out.append((key, value.strip().strip("'\"")))
    return out


def pip_index(env: Mapping[str, str]) -> str | None:
    """The index URL pip is configured with (``PIP_INDEX_URL``, else its config), when it
    is an http(s) one: a ``file://`` index is not reachable from an image build. For
    PyPI agents in builds; ``None``: PyPI."""
    urls = env.get("PIP_INDEX_URL", "").split()
    if not urls:
        urls = [v for k, v in _pip_config(env) if k.endswith(".index-url")][-1:]
    url = urls[0] if urls else ""
    return url if _host(url) else None


def npm_registry(env: Mapping[str, str]) -> str | None:
    """The npm registry the host's npm is configured with (agent installs in builds), asked
    from the user's home, never the current directory (a repository's ``.npmrc``)."""
    registry = _run(["npm", "config", "get", "registry"], env).strip()
    return registry if registry.startswith(("http://", "https://")) else None


def pip_hosts(env: Mapping[str, str]) -> list[str]:
    """Hosts of pip's configured index and extra index URLs; without a configured
    index, pip's own default index and file host (read from the installed pip)."""
    urls: list[str] = []
    for key in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL"):
        urls += env.get(key, "").split()
    index_set = any(k == "PIP_INDEX_URL" for k in env)
    for key, value in _pip_config(env):
        if key.endswith(("index-url", "extra-index-url")):
            urls += value.split()
            index_set = index_set or key.endswith(".index-url")
    if not index_set:
        default = _run(
            [
                "python3",
                "-I",
                "-c",
                "from pip._internal.models.index import PyPI as p; "
                "print(p.pypi_url); print('https://' + p.file_storage_domain)",
            ],
            env,
        )
        urls += default.split()
    return _unique(h for h in map(_host, urls) if h)


def npm_hosts(env: Mapping[str, str]) -> list[str]:
    host = _host(npm_registry(env) or "")
    return [host] if host else []


def package_registry_hosts(env: Mapping[str, str]) -> list[str]:
    return _unique([*apt_hosts(), *pip_hosts(env), *npm_hosts(env)])


def _run(argv: list[str], env: Mapping[str, str]) -> str:
    """``argv``'s output, run from a neutral directory: never from the current one, which
    may be a hostile repository (its ``pip/`` package, its ``.npmrc``); python with
    ``-I`` (no current directory or user site on its path)."""
    cwd = env.get("HOME") or "/"
    if not os.path.isdir(cwd):
        cwd = "/"
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, env=dict(env), timeout=20, check=False, cwd=cwd
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout if proc.returncode == 0 else ""


def _unique(items: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for item in items:
        seen.setdefault(item, None)
    return list(seen)


def host_addresses() -> list[str]:
    """This machine's own IPv4 and IPv6 addresses (never an egress destination)."""
    found: list[str] = []
    try:
        with open("/proc/net/fib_trie", encoding="ascii") as fh:
            lines = fh.read().splitlines()
        for prev, line in itertools.pairwise(lines):
            if "/32 host LOCAL" in line:
                found.append(prev.strip().split()[-1])
    except OSError:
        pass
    try:
        with open("/proc/net/if_inet6", encoding="ascii") as fh:
            for line in fh:
                raw = line.split()[0]
                found.append(":".join(raw[i : i + 4] for i in range(0, 32, 4)))
    except OSError:
        pass
    import ipaddress

    return _unique(str(ipaddress.ip_address(a)) for a in found)


def _config_stamp(env: Mapping[str, str]) -> str:
    """What the registries depend on: the config files' mtimes and the variables."""
    home = env.get("HOME", "")
    paths = [
        APT_SOURCES,
        *sorted(glob.glob(os.path.join(APT_SOURCES_DIR, "*"))),
        "/etc/pip.conf",
        "/etc/xdg/pip/pip.conf",
        os.path.join(home, ".pip", "pip.conf"),
        os.path.join(home, ".config", "pip", "pip.conf"),
        os.path.join(home, ".npmrc"),
        "/etc/npmrc",
        "/usr/etc/npmrc",
    ]
    parts = []
    for path in paths:
        try:
            parts.append(f"{path}:{os.stat(path).st_mtime_ns}")
        except OSError:
            parts.append(f"{path}:-")
    for key in sorted(env):
        if key.startswith(("PIP_", "NPM_CONFIG_", "npm_config_")):
            parts.append(f"{key}={env[key]}")
    return "\n".join(parts)


def cached_package_registry_hosts(env: Mapping[str, str], cache: str) -> list[str]:
    """``package_registry_hosts`` (~2 s: pip and npm start), cached in ``cache`` under a
    stamp of everything it reads, so a create pays for it once per configuration."""
    import json

    stamp = _config_stamp(env)
    try:
        with open(cache, encoding="utf-8") as fh:
            data = json.load(fh)
        if isinstance(data, dict) and data.get("stamp") == stamp:
            hosts = data.get("hosts")
            if isinstance(hosts, list) and all(isinstance(h, str) for h in hosts):
                return hosts
    except (OSError, ValueError, UnicodeDecodeError):
        pass  # a cache: a bad one is rebuilt
    hosts = package_registry_hosts(env)
    try:
        os.makedirs(os.path.dirname(cache), mode=0o700, exist_ok=True)
        tmp = f"{cache}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump({"stamp": stamp, "hosts": hosts}, fh)
        os.replace(tmp, cache)
    except OSError:
        pass
    return hosts
