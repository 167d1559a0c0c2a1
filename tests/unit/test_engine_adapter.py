"""The engine adapter's reading and writing of Docker's language (adapters/engine):
inspect JSON and `docker ps` templates -> values, size units, `docker rm` outcomes,
``ContainerSpec`` -> `docker create` argv.

``docker_shapes/`` holds what Docker 20.10 answered for a container labelled and
mounted as cai makes them (workspace path with a comma, a volume, a read-only bind, an
internal network with no host address, SSH published on loopback), recorded with
`docker container inspect --format '{{json .}}'` (created, running, exited), `docker ps
--format` with this adapter's templates, `docker volume|network|image inspect`, `docker
image ls`, `docker stats` and `docker rm` (a running, a missing and a stopped one).
"""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from containai.adapters.engine import DockerEngine
from containai.adapters.engine.argv import create_args, mount_arg
from containai.adapters.engine.shapes import (
    LIST_FORMAT,
    NETWORK_GONE_MARKERS,
    container_of,
    container_of_row,
    image_of,
    image_of_row,
    info_of,
    network_of,
    ps_format,
    removal_of,
    stats_of,
    version_of,
    volume_of,
)
from containai.domain.engine_facts import EngineInfo, EngineVersion, OciRuntime
from containai.domain.engine_objects import ContainerSpec, ContainerStats, Mount, Publish, Removal
from containai.domain.errors import (
    Failed,
    ImageInUse,
    NameInUse,
    NotFound,
    OutOfMemory,
    PortTaken,
    SubnetTaken,
)

SHAPES = Path(__file__).parent / "docker_shapes"
NAME = "cai-rec4d6e2de0"
ID = "f174b38a79ac7fd4aec214657c2cda76b1f6e2f71ddb812b18d43fced93c4c9f"
WORKSPACE = "/src/a,b=c"
MIB = 1024**2


def recorded(name: str) -> Any:
    return json.loads((SHAPES / name).read_text())


def lines(name: str) -> list[str]:
    return (SHAPES / name).read_text().splitlines()


def text(name: str) -> str:
    return (SHAPES / name).read_text()


# ------------------------------------------------------------------ inspect
def test_a_running_container() -> None:
    info = container_of(recorded("container_running.json"))
    assert (info.id, info.name, info.state, info.running) == (ID, NAME, "running", True)
    assert info.image == "containai-base:bookworm" and info.image_id is not None
    assert info.image_id.startswith("sha256:")
    assert info.labels["containai.workspace"] == WORKSPACE  # exact, comma and all
    assert info.ssh_port == 2399
    assert info.runtime == "runc"
    assert info.created == datetime(2026, 11, 30, 18, 44, 15, 230743, tzinfo=UTC)
    assert info.started == datetime(2026, 11, 30, 18, 44, 15, 624224, tzinfo=UTC)
    assert info.finished is None  # the engine's zero time: never exited
    assert info.env["CAI_WORKSPACE"] == WORKSPACE and info.env["CAI_USER"] == "agent"
    assert info.mounts == (
        Mount("volume", f"{NAME}-data", "/mnt/agent-data"),
        Mount("bind", "/tmp/eng/ws", "/tmp/eng/ws", readonly=True),
    )
    assert info.networks == {"bridge": "172.17.0.2", f"cai-net-{NAME[4:]}": "172.21.0.2"}


def test_a_created_and_an_exited_container() -> None:
    created = container_of(recorded("container_created.json"))
    assert (created.state, created.running, created.started, created.finished) == (
        "created",
        False,
        None,
        None,
    )
    exited = container_of(recorded("container_exited.json"))
    assert (exited.state, exited.running) == ("exited", False)
    assert exited.finished == datetime(2026, 11, 30, 18, 44, 18, 402383, tzinfo=UTC)


