"""The test control plane: a real Kubernetes API on 127.0.0.1 with simulated worker nodes.

etcd, kube-apiserver (Secrets encrypted at rest with aescbc), kube-controller-manager and
kube-scheduler, plus kwok playing the kubelets of three fake nodes. The binaries come from
`make kube` (tests/kube/build.sh). It stands in for `k3s server --disable-agent
--cluster-init --secrets-encryption`, which could not be built here (see the README).

    with ControlPlane(tmpdir) as cp:
        cp.kubectl("get", "nodes")
        cp.etcd_get("/registry/secrets/default/x")

Everything listens on 127.0.0.1 on free random ports; all traffic is TLS with client
certificates, as in k3s. The directory holds the PKI, kubeconfigs, etcd's data, logs and pid
files, so `ControlPlane.load(directory)` can report on or stop a control plane that an
earlier command started.
"""

from __future__ import annotations

import base64
import json
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from opsbook.kube import binaries, crds, nodes, pki, processes
from opsbook.kube.binaries import KubeError

SERVICE_CIDR = "10.43.0.0/16"  # k3s's default service CIDR
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc"
LOOPBACK = "127.0.0.1"
STATE_FILE = "state.json"
# Start order; stop runs in reverse.
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")


# ---- flags, shared with the multi-node test ---------------------------------------------------


@dataclass(frozen=True)
class EtcdTLS:
    """etcd's CA and its serving/peer certificate (client auth on both sides)."""

    ca: Path
    server: pki.Pair
    peer: pki.Pair


def etcd_args(
    binary: Path,
    *,
    name: str,
    data_dir: Path | str,
    ip: str,
    client_port: int,
    peer_port: int,
    initial_cluster: str,
    tls: EtcdTLS,
    listen_client_ips: Sequence[str] = (),
) -> list[str]:
    """etcd with TLS and client-certificate authentication for clients and peers."""
    client_ips = [ip, *[i for i in listen_client_ips if i != ip]]
    return [
        str(binary),
        f"--name={name}",
        f"--data-dir={data_dir}",
        f"--listen-client-urls={','.join(f'https://{i}:{client_port}' for i in client_ips)}",
        f"--advertise-client-urls=https://{ip}:{client_port}",
        f"--listen-peer-urls=https://{ip}:{peer_port}",
        f"--initial-advertise-peer-urls=https://{ip}:{peer_port}",
        f"--initial-cluster={initial_cluster}",
        "--initial-cluster-state=new",
        "--initial-cluster-token=opsbook-test",
        f"--trusted-ca-file={tls.ca}",
        f"--cert-file={tls.server.cert}",
        f"--key-file={tls.server.key}",
        "--client-cert-auth=true",
        f"--peer-trusted-ca-file={tls.ca}",
        f"--peer-cert-file={tls.peer.cert}",
        f"--peer-key-file={tls.peer.key}",
        "--peer-client-cert-auth=true",
        "--listen-metrics-urls=",
        "--log-level=warn",
        # Small and quick: the test data is tiny and the disk is shared.
        "--quota-backend-bytes=1073741824",
        "--snapshot-count=10000",
    ]


@dataclass(frozen=True)
class ApiserverPKI:
    ca: Path
    serving: pki.Pair
    etcd_client: pki.Pair
    sa: pki.Pair  # cert = public key, key = private key
    encryption_config: Path


def apiserver_args(
    binary: Path,
    *,
    etcd_servers: Sequence[str],
    bind_address: str,
    advertise_address: str,
    port: int,
    files: ApiserverPKI,
    cert_dir: Path | str,
) -> list[str]:
    """kube-apiserver as k3s runs it, minus kubelets: RBAC, Secrets encrypted with aescbc."""
    return [
        str(binary),
        f"--etcd-servers={','.join(etcd_servers)}",
        f"--etcd-cafile={files.ca}",
        f"--etcd-certfile={files.etcd_client.cert}",
        f"--etcd-keyfile={files.etcd_client.key}",
        f"--bind-address={bind_address}",
        f"--advertise-address={advertise_address}",
        f"--secure-port={port}",
        f"--cert-dir={cert_dir}",
        f"--tls-cert-file={files.serving.cert}",
        f"--tls-private-key-file={files.serving.key}",
        f"--client-ca-file={files.ca}",
        f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
        f"--service-account-key-file={files.sa.cert}",
        f"--service-account-signing-key-file={files.sa.key}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--authorization-mode=Node,RBAC",
        "--enable-admission-plugins=NodeRestriction",
        "--allow-privileged=true",
        f"--encryption-provider-config={files.encryption_config}",
        # No kubelets run, so nothing would keep the `kubernetes` Endpoints right anyway.
        "--endpoint-reconciler-type=none",
        "--profiling=false",
    ]


