"""`cai status` and `cai list`: parsing the engine's output, the best-effort probes and
their budget, the text layout of SPEC section 7 and the JSON shapes. In-memory fakes."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from containai.adapters.engine import DockerEngine
from containai.adapters.engine.shapes import (
    LIST_FORMAT,
    container_of,
    container_of_row,
    parse_mem_usage,
    parse_percent,
    parse_size,
    stats_of,
)
from containai.cli.commands.list_ import HEADERS, render_table
from containai.cli.commands.status import render_text
from containai.domain import labels as L
from containai.domain.engine_objects import ContainerInfo, ContainerStats
from containai.domain.errors import EngineUnreachable
from containai.domain.sessions import Sessions
from containai.services.inventory import Listed, display_status, list_managed, listed
from containai.services.status import (
    Resources,
    StatusReport,
    container_status,
    resources_from_stats,
)

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
GIB = 1024**3
MIB = 1024**2

STATUS_FIELDS = {
    "network",
    "forwards",
    "branch",
    "current_branch",
    "container",
    "status",
    "image",
    "isolation",
    "ssh_alias",
    "ssh_port",
    "data_volume",
    "workspace",
    "uptime_seconds",
    "sessions",
    "resources",
}
LIST_FIELDS = {
    "name",
    "status",
    "workspace",
    "ssh_alias",
    "ssh_port",
    "data_volume",
    "image",
    "isolation",
    "runtime",
    "created",
    "age_seconds",
    "keep",
    "network",
}


# ------------------------------------------------------------------ stats parsing
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.2GiB / 4GiB", (round(1.2 * GIB), 4 * GIB)),
        ("512MiB / 7.6GiB", (512 * MIB, round(7.6 * GIB))),
        ("484KiB / 23.54GiB", (484 * 1024, round(23.54 * GIB))),
        ("0B / 2GiB", (0, 2 * GIB)),
        ("1.5kB / 1MB", (1500, 1_000_000)),
        ("0B / 0B", (None, None)),
        ("--", (None, None)),
        ("-- / --", (None, None)),
        ("", (None, None)),
        ("12 parsecs / 4GiB", (None, 4 * GIB)),
        ("1GiB", (None, None)),
    ],
)
def test_parse_mem_usage(text: str, expected: tuple[int | None, int | None]) -> None:
    assert parse_mem_usage(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("5.2%", 5.2), ("0.00%", 0.0), ("250.13%", 250.13), ("--", None), ("", None), ("5.2", None)],
)
def test_parse_percent(text: str, expected: float | None) -> None:
    assert parse_percent(text) == expected


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(["B", "KiB", "MiB", "GiB"]))
def test_parse_size_binary_units(number: int, unit: str) -> None:
    factor = {"B": 1, "KiB": 1024, "MiB": MIB, "GiB": GIB}[unit]
    assert parse_size(f"{number}{unit}") == number * factor


def test_resources_from_a_stats_row() -> None:
    row = {"MemUsage": "1.2GiB / 4GiB", "CPUPerc": "5.20%", "MemPerc": "30.00%"}
    res = resources_from_stats(stats_of(row))
    assert res == Resources(round(1.2 * GIB), 4 * GIB, 5.2)
    assert res.memory_percent == pytest.approx(30.0)
    assert resources_from_stats(None) == Resources()
    assert resources_from_stats(stats_of({"MemUsage": "--", "CPUPerc": "--"})) == Resources()


def test_display_status_says_stopped_for_exited() -> None:
    assert display_status("exited") == "stopped"
    assert [display_status(s) for s in ("running", "created", "paused")] == [
        "running",
        "created",
        "paused",
    ]


# --------------------------------------------------------------------- status
def inspect_doc(
    *,
    name: str = "myapp-main",
    status: str = "running",
    started: str = "2026-11-24T07:47:59.500000001Z",
    labels: dict[str, str] | None = None,
) -> ContainerInfo:
    """A container as `docker container inspect` describes it, read by the adapter."""
    return container_of(
        {
            "Id": "f" * 64,
            "Name": "/" + name,
            "Created": "2026-11-20T10:00:00Z",
            "State": {"Status": status, "Running": status == "running", "StartedAt": started},
            "Config": {
                "Image": "containai:default",
                "Labels": {
                    "containai.managed": "true",
                    "containai.workspace": "/src/myapp",
                    "containai.ssh-port": "2301",
                    "containai.data-volume": "containai-data",
                    "containai.runtime": "runsc",
                }
                if labels is None
                else labels,
            },
            "HostConfig": {"Runtime": "runsc"},
        }
    )


class FakeStats:
    """The engine's `docker stats`, in memory: a row, an error or a slow answer."""

    def __init__(
        self, row: dict[str, Any] | None = None, *, delay: float = 0.0, error: bool = False
    ) -> None:
        self.row, self.delay, self.error = row, delay, error
        self.calls: list[tuple[str, float]] = []

    def stats(self, name: str, timeout: float = 5.0) -> ContainerStats | None:
        self.calls.append((name, timeout))
        time.sleep(min(self.delay, timeout + 1))
        if self.error:
            raise EngineUnreachable("the engine did not answer 'docker stats' within 5 s")
        return None if self.row is None else stats_of(self.row)