def test_volume_network_and_image() -> None:
    volume = volume_of(recorded("volume.json"))
    assert volume.name == f"{NAME}-data"
    assert volume.labels["containai.managed"] == "true"
    net = network_of(recorded("network.json"))
    assert (net.name, net.internal, net.subnets) == (
        f"cai-net-{NAME[4:]}",
        True,
        ("172.21.0.0/16",),
    )
    assert net.labels["containai.network-of"] == NAME
    image = image_of(recorded("image.json"))
    assert image.id.startswith("sha256:") and image.reference == "containai-base:bookworm"
    assert image.labels == {"ai.containai.base": "debootstrap-bookworm-minbase"}
    row = image_of_row(recorded("image_ls.json"))
    assert (row.id, row.reference) == (image.id, "containai-base:bookworm")
    assert (
        image_of_row({"ID": "sha256:x", "Repository": "<none>", "Tag": "<none>"}).reference is None
    )


def test_engine_version_and_info() -> None:
    version = version_of(recorded("version.json"))
    assert (version.server, version.api) == ("20.10.24+dfsg1", "1.41")
    info = info_of(recorded("info.json"))
    assert info.runtimes == ("runc", "runsc")
    assert (info.default_runtime, info.root_dir, info.host_name) == (
        "runc",
        "/var/lib/docker",
        "box",
    )
    assert (info.memory_bytes, info.cpus) == (25276071936, 2)  # a remote's limits (SPEC 16)
    assert info.registered == (
        OciRuntime("runc", "runc"),
        OciRuntime("runsc", "/usr/bin/runsc", ["--network=host"]),
    )
    assert info.runtime("runsc") == info.registered[1] and info.runtime("crun") is None
    odd = info_of({"Runtimes": {"x": "not an object", "y": {"runtimeArgs": "--flag"}}})
    assert odd.registered == (OciRuntime("x"), OciRuntime("y"))
    # an engine that says nothing: unknown, not invented
    assert version_of({}) == EngineVersion("unknown", None)
    assert info_of({"Runtimes": None}) == EngineInfo()


def test_missing_inspect_fields_are_unknown_not_invented() -> None:
    info = container_of({})
    assert (info.name, info.state, info.running, info.image_id) == ("", "", False, None)
    assert info.created is info.started is info.finished is info.runtime is None
    assert info.labels == {} and info.env == {} and info.mounts == () and info.networks == {}


# --------------------------------------------------------------- docker ps
def test_a_listed_managed_container() -> None:
    (line,) = lines("ps_managed.jsonl")
    row = container_of_row(json.loads(line))
    assert (row.id, row.name, row.state, row.image) == (
        ID,
        NAME,
        "exited",
        "containai-base:bookworm",
    )
    assert row.created == datetime(2026, 11, 30, 18, 44, 15, tzinfo=UTC)
    assert row.labels == {
        "containai.managed": "true",
        "containai.workspace": WORKSPACE,
        "containai.ssh-port": "2399",
        "containai.data-volume": f"{NAME}-data",
        "containai.runtime": "runc",
        "containai.network-policy": "open",
    }  # unset ones (keep, weakened) are left out
    assert row.image_id is None and row.finished is None  # a listing does not say


def test_a_listing_with_mounts() -> None:
    (line,) = lines("ps_mounts.jsonl")
    row = container_of_row(json.loads(line))
    assert [m.source for m in row.mounts] == ["/tmp/eng/ws", f"{NAME}-data"]
    assert row.labels == {"containai.data-volume": f"{NAME}-data"}


def test_ps_templates_read_each_label_json_quoted() -> None:
    # never the comma-joined `.Labels` string, which a value with a comma breaks
    assert ".Labels" not in LIST_FORMAT
    for key in ("containai.workspace", "containai.keep", "containai.managed"):
        assert f'{{{{json (.Label "{key}")}}}}' in LIST_FORMAT
    assert ps_format(["a.b"]).endswith(',"labels":{"a.b":{{json (.Label "a.b")}}}}')
    assert '"mounts":{{json .Mounts}}' in ps_format(mounts=True)


# ------------------------------------------------------------------- stats
def test_stats_in_bytes() -> None:
    assert stats_of(recorded("stats.json")) == ContainerStats(548 * 1024, 256 * MIB, 0.0)
    assert stats_of({"MemUsage": "0B / 0B", "CPUPerc": "--"}) == ContainerStats()
    assert stats_of(None) == ContainerStats()


