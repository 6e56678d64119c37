"""Three servers in three lab containers: one etcd cluster, a kube-apiserver on each.

The shape of the production control plane (three k3s servers with embedded etcd), built from
the same static binaries as the local test control plane: they are copied into the Debian
lab containers over real SSH (scp with the lab key) and run there as transient systemd units.
etcd and kube-apiserver listen on the containers' lab addresses only; all traffic is TLS with
client certificates. In production k3s the nodes' pod network may be tunnelled over WireGuard;
this kernel has no WireGuard, and etcd and the API servers do not need it: their peer and
client traffic is TLS over the lab bridge, as it is over the nodes' private network.
"""

from __future__ import annotations

import shlex
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pytest

from opsbook.kube import binaries, pki
from opsbook.kube.controlplane import (
    ApiserverPKI,
    EtcdTLS,
    apiserver_args,
    etcd_args,
    https_get,
    kubeconfig_text,
)
from opsbook.lab import lab as labmod
from opsbook.lab import sshkeys
from opsbook.lab.podman import podman

pytestmark = [pytest.mark.kube, pytest.mark.lab]

LAB = "pytest-kube-ha"
SERVERS = ("s1", "s2", "s3")
ETCD_CLIENT, ETCD_PEER, API_PORT = 2379, 2380, 6443
REMOTE = PurePosixPath("/home/opsbook/kube")
USER = "opsbook"