class FakeSessions:
    def __init__(self, found: Sessions | None, *, delay: float = 0.0) -> None:
        self.found, self.delay = found, delay
        self.calls: list[tuple[str, float]] = []
        self.threads: set[int] = set()

    def __call__(self, name: str, timeout: float) -> Sessions | None:
        self.calls.append((name, timeout))
        self.threads.add(threading.get_ident())
        time.sleep(self.delay)
        return self.found


STATS_ROW = {"MemUsage": "1.2GiB / 4GiB", "CPUPerc": "5.20%"}


def test_status_of_a_running_container_has_every_field() -> None:
    stats, sessions = FakeStats(STATS_ROW), FakeSessions(Sessions(2, 3))
    report = container_status(inspect_doc(), engine=stats, sessions=sessions, now=NOW)
    assert report.container == "myapp-main"
    assert report.uptime_seconds == 3 * 86400 + 4 * 3600 + 12 * 60  # since StartedAt
    assert report.isolation == "runsc (gVisor)"
    assert report.sessions == Sessions(2, 3)
    assert report.resources == Resources(round(1.2 * GIB), 4 * GIB, 5.2)
    assert stats.calls == [("myapp-main", 5.0)]
    assert sessions.calls == [("myapp-main", 5.0)]


def test_status_text_layout_is_the_spec_block() -> None:
    report = StatusReport(
        container="myapp-main",
        status="running",
        image="containai:default",
        runtime="runsc",
        isolation="runsc (gVisor)",
        ssh_port=2301,
        data_volume="containai-data",
        workspace="/src/myapp",
        uptime_seconds=3 * 86400 + 4 * 3600 + 12 * 60 + 7,
        sessions=Sessions(2, 3),
        resources=Resources(round(1.2 * GIB), 4 * GIB, 5.2),
        network_policy="allowlist",
        denials=4,
    )
    assert "\n".join(render_text(report)) == (
        "Container: myapp-main\n"
        "  Status: running\n"
        "  Uptime: 3d 4h 12m\n"
        "  Image: containai:default\n"
        "  Isolation: runsc (gVisor)\n"
        "  SSH: ssh cai-myapp-main\n"
        "  Volume: containai-data\n"
        "  Network: allowlist, 4 denied (`cai network log`)\n"
        "\n"
        "  Sessions (best-effort):\n"
        "    SSH connections: 2\n"
        "    Active terminals: 3\n"
        "\n"
        "  Resource Usage:\n"
        "    Memory: 1.2GB / 4.0GB (30%)\n"
        "    CPU: 5.2%"
    )


def test_status_of_a_stopped_container_probes_nothing_and_omits_best_effort_lines() -> None:
    stats, sessions = FakeStats(STATS_ROW), FakeSessions(Sessions(1, 1))
    report = container_status(
        inspect_doc(status="exited", started="2026-11-24T07:48:00Z"),
        engine=stats,
        sessions=sessions,
        now=NOW,
    )
    assert (stats.calls, sessions.calls) == ([], [])
    assert report.status == "stopped"
    assert report.uptime_seconds is None and report.sessions is None
    assert report.resources == Resources()
    assert render_text(report) == [
        "Container: myapp-main",
        "  Status: stopped",
        "  Image: containai:default",
        "  Isolation: runsc (gVisor)",
        "  SSH: ssh cai-myapp-main",
        "  Volume: containai-data",
        "  Network: open (made before egress policies: `cai --fresh` moves it behind the gateway)",
    ]


def test_unavailable_probes_are_omitted_not_faked() -> None:
    report = container_status(
        inspect_doc(started="0001-01-01T00:00:00Z"),
        engine=FakeStats(error=True),
        sessions=FakeSessions(None),
        now=NOW,
    )
    assert report.uptime_seconds is None and report.sessions is None
    assert report.resources == Resources()
    text = "\n".join(render_text(report))
    for absent in ("Uptime", "Sessions", "SSH connections", "Resource Usage", "Memory", "CPU"):
        assert absent not in text
    doc = report.to_json()
    assert doc["uptime_seconds"] is None
    assert doc["sessions"] == {"ssh_connections": None, "active_terminals": None}
    assert doc["resources"] == {
        "memory_bytes": None,
        "memory_limit_bytes": None,
        "cpu_percent": None,
    }