# --------------------------------------------------------------- docker rm
def test_rm_outcomes_per_container() -> None:
    running = text("rm_running.stderr")
    missing = text("rm_missing.stderr")
    gone = f"{NAME}-missing"
    assert removal_of([ID], text("rm_ok.stdout"), "") == Removal(removed=[ID])
    assert removal_of([ID], "", running) == Removal(running=[ID])
    assert removal_of([gone], "", missing) == Removal(gone=[gone])
    both = removal_of(["other", ID, gone], "other\n", running + missing)
    assert both == Removal(["other"], [ID], [gone])


def test_rm_failures() -> None:
    odd = "Error response from daemon: removal of container c1 is already in progress\n"
    assert removal_of(["c1", "c2"], "c2\n", odd) == Removal(
        removed=["c2"], failed={"c1": "removal of container c1 is already in progress"}
    )
    # a ref no line names fails with the call's last message ...
    partial = removal_of(["c1", "c3"], "c1\n", "Error: something odd\n")
    assert partial.failed == {"c3": "docker rm failed: Error: something odd"}
    # ... and when that is every ref, the call failed as a whole
    with pytest.raises(Failed, match="docker rm failed: error during connect: EOF"):
        removal_of(["c1", "c2"], "", "error during connect: EOF\n")


def test_network_rm_outcomes_name_each_network_exactly() -> None:
    """`docker network rm A B C` (Docker 28's words): removed ones are printed back, a
    missing one is gone, one in use failed; a line about `cai-net-a-2` is not about
    `cai-net-a`."""
    stderr = (
        "Error response from daemon: network cai-net-a-2 not found\n"
        "Error response from daemon: error while removing network: network cai-net-b id "
        "3f2a has active endpoints\n"
        "exit status 1\n"
    )
    outcome = removal_of(
        ["cai-net-a", "cai-net-a-2", "cai-net-b"],
        "cai-net-a\n",
        stderr,
        gone_markers=NETWORK_GONE_MARKERS,
        what="docker network rm",
    )
    assert outcome.removed == ("cai-net-a",) and outcome.gone == ("cai-net-a-2",)
    assert (
        list(outcome.failed) == ["cai-net-b"] and "active endpoints" in outcome.failed["cai-net-b"]
    )
    with pytest.raises(Failed, match="docker network rm failed: error during connect"):
        removal_of(["n"], "", "error during connect: EOF\n", what="docker network rm")
    # a container line names its container only as a word of its own
    other = removal_of(["c1", "c2"], "c2\n", "Error response from daemon: No such container: c10\n")
    assert other.gone == () and list(other.failed) == ["c1"]


# ---------------------------------------------------------------- the argv
def workspace_spec() -> ContainerSpec:
    return ContainerSpec(
        name="app-main",
        hostname="app-main",
        labels={"containai.managed": "true", "containai.workspace": WORKSPACE},
        runtime="runsc",
        init=True,
        security_opts=["no-new-privileges"],
        cap_drop=["NET_RAW"],
        mounts=[
            Mount("volume", "containai-data", "/mnt/agent-data"),
            Mount("bind", WORKSPACE, WORKSPACE),
            Mount("bind", "/src/.git/hooks", "/src/.git/hooks", readonly=True),
        ],
        workdir=WORKSPACE,
        publish=[Publish("127.0.0.1", 2300, 2222)],
        memory=4 * 1024**3,
        cpus=2.0,
        env={"CAI_UID": "1000", "CAI_WORKSPACE": WORKSPACE},
        image="containai:default",
    )


