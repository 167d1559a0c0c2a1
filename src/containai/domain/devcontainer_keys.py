"""What cai does not take from a devcontainer.json, and why (SPEC sections 14 and 18).

Two tables, both data:

- ``NOT_APPLIED``: properties cai reads but never applies, each with the one-line
  reason its warning gives. Only a property that is *present and set* is warned
  about (``"privileged": false`` or ``"runArgs": []`` ask for nothing). Properties
  that only tune an editor or a cloud service (``name``, ``customizations``,
  ``portsAttributes``, ``hostRequirements``, ``shutdownAction``, ``waitFor``,
  ``userEnvProbe``, ``updateRemoteUserUID``, ``init`` (cai always runs ``--init``),
  ``secrets``, ``build.cacheFrom``, ...) and keys the reference does not know are
  ignored silently: a warning would say nothing the user can act on.
- ``reserved_env``: ``containerEnv`` names that are not applied because the
  container's whole environment also reaches the processes cai runs there as root
  (the entrypoint, a bash script, at every start): ``BASH_ENV``, ``LD_PRELOAD``,
  ``PATH`` pointing into the workspace and their kin would run the repository's code
  as root inside the sandbox, ``CAI_*`` would rewrite cai's own settings (the agent's
  uid), a CA variable would do what ``image.ca_bundle`` may never do from a
  repository. ``remoteEnv`` reaches only the agent user's sessions and lifecycle
  commands, so these names are fine there, and the warning says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from containai.domain.errors import summarize

_RUN_ELSEWHERE = "cai runs postCreateCommand and postStartCommand only; move it to one of them"
_USER = "sessions and lifecycle commands run as cai's agent user (your uid on the host)"
_MOUNT = "the workspace is mounted at its own host path and sessions start there"

NOT_APPLIED: dict[str, str] = {
    "runArgs": (
        "cai creates the container itself; docker run arguments from a repository "
        "could lower its isolation"
    ),
    "mounts": "a repository may not mount host paths or volumes into the container",
    "privileged": "cai never runs a privileged container",
    "capAdd": "cai adds no capabilities to the container",
    "securityOpt": "cai sets the container's security options itself",
    "features": (
        "Dev Container Features are not installed; install what you need in "
        "postCreateCommand (or, once trusted, in the Dockerfile)"
    ),
    "remoteUser": _USER,
    "containerUser": _USER,
    "initializeCommand": (
        "it would run on your host; cai never runs a repository's command outside the container"
    ),
    "onCreateCommand": _RUN_ELSEWHERE,
    "updateContentCommand": _RUN_ELSEWHERE,
    "postAttachCommand": _RUN_ELSEWHERE,
    "dockerComposeFile": "Docker Compose is not supported; the configured template is used",
    "appPort": (
        "cai publishes no ports; list them in forwardPorts (forwarded to 127.0.0.1 over SSH)"
    ),
    "workspaceMount": _MOUNT,
    "workspaceFolder": _MOUNT,
    "overrideCommand": "cai's own entrypoint always runs (the image's command does not)",
    "build.options": "extra docker build arguments from a repository are not passed",
}

_RESERVED = frozenset(
    {
        # what a shell or the loader runs or finds for the root entrypoint
        "PATH",
        "BASH_ENV",
        "ENV",
        "SHELLOPTS",
        "BASHOPTS",
        "PS4",
        "IFS",
        "CDPATH",
        "GLOBIGNORE",
        "POSIXLY_CORRECT",
        "EXECIGNORE",
        "FUNCNEST",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "TMPDIR",
        "GCONV_PATH",
        "LOCPATH",
        "NLSPATH",
        "HOSTALIASES",
        "RES_OPTIONS",
        "LOCALDOMAIN",
        "NODE_OPTIONS",
        "NODE_PATH",
        "RUBYOPT",
        "RUBYLIB",
        "OPENSSL_CONF",
        "OPENSSL_ENGINES",
        # trust anchors: image.ca_bundle never comes from a repository
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "NODE_EXTRA_CA_CERTS",
        "GIT_SSL_CAINFO",
        # the egress proxy cai sets (compared case-insensitively)
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "NO_PROXY",
        "FTP_PROXY",
        "SSH_AUTH_SOCK",
    }
)
_RESERVED_PREFIXES = (
    "LD_",
    "DYLD_",
    "GLIBC_",
    "MALLOC_",
    "PYTHON",
    "PERL",
    "CAI_",
    "CONTAINAI_",
    # bash's behaviour in the root entrypoint (BASH_COMPAT=42 changes its quoting)
    "BASH_",
)


# A locale name with a '/' is a path glibc loads locale files from (LOCPATH's effect).
_LOCALE_NAMES = frozenset({"LANG", "LANGUAGE"})


def reserved_env(name: str, value: str | None = None) -> bool:
    """True for a ``containerEnv`` name cai does not set from a repository (or, for the
    locale variables, a value that is a path)."""
    upper = name.upper()
    if upper in _LOCALE_NAMES or upper.startswith("LC_"):
        return value is not None and "/" in value
    return upper in _RESERVED or upper.startswith(_RESERVED_PREFIXES)


def reserved_warning(source: str, name: str) -> str:
    return (
        f"{source}: containerEnv.{name} not applied: the container's environment also "
        "reaches what cai runs there as root; set it in remoteEnv (your sessions and "
        "lifecycle commands only)"
    )


def _shown(value: Any) -> str:
    import json

    try:
        text = json.dumps(value, ensure_ascii=True)
    except (TypeError, ValueError):  # pragma: no cover - parsed JSON always dumps
        text = repr(value)
    return summarize(text, 60)


def not_applied(doc: Mapping[str, Any], source: str) -> list[str]:
    """One warning line per property of ``NOT_APPLIED`` that ``doc`` sets."""
    build = doc.get("build")
    values = dict(doc)
    if isinstance(build, Mapping) and "options" in build:
        values["build.options"] = build["options"]
    out = []
    for key, reason in NOT_APPLIED.items():
        if key not in values:
            continue
        value = values[key]
        if key == "overrideCommand":
            if value is not False:  # true is what cai does anyway
                continue
        elif value is None or value is False or value in ("", [], {}):
            continue
        out.append(f"{source}: {key} {_shown(value)} not applied: {reason}")
    return out