def test_only_known_resource_lines_are_shown() -> None:
    report = container_status(
        inspect_doc(),
        engine=FakeStats({"MemUsage": "0B / 0B", "CPUPerc": "0.50%"}),
        sessions=FakeSessions(None),
        now=NOW,
    )
    lines = render_text(report)
    assert lines[-2:] == ["  Resource Usage:", "    CPU: 0.5%"]
    assert not any("Memory" in line for line in lines)


def test_probes_run_concurrently_within_the_budget() -> None:
    stats = FakeStats(STATS_ROW, delay=0.4)
    sessions = FakeSessions(Sessions(0, 1), delay=0.4)
    start = time.monotonic()
    report = container_status(inspect_doc(), engine=stats, sessions=sessions, now=NOW, budget=2)
    elapsed = time.monotonic() - start
    assert report.sessions == Sessions(0, 1) and report.resources.cpu_percent == 5.2
    assert elapsed < 0.75, f"probes ran one after the other ({elapsed:.2f} s)"


def test_a_probe_slower_than_the_budget_is_unknown_and_does_not_hold_status() -> None:
    sessions = FakeSessions(Sessions(5, 5), delay=1.5)
    start = time.monotonic()
    report = container_status(
        inspect_doc(), engine=FakeStats(STATS_ROW), sessions=sessions, now=NOW, budget=0.2
    )
    elapsed = time.monotonic() - start
    assert report.sessions is None
    assert report.resources.cpu_percent == 5.2
    assert elapsed < 1.2
    assert sessions.calls == [("myapp-main", 0.2)]  # the budget is passed down to the probe


def test_status_json_types() -> None:
    report = container_status(
        inspect_doc(), engine=FakeStats(STATS_ROW), sessions=FakeSessions(Sessions(2, 0)), now=NOW
    )
    doc = json.loads(json.dumps(report.to_json()))
    assert set(doc) == STATUS_FIELDS
    assert doc["container"] == "myapp-main" and doc["status"] == "running"
    assert doc["ssh_alias"] == "cai-myapp-main"
    assert doc["ssh_port"] == 2301 and isinstance(doc["ssh_port"], int)
    assert isinstance(doc["uptime_seconds"], int)
    assert doc["sessions"] == {"ssh_connections": 2, "active_terminals": 0}
    assert isinstance(doc["resources"]["memory_bytes"], int)
    assert doc["resources"]["memory_limit_bytes"] == 4 * GIB
    assert doc["resources"]["cpu_percent"] == 5.2


def test_isolation_falls_back_to_the_engine_runtime_and_unknown_labels_are_null() -> None:
    report = container_status(
        inspect_doc(status="created", labels={"containai.managed": "true"}),
        engine=FakeStats(),
        sessions=FakeSessions(None),
        now=NOW,
    )
    doc = report.to_json()
    assert doc["isolation"] == "runsc (gVisor)"  # HostConfig.Runtime
    assert (doc["ssh_port"], doc["data_volume"], doc["workspace"]) == (None, None, None)
    assert "  Volume:" not in "\n".join(render_text(report))


# ----------------------------------------------------------------------- list
def ps_line(
    name: str,
    *,
    state: str = "exited",
    created: str = "2026-11-20 12:00:00 +0000 UTC",
    labels: dict[str, str] | None = None,
) -> str:
    base = {
        "containai.managed": "true",
        "containai.workspace": f"/src/{name}",
        "containai.ssh-port": "2301",
        "containai.data-volume": "containai-data",
        "containai.runtime": "runc",
        "containai.keep": "",
    }
    return json.dumps(
        {
            "id": name * 4,
            "names": name,
            "state": state,
            "image": "containai:default",
            "created": created,
            "labels": base if labels is None else labels,
        }
    )


def parse_list_row(line: str, now: datetime) -> Listed | None:
    """One line of `docker ps --format LIST_FORMAT`, as the adapter reads it and list
    shows it; ``None`` for an unmanaged one."""
    row = container_of_row(json.loads(line))
    return listed(row, now) if L.is_managed(row.labels) else None


def test_label_values_with_commas_quotes_and_equals_are_exact() -> None:
    workspace = '/src/a,containai.keep=true,b="c"'
    labels = {"containai.managed": "true", "containai.workspace": workspace, "containai.keep": ""}
    row = parse_list_row(ps_line("app", labels=labels), NOW)
    assert row is not None
    assert row.workspace == workspace
    assert row.keep is False  # the "containai.keep=true" inside the path is no label


