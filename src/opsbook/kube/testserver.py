"""A k3s test-server cluster on the controller: `k3s server` on a loopback address of its own
(127.0.0.x) plus `k3s agent`s, as background processes.

    with TestCluster(tmpdir, agents=2) as cluster:
        cluster.kubectl("get", "nodes")
        cluster.etcd_get("/registry/secrets/default/x")

The binary is the opsbook k3s test server (`make kube`), a test double of k3s built from
upstream etcd, kube-apiserver, controller-manager, scheduler and kwok: a real API, real
controllers and a real scheduler, with kwok playing the kubelets (pods move through simulated
lifecycles, no container runs). The server keeps k3s's data dir layout under
`<directory>/server`; secrets are encrypted at rest (`--secrets-encryption`). Every address
the server binds is on its own 127.0.0.x, so several clusters share one machine. The
directory holds the data, the kubeconfig, logs and pid files, so `TestCluster.load(directory)`
can report on or stop a cluster an earlier command started.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from opsbook.kube import binaries, processes
from opsbook.kube.binaries import KubeError

STATE_FILE = "state.json"
SERVER = "k3s-server"
HTTPS_PORT = 6443
# Ports `k3s server` binds on its loopback address: supervisor, kube-apiserver, etcd client,
# peer and metrics, controller-manager, scheduler.
PORTS = (6443, 6444, 2379, 2380, 2381, 10257, 10259)
# Loopback addresses handed out to clusters (127.0.0.1 is left to real services).
ADDRESS_RANGE = range(20, 250)


def _free(address: str) -> bool:
    for port in PORTS:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((address, port))
            except OSError:
                return False
    return True


def free_address(start: int = ADDRESS_RANGE.start) -> str:
    """The first 127.0.0.x (x from `start`) on which no port the server needs is taken."""
    for last in range(start, ADDRESS_RANGE.stop):
        address = f"127.0.0.{last}"
        if _free(address):
            return address
    raise KubeError("no free 127.0.0.x address for a k3s test server")


def free_port(host: str = "127.0.0.1") -> int:
    """A free TCP port on host (for tests that start other servers on loopback)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class State:
    """What `state.json` records: enough for a later command to talk to it and stop it."""

    name: str
    address: str
    token: str
    agents: list[str]
    bin_dir: str
    server_args: list[str] = field(default_factory=list)
    started_at: float = 0.0


