"""The warm ``cai exec``, answered before the rest of cai is imported (DESIGN decision 2).

``cai exec [--] CMD [ARGS]`` with no option, in a workspace whose container is cached
(``adapters/hotcache.py``) and whose SSH control master answers, becomes
``ssh -F <entry> -T|-tt cai-<name> 'cd <workspace> && exec CMD ARGS'`` at once:
the same argv the full path (``cli/main.py`` -> ``services/run.py``'s fast path)
builds, from ``os``, ``posixpath`` and the ``_socket`` C module alone. That path
imports the argv parser, the command registry, the validation rules (``re``,
``typing``, ``enum``), ``pathlib``, ``shlex`` and the ssh adapter: ~20 ms of a
``cai exec`` that the goal (<= 0.7x ``docker exec``) cannot pay.

Anything this module is not sure of - an option, ``--verbose``, ``GIT_DIR``,
``sudo``, a directory that may not be a workspace, no cache entry, no live master, a
name or path it would have to quote unusually - answers ``None`` and the full path
runs, which owns every message. ``tests/unit/test_hot.py`` checks that whenever this
module answers, its argv is the full path's (hypothesis), and
``tests/e2e/test_hot_path.py`` that a warm ``cai exec`` takes it.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # `typing` costs ~4 ms with `re`; mypy and ruff read these
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

# OpenSSH's limit on a ControlPath (adapters/ssh/layout.CONTROL_PATH_MAX)
_CONTROL_PATH_MAX = 90
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
# shlex.quote leaves a word alone when it is made only of these (its `_find_unsafe`)
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_@%+=:,./-")


def quote(word: str) -> str:
    """``shlex.quote(word)`` without importing ``shlex`` (which imports ``re``)."""
    if not word:
        return "''"
    if all(ch in _SAFE for ch in word):
        return word
    return "'" + word.replace("'", "'\"'\"'") + "'"


def _valid_name(name: str) -> bool:
    """A container name cai makes (``adapters/ssh/layout.NAME_RE``)."""
    return (
        0 < len(name) <= 63
        and name[0] in _NAME_CHARS
        and name[0] not in "_.-"
        and all(ch in _NAME_CHARS for ch in name)
    )


def control_path(state_dir: str, name: str) -> str:
    """``adapters/ssh/layout.control_path``, as text."""
    path = os.path.join(state_dir, "ssh", name)
    if len(os.fsencode(path)) <= _CONTROL_PATH_MAX:
        return path
    from containai.lazy import sha256_hex

    return f"/tmp/cai-{os.getuid()}/{sha256_hex(os.fsencode(path))[:16]}"


def _master_alive(path: str) -> bool:
    """A control master answers on ``path`` (one ``connect()``: no fork, no ``ssh -O``)."""
    import _socket  # the C module: `socket` costs ~3 ms more

    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(1.0)
        sock.connect(os.fsencode(path))
    except OSError:
        return False
    finally:
        sock.close()
    return True


def _command(argv: Sequence[str]) -> list[str] | None:
    """CMD ARGS of ``exec [--] CMD [ARGS]`` (no option); ``None`` for anything else."""
    if len(argv) < 2 or argv[0] != "exec":
        return None
    rest = list(argv[2:]) if argv[1] == "--" else list(argv[1:])
    if not rest or not rest[0] or rest[0].startswith("-"):
        return None
    return rest


def _git_top(start: str) -> str | None:
    """The workspace ``adapters/git.resolve_workspace`` finds for ``start``: the work
    tree containing it, else ``start`` itself; ``None``: not sure."""
    current = start
    while True:
        dotgit = os.path.join(current, ".git")
        if os.path.isdir(dotgit):
            return current
        if os.path.isfile(dotgit):
            try:
                with open(dotgit, encoding="utf-8") as fh:
                    text = fh.read().strip()
            except OSError:
                text = ""
            except ValueError:  # not UTF-8: the full path decides what that means
                return None
            if text.startswith("gitdir:"):
                return current
        parent = os.path.dirname(current)
        if parent == current:
            return start  # not in git: the directory itself
        current = parent


def plan(
    argv: Sequence[str], env: Mapping[str, str], cwd: str, stdin_tty: bool
) -> list[str] | None:
    """The ``ssh`` argv the full path would exec into for ``cai <argv>``, when this
    module is sure of it; else ``None``."""
    rest = _command(argv)
    if rest is None:
        return None
    if env.get("CONTAINAI_VERBOSE", "") not in ("", "0"):
        return None  # the full path says which way it attaches
    if env.get("GIT_DIR") or env.get("GIT_WORK_TREE") or env.get("SUDO_UID"):
        return None
    top = _git_top(os.path.realpath(cwd))
    if top is None:
        return None
    from containai.adapters import hotcache
    from containai.domain import workspace_rules
    from containai.paths import resolve_paths

    homes = (env["HOME"],) if env.get("HOME") else ()
    try:
        sticky = bool(os.stat(top).st_mode & 0o1000)
    except OSError:
        sticky = False
    if workspace_rules.refusal(top, homes, sticky=sticky) is not None:
        return None
    paths = resolve_paths(env)
    name = hotcache.read(paths, top, hotcache.engine_key(paths, env, None))
    if name is None or not _valid_name(name):
        return None
    if not _master_alive(control_path(paths.state_text, name)):
        return None
    entry = os.path.join(paths.home_text, ".ssh", "containai.d", f"{name}.conf")
    remote = f"cd {quote(top)} && exec {' '.join(quote(word) for word in rest)}"
    return ["ssh", "-F", entry, "-tt" if stdin_tty else "-T", f"cai-{name}", remote]


def attach(argv: Sequence[str], env: Mapping[str, str]) -> None:
    """Become ``ssh`` when :func:`plan` answers; return (to the full path) otherwise."""
    try:
        argv_ssh = plan(argv, env, os.getcwd(), os.isatty(0))
    except Exception:  # anything unexpected: the full path runs and reports it
        return
    except KeyboardInterrupt:  # as cli/main.py says it (no traceback)
        from containai.domain.errors import EXIT_INTERRUPTED

        sys.stderr.write("cai: interrupted\n")
        sys.exit(EXIT_INTERRUPTED)
    if argv_ssh is None:
        return
    try:
        os.execvp(argv_ssh[0], argv_ssh)
    except OSError:
        return  # no ssh: the full path says so


def entry() -> None:
    """The entry point of the ``cai`` launcher, ``containai`` and ``python -m
    containai``: the warm exec, else ``cli/main.py``."""
    attach(sys.argv[1:], os.environ)
    from containai.cli.main import entry as full

    full()