def test_list_row_fields() -> None:
    row = parse_list_row(ps_line("app-main", state="running"), NOW)
    assert row == Listed(
        name="app-main",
        state="running",
        workspace="/src/app-main",
        ssh_port=2301,
        data_volume="containai-data",
        image="containai:default",
        runtime="runc",
        created=datetime(2026, 11, 20, 12, 0, tzinfo=UTC),
        age_seconds=7 * 86400,
        keep=False,
    )
    doc = row.to_json()
    assert set(doc) == LIST_FIELDS
    assert doc["created"] == "2026-11-20T12:00:00Z"
    assert doc["isolation"] == "runc (no extra isolation)"
    assert doc["ssh_alias"] == "cai-app-main"
    assert doc["network"] == "open"  # no policy label: made before egress policies


@pytest.mark.parametrize(
    ("labels", "managed"),
    [
        ({"containai.managed": "true"}, True),
        ({"containai.managed": "false"}, False),
        ({"containai.managed": "TRUE"}, False),
        ({}, False),
    ],
)
def test_only_managed_rows_are_listed(labels: dict[str, str], managed: bool) -> None:
    assert (parse_list_row(ps_line("x", labels=labels), NOW) is not None) is managed


def test_unknown_labels_and_times_are_null_never_invented() -> None:
    line = ps_line(
        "x",
        created="garbage",
        labels={
            "containai.managed": "true",
            "containai.ssh-port": "notaport",
            "containai.keep": "",
        },
    )
    row = parse_list_row(line, NOW)
    assert row is not None
    doc = row.to_json()
    assert doc["created"] is None and doc["age_seconds"] is None
    assert doc["ssh_port"] is None and doc["workspace"] is None and doc["runtime"] is None
    assert doc["isolation"] == "unknown"


@pytest.mark.parametrize("keep", ["true", "1", "yes", "True"])
def test_keep_label(keep: str) -> None:
    labels = {"containai.managed": "true", "containai.keep": keep}
    row = parse_list_row(ps_line("x", labels=labels), NOW)
    assert row is not None and row.keep is True


class FakePs(DockerEngine):
    """The real adapter over a `docker` that answers every call with fixed lines."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("default")
        self.lines = lines
        self.calls: list[tuple[str, ...]] = []

    def run(
        self,
        *args: str,
        input: str | bytes | None = None,
        check: bool = True,
        timeout: float | None = None,
        text: bool = True,
    ) -> subprocess.CompletedProcess[Any]:
        self.calls.append(args)
        return subprocess.CompletedProcess(list(args), 0, "\n".join(self.lines) + "\n", "")


def test_list_is_one_engine_call_sorted_by_name() -> None:
    unmanaged = ps_line("zz", labels={"containai.managed": ""})
    fake = FakePs([ps_line("b-main"), unmanaged, ps_line("a-main", state="running")])
    rows = list_managed(fake, NOW)
    assert [r.name for r in rows] == ["a-main", "b-main"]
    assert [r.status for r in rows] == ["running", "stopped"]
    assert len(fake.calls) == 1
    call = fake.calls[0]
    assert call[0] == "ps" and "--all" in call
    assert call[call.index("--filter") + 1] == "label=containai.managed=true"
    assert call[call.index("--format") + 1] == LIST_FORMAT


def test_list_format_reads_each_label_json_quoted() -> None:
    # Each label is taken with `.Label "key"` and JSON-quoted by the template, never
    # from the comma-joined `.Labels` string.
    assert ".Labels" not in LIST_FORMAT
    for key in ("containai.workspace", "containai.keep", "containai.managed"):
        assert f'{{{{json (.Label "{key}")}}}}' in LIST_FORMAT


def test_empty_list_renders_nothing() -> None:
    assert render_table([], tty=False) == ""


def test_table_off_a_tty_is_never_cut_and_has_no_trailing_blanks() -> None:
    long_ws = "/srv/" + "very-long-directory-name/" * 8 + "app"
    rows = [
        Listed(
            "a-main",
            "running",
            long_ws,
            2301,
            "containai-data",
            "containai:default",
            "runsc",
            NOW - timedelta(days=3, hours=4),
            3 * 86400 + 4 * 3600,
            True,
        ),
        Listed("b-main", "exited", None, None, None, "", None, None, None, False),
    ]
    text = render_table(rows, tty=False)
    lines = text.splitlines()
    assert lines[0].split() == list(HEADERS)
    assert long_ws in lines[1]
    assert lines[1].split()[:4] == ["a-main", "running", long_ws, "cai-a-main"]
    assert "runsc (gVisor)" in lines[1] and "3d 4h" in lines[1]
    assert lines[1].split()[-1] == "yes"
    assert lines[2].split()[:3] == ["b-main", "stopped", "-"]
    assert lines[2].split()[-1] == "no"
    assert all(line == line.rstrip() for line in lines)
    assert "\x1b[" not in text  # no colour codes in a pipe