def kubeconfig_text(server: str, ca_pem: bytes, client: pki.Pair, user: str) -> str:
    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "opsbook-test",
                "cluster": {"server": server, "certificate-authority-data": b64(ca_pem)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": b64(client.cert.read_bytes()),
                    "client-key-data": b64(client.key.read_bytes()),
                },
            }
        ],
        "contexts": [
            {"name": "opsbook-test", "context": {"cluster": "opsbook-test", "user": user}}
        ],
        "current-context": "opsbook-test",
    }
    return yaml.safe_dump(config, sort_keys=False)


def https_get(url: str, ca: Path, client: pki.Pair, timeout: float = 3) -> tuple[int, str]:
    """GET with our CA and a client certificate: (status, body); (0, error) if unreachable."""
    context = ssl.create_default_context(cafile=str(ca))
    context.load_cert_chain(str(client.cert), str(client.key))
    try:
        with urllib.request.urlopen(url, context=context, timeout=timeout) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except (urllib.error.URLError, OSError) as exc:
        return 0, str(exc)


def free_port(host: str = LOOPBACK) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


# ---- the control plane --------------------------------------------------------------------


@dataclass
class State:
    """What `state.json` records: enough for a later command to talk to it and stop it."""

    name: str
    etcd_client_port: int
    etcd_peer_port: int
    apiserver_port: int
    nodes: int
    bin_dir: str
    crds_dir: str | None
    stages: str
    started_at: float


