"""``cai doctor`` (SPEC section 13): check the machine and say how to fix what is missing.

Ten checks, in this order: engine, context, isolation, base image, OpenSSH
client, user key, ``Include`` line, SSH ports, disk space, network. Each ends
``OK``, ``WARN``, ``FAIL`` or ``SKIP`` with a one-line detail and, when not
``OK``, a one-line fix. A workspace can be created when no check is ``FAIL``.

How it runs: every fact is gathered in a worker thread with its own time budget
(a few seconds), all engine-independent facts and the engine's version
and info (``engine_version``, ``engine_info``) at once, then the facts that need an
answering engine (images, managed containers' SSH ports, disk of its data root). A fact that
is not there in time is reported as such; the engine-independent checks are
decided even when the engine does not answer. The decisions themselves are
pure functions of the facts (``decide_*``), unit-tested with in-memory fakes.

Doctor never changes anything: it creates no key, writes no ``~/.ssh/config``
and pulls no image.

The modules, by job:

``report``         ``Check`` and ``DoctorReport``: statuses, check ids and titles
``gather``         facts within a time budget (``Outcome``, ``gather``)
``engine_checks``  engine, context, isolation, base image, disk, network
``ssh_checks``     OpenSSH client, user key, ``Include`` line, SSH ports
``diagnose``       what doctor reads (Protocols, ``DoctorInputs``) and ``diagnose``
"""

from __future__ import annotations

from containai.services.doctor.diagnose import DoctorEngine, DoctorHost, DoctorInputs, diagnose
from containai.services.doctor.engine_checks import (
    DEFAULT_BASE,
    DISK_FAIL,
    DISK_WARN,
    GIB,
    OFFLINE_BASE,
    base_candidates,
    decide_base_image,
    decide_context,
    decide_disk,
    decide_engine,
    decide_isolation,
    decide_network,
)
from containai.services.doctor.gather import DEFAULT_BUDGET, TIMED_OUT, Outcome, gather
from containai.services.doctor.report import (
    FAIL,
    OK,
    ORDER,
    SKIP,
    STATUSES,
    TITLES,
    WARN,
    Check,
    DoctorReport,
)
from containai.services.doctor.ssh_checks import (
    INCLUDE_PATTERN,
    PORTS_WARN,
    decide_include,
    decide_ports,
    decide_ssh_client,
    decide_user_key,
    held_ports,
)

__all__ = [
    "DEFAULT_BASE",
    "DEFAULT_BUDGET",
    "DISK_FAIL",
    "DISK_WARN",
    "FAIL",
    "GIB",
    "INCLUDE_PATTERN",
    "OFFLINE_BASE",
    "OK",
    "ORDER",
    "PORTS_WARN",
    "SKIP",
    "STATUSES",
    "TIMED_OUT",
    "TITLES",
    "WARN",
    "Check",
    "DoctorEngine",
    "DoctorHost",
    "DoctorInputs",
    "DoctorReport",
    "Outcome",
    "base_candidates",
    "decide_base_image",
    "decide_context",
    "decide_disk",
    "decide_engine",
    "decide_include",
    "decide_isolation",
    "decide_network",
    "decide_ports",
    "decide_ssh_client",
    "decide_user_key",
    "diagnose",
    "gather",
    "held_ports",
]
