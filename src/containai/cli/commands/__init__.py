"""The commands: one module each, and the registry, which is this package itself.

A command is one module here (``stop.py`` is ``cai stop``; a name that is a Python
keyword or builtin gets a trailing underscore: ``import_.py``, ``list_.py``,
``exec_.py``) that declares:

- ``NAME``: the command word; ``HELP``: its line in ``cai --help``; ``DESCRIPTION``:
  the text of ``cai NAME --help``;
- ``arguments(p)``: adds its options and positionals to ``p`` (its argparse parser,
  or the recorder of the argparse-free path: use ``p.add_argument``, groups,
  subcommands, and the shared helpers of ``cli/options.py``);
- ``run(args) -> int``: the handler; it raises ``CaiError`` for expected failures;
- optionally ``REST``: what may follow the options. ``None`` (default): nothing after
  ``--`` (a usage error); ``"after --"``: the words after ``--`` are ``args.rest``
  (``cai run -- --print hi``); ``"command"``: also the first word that is not an
  option starts ``args.rest`` (``cai exec ls -la``).

Nothing else names a command: ``cai --help``, the parser, the argparse-free path and
``cai completion`` all read these modules. Only the module of the command that runs is
imported (the hot path, ``cai exec`` on a running container, loads nothing else).
"""

from __future__ import annotations

TYPE_CHECKING = False  # `typing` costs ~4 ms with `re`; mypy and ruff read these
if TYPE_CHECKING:
    from types import ModuleType


def module_names() -> list[str]:
    """Every command module's name, sorted (``import_``, ``list_``, ...)."""
    import pkgutil

    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def names() -> list[str]:
    """Every command word, sorted."""
    return sorted(name.rstrip("_") for name in module_names())


def load(name: str) -> ModuleType | None:
    """The module of command ``name``, or ``None`` when there is no such command."""
    if not name.isidentifier() or name.startswith("_") or name != name.lower():
        return None
    import importlib

    for module_name in (f"{__name__}.{name}", f"{__name__}.{name}_"):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise  # the command's own import failed: a bug to report, not "no such"
            continue
        if getattr(module, "NAME", None) == name:
            return module
    return None


def modules() -> list[ModuleType]:
    """Every command module (this imports them all: for help and completion only)."""
    found = [load(name) for name in names()]
    return [module for module in found if module is not None]


def closest(word: str, candidates: list[str]) -> str | None:
    """The candidate ``word`` was most likely meant to be: the only one it abbreviates
    (``--remov`` -> ``--remove``), else the most similar if close enough (``stats`` ->
    ``status``; not ``--reset`` for ``--remove``, which run does not take)."""
    starts = [c for c in candidates if c.startswith(word)] if len(word) > 1 else []
    if len(starts) == 1:
        return starts[0]
    import difflib

    matches = difflib.get_close_matches(word, candidates, n=1, cutoff=0.75)
    return matches[0] if matches else None