class ControlPlane:
    """etcd + kube-apiserver + controller-manager + scheduler + kwok (N fake nodes).

    `start()` returns once the API is ready, the CRDs are established, the fake nodes are Ready
    and the `default` ServiceAccount exists (so pods can be created at once); on any failure it
    stops what it started and raises KubeError with the failing component's log. `stop()`
    stops every recorded process (SIGTERM, then SIGKILL) and waits until they are gone.
    """

    def __init__(
        self,
        directory: Path,
        *,
        name: str = "opsbook",
        nodes: int = 3,
        apply_crds: bool = True,
        die_with_parent: bool = False,
        log: Callable[[str], None] = lambda _msg: None,
    ) -> None:
        self.directory = Path(directory).resolve()
        self.name = name
        self.node_count = nodes
        self.apply_crds = apply_crds
        self.die_with_parent = die_with_parent
        self.log = log
        self.state: State | None = None
        self._procs: dict[str, processes.Proc] = {}
        self._admin: pki.Pair | None = None

    # -- paths and addresses
    @property
    def kubeconfig(self) -> Path:
        """Admin kubeconfig (`system:masters`), certificates embedded."""
        return self.directory / "kubeconfig"

    @property
    def pki_dir(self) -> Path:
        return self.directory / "pki"

    @property
    def ca_cert(self) -> Path:
        return self.pki_dir / "ca.crt"

    @property
    def admin_pair(self) -> pki.Pair:
        return pki.Pair(self.pki_dir / "admin.crt", self.pki_dir / "admin.key")

    @property
    def etcd_client(self) -> pki.Pair:
        """kube-apiserver's etcd client certificate (etcdctl uses it too)."""
        return pki.Pair(
            self.pki_dir / "apiserver-etcd-client.crt", self.pki_dir / "apiserver-etcd-client.key"
        )

    @property
    def etcd_endpoint(self) -> str:
        return f"https://{LOOPBACK}:{self._state().etcd_client_port}"

    @property
    def api_url(self) -> str:
        return f"https://{LOOPBACK}:{self._state().apiserver_port}"

    @property
    def bin_dir(self) -> Path:
        return Path(self._state().bin_dir) if self.state else binaries.bin_dir()

    def _state(self) -> State:
        if self.state is None:
            raise KubeError(f"control plane in {self.directory} has not been started")
        return self.state

    # -- lifecycle
    @classmethod
    def load(cls, directory: Path) -> ControlPlane:
        """A handle on a control plane started earlier (possibly by another process)."""
        directory = Path(directory).resolve()
        path = directory / STATE_FILE
        if not path.exists():
            raise KubeError(f"no test control plane in {directory}")
        state = State(**json.loads(path.read_text()))
        cp = cls(directory, name=state.name, nodes=state.nodes)
        cp.state = state
        cp._procs = {p.name: p for p in processes.load(directory)}
        return cp

    def running(self) -> dict[str, bool]:
        """Each component's process: alive or not."""
        procs = self._procs or {p.name: p for p in processes.load(self.directory)}
        return {name: name in procs and processes.alive(procs[name]) for name in COMPONENTS}

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> ControlPlane:
        bin_dir = binaries.check_binaries()
        stages = binaries.stages_file()
        crds_dir = binaries.crds_dir() if self.apply_crds else None
        if any(processes.alive(p) for p in processes.load(self.directory)):
            raise KubeError(f"a control plane is already running in {self.directory}")
        started = time.monotonic()
        for attempt in (1, 2):
            self._prepare(bin_dir, stages, crds_dir)
            try:
                self._start(bin_dir, stages, crds_dir)
                break
            except KubeError as exc:
                self.stop()
                # The free ports are picked before the processes bind them; if another
                # process took one in between, try once more with new ports.
                if attempt == 2 or "address already in use" not in str(exc):
                    raise
            except BaseException:
                self.stop()
                raise
        self.log(
            f"control plane {self.name}: API {self.api_url}, {self.node_count} kwok nodes, "
            f"ready in {time.monotonic() - started:.1f}s; kubeconfig {self.kubeconfig}"
        )
        return self

    def _prepare(self, bin_dir: Path, stages: Path, crds_dir: Path | None) -> None:
        """An empty directory, fresh ports, and state.json recording them."""
        if self.directory.exists():
            shutil.rmtree(self.directory)
        self.directory.mkdir(parents=True)
        etcd_client, etcd_peer, api_port = _free_ports(3)
        self.state = State(
            name=self.name,
            etcd_client_port=etcd_client,
            etcd_peer_port=etcd_peer,
            apiserver_port=api_port,
            nodes=self.node_count,
            bin_dir=str(bin_dir),
            crds_dir=str(crds_dir) if crds_dir else None,
            stages=str(stages),
            started_at=time.time(),
        )
        (self.directory / STATE_FILE).write_text(json.dumps(asdict(self.state), indent=2) + "\n")

    def _start(self, bin_dir: Path, stages: Path, crds_dir: Path | None) -> None:
        state = self._state()
        ca = pki.CA(self.pki_dir)
        etcd_pair = ca.issue(
            "etcd", "etcd", ips=[LOOPBACK], dns=["localhost"], server=True, client=True
        )
        etcd_tls = EtcdTLS(ca.cert_path, etcd_pair, etcd_pair)
        files = ApiserverPKI(
            ca=ca.cert_path,
            serving=ca.issue(
                "apiserver",
                "kube-apiserver",
                ips=[LOOPBACK, pki.SERVICE_IP],
                dns=pki.API_DNS_NAMES,
                server=True,
            ),
            etcd_client=ca.issue(
                "apiserver-etcd-client", "kube-apiserver-etcd-client", client=True
            ),
            sa=pki.service_account_keys(self.pki_dir),
            encryption_config=pki.encryption_config(self.directory / "encryption-config.yaml"),
        )
        admin = ca.issue("admin", "opsbook-admin", orgs=["system:masters"], client=True)
        users = {
            "kube-controller-manager": ca.issue(
                "kube-controller-manager", "system:kube-controller-manager", client=True
            ),
            "kube-scheduler": ca.issue("kube-scheduler", "system:kube-scheduler", client=True),
            # kwok updates node and pod status of every fake node: cluster-admin, as kwokctl.
            "kwok": ca.issue("kwok", "kwok-controller", orgs=["system:masters"], client=True),
        }
        self.kubeconfig.write_text(kubeconfig_text(self.api_url, ca.pem(), admin, "admin"))
        self.kubeconfig.chmod(0o600)
        kubeconfigs = {}
        for user, pair in users.items():
            path = self.directory / "kubeconfigs" / f"{user}.kubeconfig"
            path.parent.mkdir(exist_ok=True)
            path.write_text(kubeconfig_text(self.api_url, ca.pem(), pair, user))
            path.chmod(0o600)
            kubeconfigs[user] = path

        self._spawn(
            "etcd",
            etcd_args(
                bin_dir / "etcd",
                name=self.name,
                data_dir=self.directory / "etcd",
                ip=LOOPBACK,
                client_port=state.etcd_client_port,
                peer_port=state.etcd_peer_port,
                initial_cluster=f"{self.name}=https://{LOOPBACK}:{state.etcd_peer_port}",
                tls=etcd_tls,
            ),
        )
        self._wait("etcd healthy", self._etcd_healthy, 30)
        self._spawn(
            "kube-apiserver",
            apiserver_args(
                bin_dir / "kube-apiserver",
                etcd_servers=[self.etcd_endpoint],
                bind_address=LOOPBACK,
                advertise_address=LOOPBACK,
                port=state.apiserver_port,
                files=files,
                cert_dir=self.directory / "apiserver-certs",
            ),
        )
        self._wait("kube-apiserver ready", self._api_ready, 90)
        kcm = kubeconfigs["kube-controller-manager"]
        self._spawn(
            "kube-controller-manager",
            [
                str(bin_dir / "kube-controller-manager"),
                f"--kubeconfig={kcm}",
                f"--authentication-kubeconfig={kcm}",
                f"--authorization-kubeconfig={kcm}",
                f"--bind-address={LOOPBACK}",
                "--secure-port=0",
                "--leader-elect=false",
                f"--service-account-private-key-file={files.sa.key}",
                f"--root-ca-file={ca.cert_path}",
                "--use-service-account-credentials=true",
                f"--cluster-signing-cert-file={ca.pair.cert}",
                f"--cluster-signing-key-file={ca.pair.key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--profiling=false",
            ],
        )
        self._spawn(
            "kube-scheduler",
            [
                str(bin_dir / "kube-scheduler"),
                f"--kubeconfig={kubeconfigs['kube-scheduler']}",
                f"--authentication-kubeconfig={kubeconfigs['kube-scheduler']}",
                f"--authorization-kubeconfig={kubeconfigs['kube-scheduler']}",
                f"--bind-address={LOOPBACK}",
                "--secure-port=0",
                "--leader-elect=false",
                "--profiling=false",
            ],
        )
        self._spawn("kwok", nodes.kwok_args(bin_dir / "kwok", kubeconfigs["kwok"], stages))
        if crds_dir is not None:
            self.kubectl(*crds.apply_args(crds_dir), timeout=60)
        self.kubectl("create", "-f", "-", input=json.dumps(nodes.nodes_list(self.node_count)))
        if crds_dir is not None:
            names = crds.crd_names(crds_dir)
            self.kubectl(
                "wait",
                "--for=condition=Established",
                "--timeout=60s",
                *[f"crd/{n}" for n in names],
                timeout=90,
            )
        self._wait("fake nodes Ready and untainted", self._nodes_ready, 60)
        self._wait("ServiceAccount default/default", self._default_sa, 60)

    def _spawn(self, name: str, argv: list[str]) -> None:
        self._procs[name] = processes.spawn(
            name, argv, self.directory, die_with_parent=self.die_with_parent
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
            time.sleep(0.2)

    def _etcd_healthy(self) -> bool:
        status, body = https_get(f"{self.etcd_endpoint}/health", self.ca_cert, self.etcd_client)
        return status == 200 and '"health":"true"' in body.replace(" ", "")

    def _api_ready(self) -> bool:
        status, body = https_get(f"{self.api_url}/readyz", self.ca_cert, self.admin_pair)
        return status == 200 and body.strip() == "ok"

    def _nodes_ready(self) -> bool:
        return len(self.ready_nodes()) >= self.node_count

    def _default_sa(self) -> bool:
        proc = self.kubectl("get", "serviceaccount", "default", "-n", "default", check=False)
        return proc.returncode == 0

    def ready_nodes(self) -> list[str]:
        """Fake nodes that are Ready and untainted, i.e. that pods can be scheduled to.

        A new node carries `node.kubernetes.io/not-ready:NoSchedule` until the controller
        manager's node-lifecycle controller has seen it Ready (up to ~5 s later); pods created
        before that would wait Pending, so readiness includes the taint being gone.
        """
        data = self.kubectl_json("get", "nodes", "-l", "=".join(nodes.NODE_LABEL))
        ready = []
        for item in data["items"]:
            if item.get("spec", {}).get("taints"):
                continue
            for cond in item.get("status", {}).get("conditions") or []:
                if cond["type"] == "Ready" and cond["status"] == "True":
                    ready.append(item["metadata"]["name"])
        return sorted(ready)

    def stop(self) -> None:
        """Stop every process this control plane recorded, last started first."""
        recorded = {p.name: p for p in processes.load(self.directory)} | self._procs
        errors = []
        for name in reversed(COMPONENTS):
            proc = recorded.pop(name, None)
            if proc is None:
                continue
            try:
                processes.stop(proc, timeout=15 if name == "etcd" else 10)
            except ProcessLookupError as exc:
                errors.append(str(exc))
        for proc in recorded.values():  # anything else recorded (none today)
            processes.stop(proc)
        self._procs = {}
        if errors:
            raise KubeError("; ".join(errors))

    def remove(self) -> None:
        """Stop, then delete the directory (PKI, data, logs)."""
        self.stop()
        if self.directory.exists():
            shutil.rmtree(self.directory)

    # -- clients
    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl as the admin; raise KubeError (with stderr) on failure when `check`."""
        argv = [
            str(self.bin_dir / "kubectl"),
            f"--kubeconfig={self.kubeconfig}",
            f"--cache-dir={self.directory / 'kubectl-cache'}",
            *args,
        ]
        try:
            proc = subprocess.run(
                argv, input=input, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise KubeError(f"kubectl {' '.join(args)} timed out after {timeout:.0f}s") from exc
        if check and proc.returncode != 0:
            raise KubeError(
                f"kubectl {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}"
            )
        return proc

    def kubectl_json(self, *args: str, timeout: float = 60) -> Any:
        """`kubectl ... -o json`, parsed."""
        return json.loads(self.kubectl(*args, "-o", "json", timeout=timeout).stdout)

    def etcdctl(
        self, *args: str, check: bool = True, timeout: float = 30
    ) -> subprocess.CompletedProcess[bytes]:
        """etcdctl against this etcd (TLS, client certificate); output as bytes."""
        pair = self.etcd_client
        argv = [
            str(self.bin_dir / "etcdctl"),
            f"--endpoints={self.etcd_endpoint}",
            f"--cacert={self.ca_cert}",
            f"--cert={pair.cert}",
            f"--key={pair.key}",
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

        return config.new_client_from_config(config_file=str(self.kubeconfig))

    def status(self) -> dict[str, Any]:
        procs = self.running()
        ready = False
        node_names: list[str] = []
        if self.state and procs.get("kube-apiserver"):
            ready = self._api_ready()
            if ready:
                try:
                    node_names = self.ready_nodes()
                except KubeError:
                    node_names = []
        return {
            "name": self.name,
            "directory": str(self.directory),
            "kubeconfig": str(self.kubeconfig),
            "api": self.api_url if self.state else None,
            "etcd": self.etcd_endpoint if self.state else None,
            "api_ready": ready,
            "ready_nodes": node_names,
            "processes": {
                name: {
                    "running": alive,
                    "pid": self._procs[name].pid if name in self._procs else None,
                }
                for name, alive in procs.items()
            },
        }