@dataclass
class Cluster:
    lab: labmod.Lab
    local: Path  # PKI and kubeconfigs on the controller
    ca: Path
    admin: pki.Pair
    etcd_client: pki.Pair

    def ip(self, server: str) -> str:
        return self.lab.node(server).ip

    def etcd_endpoints(self, servers: tuple[str, ...] = SERVERS) -> str:
        return ",".join(f"https://{self.ip(s)}:{ETCD_CLIENT}" for s in servers)

    def etcdctl(self, *args: str, servers: tuple[str, ...] = SERVERS) -> str:
        proc = subprocess.run(
            [
                str(binaries.binary("etcdctl")),
                f"--endpoints={self.etcd_endpoints(servers)}",
                f"--cacert={self.ca}",
                f"--cert={self.etcd_client.cert}",
                f"--key={self.etcd_client.key}",
                "--dial-timeout=3s",
                "--command-timeout=10s",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def kubectl(self, server: str, *args: str, check: bool = True) -> str:
        proc = subprocess.run(
            [
                str(binaries.binary("kubectl")),
                f"--kubeconfig={self.local / f'{server}.kubeconfig'}",
                "--request-timeout=15s",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check:
            assert proc.returncode == 0, f"kubectl via {server}: {proc.stderr}"
        return proc.stdout

    def readyz(self, server: str) -> tuple[int, str]:
        return https_get(f"https://{self.ip(server)}:{API_PORT}/readyz", self.ca, self.admin)


def _ssh(lab: labmod.Lab, server: str, command: str, timeout: float = 60) -> str:
    proc = subprocess.run(
        ["ssh", *sshkeys.ssh_base_args(22), f"{USER}@{lab.node(server).ip}", command],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, f"{server}: {command}: {proc.stderr}"
    return proc.stdout


def _scp(lab: labmod.Lab, server: str, files: list[Path], remote_dir: PurePosixPath) -> None:
    args = sshkeys.ssh_base_args(22)
    args[args.index("-p")] = "-P"  # scp spells the port option -P
    subprocess.run(
        ["scp", "-q", *args, *map(str, files), f"{USER}@{lab.node(server).ip}:{remote_dir}/"],
        check=True,
        timeout=180,
    )


def _wait(what: str, check, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last is True:
            return
        time.sleep(1)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}: {last}")


def _provision(lab: labmod.Lab, local: Path, server: str, ca: pki.CA, shared: list[Path]) -> None:
    """Certificates for this server, binaries over scp, etcd and kube-apiserver as units."""
    ip = lab.node(server).ip
    mine = local / server
    mine.mkdir()
    etcd = ca.issue("etcd", f"etcd-{server}", ips=[ip], server=True, client=True, directory=mine)
    serving = ca.issue(
        "apiserver",
        "kube-apiserver",
        ips=[ip, pki.SERVICE_IP],
        dns=pki.API_DNS_NAMES,
        server=True,
        directory=mine,
    )
    etcd_client = ca.issue(
        "apiserver-etcd-client", "kube-apiserver-etcd-client", client=True, directory=mine
    )

    _ssh(lab, server, f"mkdir -p {REMOTE}/pki")
    bins = [binaries.binary("etcd"), binaries.binary("kube-apiserver")]
    _scp(lab, server, bins, REMOTE)
    _scp(lab, server, [*mine.iterdir(), *shared], REMOTE / "pki")

    def remote(pair: pki.Pair) -> pki.Pair:
        return pki.Pair(REMOTE / "pki" / pair.cert.name, REMOTE / "pki" / pair.key.name)

    ca_remote = REMOTE / "pki" / "ca.crt"
    cluster = ",".join(f"{s}=https://{lab.node(s).ip}:{ETCD_PEER}" for s in SERVERS)
    etcd_cmd = etcd_args(
        REMOTE / "etcd",
        name=server,
        data_dir=REMOTE / "etcd-data",
        ip=ip,
        client_port=ETCD_CLIENT,
        peer_port=ETCD_PEER,
        initial_cluster=cluster,
        tls=EtcdTLS(ca_remote, remote(etcd), remote(etcd)),
    )
    api_cmd = apiserver_args(
        REMOTE / "kube-apiserver",
        etcd_servers=[f"https://{lab.node(s).ip}:{ETCD_CLIENT}" for s in SERVERS],
        bind_address=ip,
        advertise_address=ip,
        port=API_PORT,
        files=ApiserverPKI(
            ca=ca_remote,
            serving=remote(serving),
            etcd_client=remote(etcd_client),
            sa=pki.Pair(REMOTE / "pki" / "sa.pub", REMOTE / "pki" / "sa.key"),
            encryption_config=REMOTE / "pki" / "encryption-config.yaml",
        ),
        cert_dir=REMOTE / "apiserver-certs",
    )
    for unit, argv in (("kt-etcd", etcd_cmd), ("kt-apiserver", api_cmd)):
        _ssh(
            lab,
            server,
            f"sudo -n systemd-run --unit={unit} --collect --quiet -- {shlex.join(map(str, argv))}",
        )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    try:
        binaries.check_binaries(("etcd", "etcdctl", "kube-apiserver", "kubectl"))
    except binaries.BinariesMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    local = tmp_path_factory.mktemp("kube-ha")
    specs = [labmod.NodeSpec(s, "debian12", ("k3s_servers",)) for s in SERVERS]
    try:
        lab = labmod.up(LAB, specs, log=lambda _m: None)
        ca = pki.CA(local)
        # Every API server must sign and check service-account tokens with the same key, and
        # encrypt Secrets with the same key, or they could not read each other's writes.
        sa = pki.service_account_keys(local)
        enc = pki.encryption_config(local / "encryption-config.yaml")
        admin = ca.issue("admin", "opsbook-admin", orgs=["system:masters"], client=True)
        etcd_client = ca.issue("etcdctl", "etcdctl", client=True)
        shared = [ca.cert_path, sa.cert, sa.key, enc]
        with ThreadPoolExecutor(len(SERVERS)) as pool:
            for future in [pool.submit(_provision, lab, local, s, ca, shared) for s in SERVERS]:
                future.result()
        for s in SERVERS:
            server_url = f"https://{lab.node(s).ip}:{API_PORT}"
            (local / f"{s}.kubeconfig").write_text(
                kubeconfig_text(server_url, ca.pem(), admin, "admin")
            )
        result = Cluster(lab, local, ca.cert_path, admin, etcd_client)
        for s in SERVERS:
            _wait(f"kube-apiserver on {s} ready", lambda s=s: _ready(result, s), 150)
        yield result
    finally:
        labmod.down(LAB, log=lambda _m: None)


def _ready(cluster: Cluster, server: str) -> bool | str:
    status, body = cluster.readyz(server)
    return True if status == 200 and body.strip() == "ok" else f"{status} {body[-300:]}"


def test_three_servers_form_one_etcd_cluster_with_an_apiserver_each(cluster: Cluster):
    members = cluster.etcdctl("member", "list", "--write-out=simple")
    rows = [line.split(", ") for line in members.strip().splitlines()]
    assert sorted(r[2] for r in rows) == list(SERVERS)
    assert {r[1] for r in rows} == {"started"}
    assert {r[3] for r in rows} == {f"https://{cluster.ip(s)}:{ETCD_PEER}" for s in SERVERS}
    health = cluster.etcdctl("endpoint", "health", "--cluster")
    assert health.count("is healthy") == 3, health
    # Every API server serves the same data: write through s1, read through s2 and s3.
    cluster.kubectl("s1", "create", "configmap", "ha-probe", "--from-literal=written-by=s1")
    for server in ("s2", "s3"):
        assert cluster.kubectl(server, "get", "configmap", "ha-probe", "-o", "name") == (
            "configmap/ha-probe\n"
        )
    # Each API server answers on its own lab address (not just one behind the others).
    for server in SERVERS:
        assert _ready(cluster, server) is True


def test_losing_one_server_leaves_the_api_serving_from_the_others(cluster: Cluster):
    container = cluster.lab.node("s1").container
    podman("stop", "-t", "2", container, timeout=60)
    assert podman("inspect", "--format", "{{.State.Status}}", container).stdout.strip() in {
        "exited",
        "stopped",
    }
    status, _ = cluster.readyz("s1")
    assert status == 0, "s1's API server should be gone with its container"
    survivors = ("s2", "s3")
    health = cluster.etcdctl("endpoint", "health", servers=survivors)
    assert health.count("is healthy") == 2, health
    for server in survivors:
        _wait(f"{server} ready without s1", lambda s=server: _ready(cluster, s), 60)
    # Writes need an etcd quorum (2 of 3): they still succeed, and both survivors see them.
    cluster.kubectl("s2", "create", "configmap", "after-loss", "--from-literal=written-by=s2")
    cluster.kubectl("s3", "patch", "configmap", "after-loss", "-p", '{"data":{"patched":"s3"}}')
    data = cluster.kubectl("s2", "get", "configmap", "after-loss", "-o", "jsonpath={.data}")
    assert '"patched":"s3"' in data
    assert "ha-probe" in cluster.kubectl("s3", "get", "configmap", "-o", "name")
    members = cluster.etcdctl("member", "list", servers=survivors)
    assert len(members.strip().splitlines()) == 3  # s1 is down, not removed
