"""Shared pytest fixtures (generic: add yours below, keep them reusable)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from opsbook.kube import TestCluster

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"

# What `make pytest` exports; set here too so a bare `pytest` behaves the same.
DEFAULT_ENV = {
    "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
    "OPSBOOK_ROOT": str(REPO),
    "CONTAINERS_CONF": str(REPO / "src" / "opsbook" / "lab" / "containers.conf"),
}

CliRunner = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session", autouse=True)
def _opsbook_env() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        for key, value in DEFAULT_ENV.items():
            if not os.environ.get(key):
                mp.setenv(key, value)
        yield


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def fixture_playbooks() -> Path:
    """tests/playbooks: small playbooks and inventories for driver/CLI tests."""
    return TESTS / "playbooks"


@pytest.fixture(scope="session")
def local_inventory(fixture_playbooks: Path) -> Path:
    """Two hosts, local-a and local-b (group `locals`), on the controller (connection local)."""
    return fixture_playbooks / "inventory" / "local.yml"


@pytest.fixture(scope="session")
def unreachable_inventory(fixture_playbooks: Path) -> Path:
    """One host, `dead`: SSH to 127.0.0.1 port 1 (closed), 2 s timeout."""
    return fixture_playbooks / "inventory" / "unreachable.yml"


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private opsbook state dir ($OPSBOOK_STATE_DIR) for this test: runs, labs, locks."""
    path = tmp_path / "state"
    path.mkdir()
    monkeypatch.setenv("OPSBOOK_STATE_DIR", str(path))
    return path


@pytest.fixture
def opsbook_cli() -> CliRunner:
    """Run the `opsbook` CLI in a subprocess: opsbook_cli(*args, env={...}, timeout=...)."""

    def run(
        *args: str,
        env: Mapping[str, str] | None = None,
        timeout: float = 120,
        input_text: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            opsbook_command(args),
            env={**os.environ, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input_text,
            check=False,
        )

    return run


def opsbook_command(args: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "opsbook.cli", *args]


@pytest.fixture(scope="session")
def opsbook_argv() -> Callable[[Sequence[str]], list[str]]:
    """The argv that runs the `opsbook` CLI with these arguments (for subprocess.Popen)."""
    return opsbook_command


@pytest.fixture(scope="session")
def lab_factory() -> Iterator[Callable[[str, int], Path]]:
    """Start labs with `opsbook lab --name NAME up --nodes N --json`; returns the inventory.

    Every lab started through it is removed with `opsbook lab down` at the end of the session.
    Labs live in the checkout's state dir (not a test's `state_dir`), like `make lab`'s.
    """
    started: list[str] = []
    env = {k: v for k, v in os.environ.items() if k != "OPSBOOK_STATE_DIR"}

    def up(name: str, nodes: int = 1) -> Path:
        started.append(name)
        proc = subprocess.run(
            opsbook_command(["lab", "--name", name, "up", "--nodes", str(nodes), "--json"]),
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if proc.returncode != 0:
            pytest.fail(f"opsbook lab up --name {name} failed:\n{proc.stdout}\n{proc.stderr}")
        try:
            return Path(json.loads(proc.stdout)["inventory"])
        except (ValueError, KeyError):  # image build output before the JSON
            return REPO / ".opsbook" / "labs" / name / "hosts.yml"

    try:
        yield up
    finally:
        for name in started:
            subprocess.run(
                opsbook_command(["lab", "--name", name, "down"]),
                env=env,
                capture_output=True,
                timeout=300,
                check=False,
            )


@pytest.fixture(scope="session")
def kube_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestCluster]:
    """A k3s test-server cluster for the session: one `k3s server` and two `k3s agent`s of the
    opsbook k3s test server (a test double of k3s built by `make kube`), on a 127.0.0.x
    address of its own (opsbook.kube.TestCluster).

    A real API (Secrets encrypted at rest), controllers and scheduler; kwok plays the kubelets
    of nodes pytest-server, pytest-agent-1 and pytest-agent-2, so pods follow simulated
    lifecycles (tests/kube/k3s/internal/nodes/kwok-stages.yaml). Ready when yielded: the
    Traefik and helm.cattle.io CRDs established, every node Ready and untainted,
    ServiceAccount default/default present. Useful members: `.kubeconfig` (Path),
    `.kubectl(*args, input=None, check=True)`, `.kubectl_json(*args)`, `.api_client()` (the
    `kubernetes` package), `.etcdctl(*args)`, `.etcd_get(key)`, `.k3s(*args)`, `.api_url`,
    `.etcd_endpoint`, `.data_dir`. Shared by every test of the session: work in your own
    namespace (`kube_namespace`). Fails (does not skip) when the binaries are missing: run
    `make kube`. Always stopped.
    """
    from opsbook.kube import KubeError, TestCluster

    cluster = TestCluster(tmp_path_factory.mktemp("kube"), name="pytest", die_with_parent=True)
    try:
        cluster.start()  # stops whatever it started if it fails
    except KubeError as exc:
        pytest.fail(f"k3s test server did not start: {exc}", pytrace=False)
    try:
        yield cluster
    finally:
        cluster.stop()
        # Keep logs for a post-mortem; drop etcd's data (its WAL alone is 64 MB).
        shutil.rmtree(cluster.data_dir / "server" / "db", ignore_errors=True)


@pytest.fixture
def kube_namespace(kube_cluster: TestCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace in `kube_cluster` for one test (deleted afterwards, not waited for)."""
    name = "t-" + "".join(c if c.isalnum() else "-" for c in request.node.name.lower())[:50]
    name = f"{name.rstrip('-')}-{os.getpid() % 10000}"
    kube_cluster.kubectl("create", "namespace", name)
    kube_cluster.kubectl(
        "wait", "--for=create", "serviceaccount/default", "-n", name, "--timeout=30s"
    )
    try:
        yield name
    finally:
        kube_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