def test_the_workspace_container_argv() -> None:
    assert create_args(workspace_spec()) == [
        "--name",
        "app-main",
        "--hostname",
        "app-main",
        "--label",
        "containai.managed=true",
        "--label",
        f"containai.workspace={WORKSPACE}",
        "--runtime",
        "runsc",
        "--init",
        "--security-opt",
        "no-new-privileges",
        "--cap-drop",
        "NET_RAW",
        "--mount",
        "type=volume,source=containai-data,target=/mnt/agent-data",
        "--mount",
        'type=bind,"source=/src/a,b=c","target=/src/a,b=c"',
        "--mount",
        "type=bind,source=/src/.git/hooks,target=/src/.git/hooks,readonly",
        "--workdir",
        WORKSPACE,
        "--publish",
        "127.0.0.1:2300:2222",
        "--memory",
        str(4 * 1024**3),
        "--cpus",
        "2",
        "--env",
        "CAI_UID=1000",
        "--env",
        f"CAI_WORKSPACE={WORKSPACE}",
        "containai:default",
    ]


def test_a_helper_and_a_gateway_argv() -> None:
    helper = ContainerSpec(
        name="containai-helper-x",
        auto_remove=True,
        labels={"containai.helper": "true"},
        network="none",
        user="0:0",
        entrypoint="/bin/sh",
        mounts=[Mount("volume", "v", "/mnt/agent-data", no_copy=True)],
        image="containai:default",
        command=["-c", ":"],
    )
    args = create_args(helper)
    assert args[0] == "--rm" and args[-3:] == ["containai:default", "-c", ":"]
    assert args[args.index("--network") + 1] == "none"
    assert args[args.index("--entrypoint") + 1] == "/bin/sh"
    assert args[args.index("--mount") + 1] == (
        "type=volume,source=v,target=/mnt/agent-data,volume-nocopy=true"
    )
    gateway = ContainerSpec(
        name="gw",
        restart="unless-stopped",
        memory=256 * MIB,
        cap_drop=["ALL"],
        cap_add=["CHOWN", "SETUID"],
        network="cai-net-x",
        dns=["172.30.0.2"],
        image="gw:1",
    )
    args = create_args(gateway)
    assert args[args.index("--restart") + 1] == "unless-stopped"
    assert args[args.index("--memory") + 1] == "268435456"  # what `--memory 256m` means
    assert args[args.index("--cap-drop") : args.index("--cap-drop") + 6] == [
        "--cap-drop",
        "ALL",
        "--cap-add",
        "CHOWN",
        "--cap-add",
        "SETUID",
    ]
    assert args[args.index("--dns") + 1] == "172.30.0.2"


def test_mount_fields_are_quoted_when_they_hold_commas_or_quotes() -> None:
    assert mount_arg(Mount("bind", "/a/b", "/a/b")) == "type=bind,source=/a/b,target=/a/b"
    assert mount_arg(Mount("bind", "/a,b", "/a,b")) == 'type=bind,"source=/a,b","target=/a,b"'
    assert mount_arg(Mount("bind", '/a"b', '/a"b')) == 'type=bind,"source=/a""b","target=/a""b"'


def test_a_spec_fingerprint_names_every_field() -> None:
    spec = workspace_spec()
    assert spec.fingerprint() == workspace_spec().fingerprint()
    assert len(spec.fingerprint()) == 16
    assert spec.replace(memory=1).fingerprint() != spec.fingerprint()
    assert spec.replace(env={**spec.env, "X": "1"}).fingerprint() != spec.fingerprint()