class TestCluster:
    """One `k3s server` (node `<name>-server`) and `agents` agents (`<name>-agent-N`).

    `start()` returns once the API is ready, every node is Ready and untainted and the
    `default` ServiceAccount exists; on failure it stops what it started and raises KubeError
    with the failing process's log. `stop()` stops every recorded process.
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        directory: Path,
        *,
        name: str = "opsbook",
        agents: int = 2,
        server_args: Sequence[str] = (),
        die_with_parent: bool = False,
        log: Callable[[str], None] = lambda _msg: None,
    ) -> None:
        self.directory = Path(directory).resolve()
        self.name = name
        self.agent_count = agents
        self.server_args = list(server_args)
        self.die_with_parent = die_with_parent
        self.log = log
        self.state: State | None = None
        self._procs: dict[str, processes.Proc] = {}

    # -- paths and addresses
    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig the server writes (`--write-kubeconfig`), certificates embedded."""
        return self.directory / "kubeconfig"

    @property
    def data_dir(self) -> Path:
        """The server's `--data-dir` (k3s's /var/lib/rancher/k3s layout)."""
        return self.directory / "server"

    def tls(self, *parts: str) -> Path:
        return self.data_dir.joinpath("server", "tls", *parts)

    @property
    def address(self) -> str:
        return self._state().address

    @property
    def api_url(self) -> str:
        return f"https://{self.address}:{HTTPS_PORT}"

    @property
    def etcd_endpoint(self) -> str:
        return f"https://{self.address}:2379"

    @property
    def bin_dir(self) -> Path:
        return Path(self._state().bin_dir) if self.state else binaries.bin_dir()

    @property
    def server_node(self) -> str:
        return f"{self.name}-server"

    def _state(self) -> State:
        if self.state is None:
            raise KubeError(f"k3s test server in {self.directory} has not been started")
        return self.state

    # -- lifecycle
    @classmethod
    def load(cls, directory: Path) -> TestCluster:
        """A handle on a cluster started earlier (possibly by another process)."""
        directory = Path(directory).resolve()
        path = directory / STATE_FILE
        if not path.exists():
            raise KubeError(f"no k3s test server in {directory}")
        state = State(**json.loads(path.read_text()))
        cluster = cls(directory, name=state.name, agents=len(state.agents))
        cluster.state = state
        cluster.server_args = state.server_args
        cluster._procs = {p.name: p for p in processes.load(directory)}
        return cluster

    def process_names(self) -> list[str]:
        agents = self.state.agents if self.state else self._agent_names()
        return [SERVER, *agents]

    def _agent_names(self) -> list[str]:
        return [f"k3s-agent-{i}" for i in range(1, self.agent_count + 1)]

    def running(self) -> dict[str, bool]:
        """Each process: alive or not."""
        procs = self._procs or {p.name: p for p in processes.load(self.directory)}
        return {n: n in procs and processes.alive(procs[n]) for n in self.process_names()}

    def __enter__(self) -> TestCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> TestCluster:
        bin_dir = binaries.check_binaries()
        if any(processes.alive(p) for p in processes.load(self.directory)):
            raise KubeError(f"a k3s test server is already running in {self.directory}")
        started = time.monotonic()
        first = ADDRESS_RANGE.start
        for attempt in (1, 2, 3):
            self._prepare(bin_dir, first)
            try:
                self._start()
                break
            except KubeError as exc:
                self.stop()
                # The address is checked before the server binds it; if another process took
                # a port in between, try the next address.
                if attempt == 3 or "address already in use" not in str(exc):
                    raise
                first = int(self.address.rsplit(".", 1)[1]) + 1
            except BaseException:
                self.stop()
                raise
        self.log(
            f"k3s test server {self.name}: API {self.api_url}, "
            f"{1 + self.agent_count} nodes, ready in {time.monotonic() - started:.1f}s; "
            f"kubeconfig {self.kubeconfig}"
        )
        return self

    def _prepare(self, bin_dir: Path, first: int) -> None:
        if self.directory.exists():
            shutil.rmtree(self.directory)
        self.directory.mkdir(parents=True)
        self.state = State(
            name=self.name,
            address=free_address(first),
            token=secrets.token_hex(16),
            agents=self._agent_names(),
            bin_dir=str(bin_dir),
            server_args=self.server_args,
            started_at=time.time(),
        )
        (self.directory / STATE_FILE).write_text(json.dumps(asdict(self.state), indent=2) + "\n")

    def _server_argv(self) -> list[str]:
        state = self._state()
        return [
            str(self.bin_dir / "k3s"),
            "server",
            "--cluster-init",
            f"--data-dir={self.data_dir}",
            f"--node-name={self.server_node}",
            f"--node-ip={state.address}",
            f"--write-kubeconfig={self.kubeconfig}",
            "--secrets-encryption",
            "--etcd-disable-snapshots",
            *state.server_args,
        ]

    def _start(self) -> None:
        state = self._state()
        # The token goes in the environment, as k3s.service.env does, not on the command line.
        env = {"K3S_TOKEN": state.token, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        self._spawn(SERVER, self._server_argv(), env)
        self._wait("the k3s test server's API", self._api_ready, 120)
        for i, proc in enumerate(state.agents, start=1):
            argv = [
                str(self.bin_dir / "k3s"),
                "agent",
                f"--server={self.api_url}",
                f"--data-dir={self.directory / f'agent-{i}'}",
                f"--node-name={self.name}-agent-{i}",
                f"--node-ip={state.address}",
            ]
            self._spawn(proc, argv, env)
        self._wait("every node Ready and untainted", self._nodes_ready, 120)
        self._wait("ServiceAccount default/default", self._default_sa, 60)

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self._procs[name] = processes.spawn(
            name, argv, self.directory, env=env, die_with_parent=self.die_with_parent
        )

    def _wait(self, what: str, check: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            for proc in self._procs.values():
                if not processes.alive(proc):
                    raise KubeError(
                        f"{proc.name} exited while waiting for {what}; "
                        f"last lines of {proc.log}:\n{processes.tail(proc.log)}"
                    )
            if check():
                return
            if time.monotonic() > deadline:
                logs = "\n".join(
                    f"--- {p.log}:\n{processes.tail(p.log, 10)}" for p in self._procs.values()
                )
                raise KubeError(f"timed out after {timeout:.0f}s waiting for {what}\n{logs}")
            time.sleep(0.3)

    def https_get(self, path: str, timeout: float = 3) -> tuple[int, str]:
        """GET on the supervisor as the admin (client-admin certificate): (status, body);
        (0, error) when it does not answer."""
        context = ssl.create_default_context(cafile=str(self.tls("server-ca.crt")))
        context.load_cert_chain(
            str(self.tls("client-admin.crt")), str(self.tls("client-admin.key"))
        )
        try:
            with urllib.request.urlopen(self.api_url + path, context=context, timeout=timeout) as r:
                return r.status, r.read().decode(errors="replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")
        except (urllib.error.URLError, OSError, ssl.SSLError) as exc:
            return 0, str(exc)

    def _api_ready(self) -> bool:
        if not self.kubeconfig.exists() or not self.tls("client-admin.key").exists():
            return False
        status, body = self.https_get("/readyz")
        return status == 200 and body.strip() == "ok"

    def _nodes_ready(self) -> bool:
        return len(self.ready_nodes()) >= 1 + self.agent_count

    def _default_sa(self) -> bool:
        proc = self.kubectl("get", "serviceaccount", "default", "-n", "default", check=False)
        return proc.returncode == 0

    def ready_nodes(self) -> list[str]:
        """Nodes that are Ready and untainted, i.e. that pods can be scheduled to."""
        try:
            data = self.kubectl_json("get", "nodes")
        except KubeError:
            return []
        ready = []
        for item in data["items"]:
            if item.get("spec", {}).get("taints"):
                continue
            for cond in item.get("status", {}).get("conditions") or []:
                if cond["type"] == "Ready" and cond["status"] == "True":
                    ready.append(item["metadata"]["name"])
        return sorted(ready)

    def stop(self) -> None:
        """Stop every process this cluster recorded, agents first."""
        recorded = {p.name: p for p in processes.load(self.directory)} | self._procs
        errors = []
        for name in reversed(self.process_names()):
            proc = recorded.pop(name, None)
            if proc is None:
                continue
            try:
                processes.stop(proc, timeout=15)
            except ProcessLookupError as exc:
                errors.append(str(exc))
        for proc in recorded.values():
            with contextlib.suppress(ProcessLookupError):
                processes.stop(proc)
        self._procs = {}
        if errors:
            raise KubeError("; ".join(errors))

    def remove(self) -> None:
        """Stop, then delete the directory (data, logs)."""
        self.stop()
        if self.directory.exists():
            shutil.rmtree(self.directory)

    # -- clients
    def run(
        self, argv: Sequence[str], *, input: str | None = None, check: bool, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        try:
            proc = subprocess.run(
                list(argv),
                input=input,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise KubeError(f"{' '.join(argv[1:3])} timed out after {timeout:.0f}s") from exc
        if check and proc.returncode != 0:
            raise KubeError(
                f"{' '.join(argv[1:])} failed ({proc.returncode}): {proc.stderr.strip()}"
            )
        return proc

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """`k3s kubectl` as the admin; raise KubeError (with stderr) on failure when `check`."""
        argv = [
            str(self.bin_dir / "k3s"),
            "kubectl",
            f"--kubeconfig={self.kubeconfig}",
            f"--cache-dir={self.directory / 'kubectl-cache'}",
            *args,
        ]
        return self.run(argv, input=input, check=check, timeout=timeout)

    def kubectl_json(self, *args: str, timeout: float = 60) -> Any:
        """`kubectl ... -o json`, parsed."""
        return json.loads(self.kubectl(*args, "-o", "json", timeout=timeout).stdout)

    def k3s(
        self, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """A `k3s` client subcommand against this server, e.g. `k3s("secrets-encrypt",
        "status")`: --data-dir and --server are added (the token is read from server/token)."""
        server_flag = "--etcd-server" if args and args[0] == "etcd-snapshot" else "--server"
        argv = [
            str(self.bin_dir / "k3s"),
            *args,
            f"--data-dir={self.data_dir}",
            f"{server_flag}={self.api_url}",
        ]
        return self.run(argv, check=check, timeout=timeout)

    def etcdctl(
        self, *args: str, check: bool = True, timeout: float = 30
    ) -> subprocess.CompletedProcess[bytes]:
        """etcdctl against the server's etcd with k3s's etcd client certificate."""
        argv = [
            *binaries.etcdctl_argv(self.data_dir, self.etcd_endpoint, self.bin_dir / "etcdctl"),
            *args,
        ]
        proc = subprocess.run(argv, capture_output=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise KubeError(
                f"etcdctl {' '.join(args)} failed ({proc.returncode}): "
                f"{proc.stderr.decode(errors='replace').strip()}"
            )
        return proc

    def etcd_get(self, key: str) -> bytes:
        """The raw value stored under `key` in etcd (b"" if absent), e.g.
        `/registry/secrets/<namespace>/<name>`."""
        out = self.etcdctl("get", key, "--print-value-only").stdout
        return out[:-1] if out.endswith(b"\n") else out

    def api_client(self) -> Any:
        """A `kubernetes` Python client ApiClient for this cluster (admin)."""
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig))  # type: ignore[no-untyped-call]

    def log_text(self, name: str = SERVER) -> str:
        return (self.directory / "logs" / f"{name}.log").read_text(errors="replace")

    def status(self) -> dict[str, Any]:
        procs = self.running()
        ready = bool(self.state and procs.get(SERVER) and self._api_ready())
        return {
            "name": self.name,
            "directory": str(self.directory),
            "kubeconfig": str(self.kubeconfig),
            "api": self.api_url if self.state else None,
            "etcd": self.etcd_endpoint if self.state else None,
            "api_ready": ready,
            "ready_nodes": self.ready_nodes() if ready else [],
            "processes": {
                name: {
                    "running": alive,
                    "pid": self._procs[name].pid if name in self._procs else None,
                }
                for name, alive in procs.items()
            },
        }
