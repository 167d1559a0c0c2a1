"""Engine/context selection, step 1 of SPEC section 5.

``--context``, then ``CONTAINAI_CONTEXT``, then config ``engine.context``, then the
context ``containai-docker`` if it exists, then Docker's own choice
(``DOCKER_HOST``, ``DOCKER_CONTEXT``, the current context).
"""

from __future__ import annotations

from containai.domain.errors import UnknownContext
from containai.record import Record

TYPE_CHECKING = False  # `typing` costs ~4 ms with `re`; mypy and ruff read these
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

DEDICATED_CONTEXT = "containai-docker"


class Selection(Record):
    __slots__ = ("context", "source")

    def __init__(self, context: str | None, source: str) -> None:
        self._set(context=context, source=source)

    context: str | None  # None: no --context flag, the CLI follows DOCKER_HOST
    source: str  # flag, env, config, dedicated, docker


def select_context(
    flag: str | None,
    env: Mapping[str, str],
    configured: str | None,
    exists: Callable[[str], bool],
    docker_default: Callable[[], str | None],
) -> Selection:
    for value, source in (
        (flag, "flag"),
        (env.get("CONTAINAI_CONTEXT") or None, "env"),
        (configured, "config"),
    ):
        if value:
            if not exists(value):
                where = {
                    "flag": "--context",
                    "env": "CONTAINAI_CONTEXT",
                    "config": "config engine.context",
                }[source]
                raise UnknownContext(
                    f"Docker context '{value}' (from {where}) does not exist; list contexts "
                    "with `docker context ls`, or run `cai setup` to create 'containai-docker'"
                )
            return Selection(value, source)
    if exists(DEDICATED_CONTEXT):
        return Selection(DEDICATED_CONTEXT, "dedicated")
    return Selection(docker_default(), "docker")