# ------------------------------------------------- the engine over a docker
class Docker(DockerEngine):
    """The real adapter over a `docker` that answers from recorded output."""

    def __init__(self, answers: dict[str, tuple[int, str, str]]) -> None:
        super().__init__("default")
        self.answers = answers
        self.calls: list[tuple[str, ...]] = []

    def run(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[Any]:
        self.calls.append(args)
        code, out, err = self.answers.get(args[0], (0, "", ""))
        if code and kw.get("check", True):
            raise self._translate(args, err)
        return subprocess.CompletedProcess(list(args), code, out, err)


def test_find_and_find_many() -> None:
    doc = text("container_running.json")
    engine = Docker({"container": (0, doc, "")})
    found = engine.find(NAME)
    assert found is not None and found.name == NAME
    assert engine.calls[0][:4] == ("container", "inspect", "--format", "{{json .}}")
    assert [c.id for c in engine.find_many([NAME, NAME])] == [ID]
    missing = Docker({"container": (1, "", "Error: No such container: x\n")})
    assert missing.find("x") is None and missing.find_many(["x"]) == []


def test_list_managed_is_one_ps_and_drops_unmanaged_rows() -> None:
    (line,) = lines("ps_managed.jsonl")
    unmanaged = json.dumps({"id": "u", "names": "u", "labels": {"containai.managed": ""}})
    engine = Docker({"ps": (0, f"{line}\n{unmanaged}\n", "")})
    assert [r.name for r in engine.list_managed()] == [NAME]
    (call,) = engine.calls
    assert call[call.index("--filter") + 1] == "label=containai.managed=true"
    assert call[call.index("--format") + 1] == LIST_FORMAT


def test_used_ssh_ports_and_stats() -> None:
    (line,) = lines("ps_managed.jsonl")
    engine = Docker({"ps": (0, line + "\n", ""), "stats": (0, text("stats.json"), "")})
    assert engine.used_ssh_ports() == [(NAME, 2399)]
    assert engine.calls[0][-2:] == ("--format", ps_format(["containai.ssh-port"]))
    assert engine.stats(NAME) == ContainerStats(548 * 1024, 256 * MIB, 0.0)


def test_create_and_remove_stopped() -> None:
    engine = Docker({"create": (0, ID + "\n", ""), "rm": (1, "", text("rm_running.stderr"))})
    assert engine.create(workspace_spec()) == ID
    assert engine.calls[0] == ("create", *create_args(workspace_spec()))
    assert engine.remove_stopped([ID]) == Removal(running=[ID])
    assert engine.calls[1] == ("rm", ID)  # never --force


@pytest.mark.parametrize(
    ("stderr", "kind"),
    [
        (
            "Error response from daemon: driver failed programming external connectivity on "
            "endpoint x: Bind for 127.0.0.1:2300 failed: port is already allocated",
            PortTaken,
        ),
        (
            "Error response from daemon: conflict: unable to remove repository reference "
            '"containai:old" (must force) - container 1234 is using its referenced image 5678',
            ImageInUse,
        ),
        (
            'Error response from daemon: Conflict. The container name "/cai-a" is already in '
            'use by container "abc". You have to remove (or rename) that container.',
            NameInUse,
        ),
        (
            "Error response from daemon: Pool overlaps with other one on this address space",
            SubnetTaken,
        ),
        (
            "Error response from daemon: cannot create network fd22 (br-fd22): conflicts "
            "with network 733e (br-733e): networks have overlapping IPv4",
            SubnetTaken,
        ),
        (
            "Error response from daemon: network with name cai-net-a already exists",
            NameInUse,
        ),
        ("Error response from daemon: something else broke", Failed),
        ("Error: No such image: containai:gone", NotFound),
    ],
)
def test_engine_refusals_are_cai_errors_not_wording(stderr: str, kind: type[Exception]) -> None:
    """Services catch PortTaken/NameInUse/ImageInUse; the wording stays in the adapter.
    The message is the one a plain failure has (a subclass of Failed: same exit code)."""
    err = Docker({})._translate(["run"], stderr)
    assert type(err) is kind
    if kind is not NotFound:
        assert isinstance(err, Failed) and str(err).startswith("docker run failed: ")


RUNSC_OOM = (
    "Error response from daemon: failed to create shim task: OCI runtime create failed: "
    "/var/lib/docker/runtimes/runsc did not terminate successfully: exit status 137: unknown\n"
    "Error: failed to start containers: app-main\n"
)


def test_start_says_out_of_memory_port_taken_or_failed() -> None:
    """A start the runtime was killed in for lack of memory is ``OutOfMemory``; a taken
    port stays ``PortTaken``; anything else a plain ``Failed``."""
    with pytest.raises(OutOfMemory, match="exit status 137"):
        Docker({"start": (1, "", RUNSC_OOM)}).start("app-main")
    taken = "Error response from daemon: Bind for 127.0.0.1:2300 failed: port is already allocated"
    with pytest.raises(PortTaken):
        Docker({"start": (1, "", taken)}).start("app-main")
    with pytest.raises(Failed) as err:
        Docker({"start": (1, "", "Error response from daemon: broke")}).start("app-main")
    assert type(err.value) is Failed


def test_network_with_a_subnet_and_a_fixed_address() -> None:
    engine = Docker({})
    engine.create_network(
        "cai-net-a", {"k": "v"}, internal=True, host_address=False,
        subnet="100.64.0.16/28", automatic="100.64.0.24/29",
    )  # fmt: skip
    args = engine.calls[0]
    assert args[:4] == ("network", "create", "--driver", "bridge") and args[-1] == "cai-net-a"
    assert "--internal" in args
    assert args[args.index("--subnet") + 1] == "100.64.0.16/28"
    assert args[args.index("--ip-range") + 1] == "100.64.0.24/29"
    engine.connect_network("cai-net-a", "a-gateway", ["cai-gateway"], "100.64.0.18")
    assert engine.calls[1] == (
        "network", "connect", "--ip", "100.64.0.18", "--alias", "cai-gateway",
        "cai-net-a", "a-gateway",
    )  # fmt: skip
    engine.create_network("cai-net-b", {})
    assert "--subnet" not in engine.calls[2] and "--ip-range" not in engine.calls[2]


# ------------------------------------------------ streaming: build and logs (a fake CLI)
def fake_docker(tmp_path: Path, script: str) -> DockerEngine:
    """A ``DockerEngine`` whose ``docker`` is a shell script recording its arguments."""
    exe = tmp_path / "docker"
    exe.write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/argv\n{script}\n')
    exe.chmod(0o755)
    return DockerEngine(None, docker=str(exe), env={"PATH": "/usr/bin:/bin"})


def test_build_streams_lines_with_their_step(tmp_path: Path) -> None:
    engine = fake_docker(tmp_path, "echo 'Step 1/2 : FROM x'; echo hello; echo 'Step 2/2 : RUN y'")
    seen: list[tuple[str, tuple[int, int] | None]] = []
    engine.build(
        tmp_path,
        tag="containai:t",
        build_args={"A": "1"},
        labels={"l": "v"},
        target="final",
        on_line=lambda line, step: seen.append((line, step)),
    )
    assert seen == [("Step 1/2 : FROM x", (1, 2)), ("hello", None), ("Step 2/2 : RUN y", (2, 2))]
    argv = (tmp_path / "argv").read_text().split()
    assert argv == [
        "build", "--force-rm", "--tag", "containai:t", "--target", "final",
        "--build-arg", "A=1", "--label", "l=v", str(tmp_path),
    ]  # fmt: skip


def test_a_failed_build_names_the_tag_and_its_last_lines(tmp_path: Path) -> None:
    engine = fake_docker(tmp_path, "echo 'Step 1/1 : RUN false'; echo 'it broke'; exit 1")
    with pytest.raises(Failed, match=r"(?s)building image 'containai:t' failed:\n.*it broke"):
        engine.build(tmp_path, tag="containai:t")


def test_logs_come_line_by_line_and_a_failure_is_translated(tmp_path: Path) -> None:
    engine = fake_docker(tmp_path, "echo one; echo two")
    assert list(engine.logs("c1", tail=5, follow=True)) == ["one", "two"]
    assert (tmp_path / "argv").read_text().split() == ["logs", "--tail", "5", "--follow", "c1"]
    missing = fake_docker(tmp_path, "echo 'Error: No such container: c2'; exit 1")
    with pytest.raises(NotFound):
        list(missing.logs("c2"))


def test_a_log_line_without_end_comes_in_bounded_pieces(tmp_path: Path) -> None:
    """A container that prints megabytes without a newline does not make cai hold them
    as one line."""
    engine = fake_docker(tmp_path, "head -c 3000000 /dev/zero | tr '\\0' a; echo; echo end")
    pieces = list(engine.logs("c1"))
    assert max(len(p) for p in pieces) <= 65536
    assert sum(len(p) for p in pieces[:-1]) == 3000000 and pieces[-1] == "end"
