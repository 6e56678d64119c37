"""Three k3s test servers in three lab containers, as systemd units: one cluster with embedded
etcd, joined the way k3s joins (token, supervisor on :6443, learner then voter), that keeps
serving with one container stopped, refuses a server with another critical value, and comes
back from a snapshot with --cluster-reset. Key rotation across servers (the encryption-config
hash annotation each restart moves) is exercised through the k3s role in
tests/k3s/test_k3s_role_lab.py, on the same binary.

The binary is the opsbook k3s test server (`make kube`), copied over SSH to
/usr/local/bin/k3s as the role installs k3s. The units here are a minimal Type=notify unit;
the k3s role writes the real one (roles/k3s). In production the pod network may run over
WireGuard; this kernel has none and nothing here needs it: etcd and the supervisor talk TLS
over the lab bridge, as they do over the nodes' private network.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from opsbook.kube import binaries
from opsbook.lab import lab as labmod
from opsbook.lab.podman import podman

pytestmark = [pytest.mark.kube, pytest.mark.lab]

LAB = "pytest-k3s-ha"
SERVERS = ("s1", "s2", "s3")
TOKEN = "ha-test-token-0123456789"
UNIT = """[Unit]
Description=k3s test server (opsbook tests)
Wants=network-online.target
After=network-online.target
[Service]
Type=notify
EnvironmentFile=-/etc/systemd/system/k3s.service.env
KillMode=process
Delegate=yes
TimeoutStartSec=0
Restart=always
RestartSec=5s
ExecStart=/usr/local/bin/k3s server
[Install]
WantedBy=multi-user.target
"""


@dataclass
class Cluster:
    lab: labmod.Lab
    local: Path

    def ip(self, node: str) -> str:
        return self.lab.node(node).ip

    def ssh(self, node: str, command: str, check: bool = True, timeout: float = 120) -> str:
        proc = subprocess.run(
            labmod.ssh_command(self.lab, node, [command]),
            capture_output=True, text=True, timeout=timeout, check=False,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        if check:
            assert proc.returncode == 0, f"{node}: {command}: {proc.stderr}{proc.stdout}"
        return proc.stdout

    def sudo(self, node: str, command: str, **kw) -> str:
        return self.ssh(node, f"sudo -n sh -c {shlex.quote(command)}", **kw)

    def kubectl(self, node: str, *args: str, check: bool = True) -> str:
        return self.sudo(node, shlex.join(["k3s", "kubectl", *args]), check=check)

    def kubectl_json(self, node: str, *args: str) -> dict:
        return json.loads(self.kubectl(node, *args, "-o", "json"))

    def write(self, node: str, path: str, text: str, mode: str = "0600") -> None:
        self.sudo(
            node,
            f"install -d -m 0755 {shlex.quote(str(Path(path).parent))} && "
            f"printf %s {shlex.quote(text)} > {shlex.quote(path)} && chmod {mode} {path}",
        )

    def configure(self, node: str, config: str) -> None:
        self.write(node, "/etc/rancher/k3s/config.yaml", config)
        self.write(node, "/etc/systemd/system/k3s.service.env", f"K3S_TOKEN={TOKEN}\n")

    def start(self, node: str, timeout: float = 180) -> None:
        """systemctl start blocks until the server sends READY=1 (Type=notify)."""
        self.sudo(node, "systemctl daemon-reload && systemctl enable --now k3s", timeout=timeout)

    def journal(self, node: str) -> str:
        return self.sudo(node, "journalctl -u k3s --no-pager -o cat", check=False)

    def etcd_members(self, via: str) -> list[dict]:
        out = self.sudo(
            via,
            "ETCDCTL_API=3 /usr/local/bin/etcdctl --endpoints=https://127.0.0.1:2379 "
            "--cacert=/var/lib/rancher/k3s/server/tls/etcd/server-ca.crt "
            "--cert=/var/lib/rancher/k3s/server/tls/etcd/client.crt "
            "--key=/var/lib/rancher/k3s/server/tls/etcd/client.key member list -w json",
        )
        return json.loads(out)["members"]

    def node_condition(self, via: str, node: str, kind: str) -> dict:
        conds = self.kubectl_json(via, "get", "node", node)["status"].get("conditions", [])
        return next((c for c in conds if c["type"] == kind), {})


def wait(what: str, check: Callable[[], object], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (AssertionError, subprocess.SubprocessError, ValueError, KeyError) as exc:
            last = exc
        if last is True:
            return
        time.sleep(2)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}: {last}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    try:
        binaries.check_binaries()
    except binaries.BinariesMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    specs = [labmod.NodeSpec(s, "debian12", ("k3s_servers",)) for s in (*SERVERS, "s4")]
    try:
        lab = labmod.up(LAB, specs, log=lambda _m: None)
        c = Cluster(lab, tmp_path_factory.mktemp("k3s-ha"))
        for node in (*SERVERS, "s4"):
            files = [binaries.binary("k3s"), binaries.binary("etcdctl")]
            subprocess.run(labmod.scp_command(lab, node, files, "/tmp/"), check=True, timeout=300)
            c.sudo(
                node,
                "install -m 0755 /tmp/k3s /tmp/etcdctl /usr/local/bin/ && rm /tmp/k3s /tmp/etcdctl",
            )
            c.write(node, "/etc/systemd/system/k3s.service", UNIT, "0644")
        yield c
    finally:
        labmod.down(LAB, log=lambda _m: None)


def server_config(c: Cluster, node: str, *extra: str) -> str:
    lines = [f"node-ip: {c.ip(node)}", f"node-name: {node}", "secrets-encryption: true"]
    lines.append("cluster-init: true" if node == "s1" else f"server: https://{c.ip('s1')}:6443")
    return "\n".join([*lines, *extra]) + "\n"


SNAPSHOTS = "/var/lib/rancher/k3s/server/db/snapshots"


def test_three_servers_join_one_etcd_cluster_as_voters(cluster: Cluster):
    c = cluster
    # s1 also takes a scheduled snapshot every minute and keeps one (checked further down);
    # an older one is there already.
    c.sudo("s1", f"install -d -m 0700 {SNAPSHOTS} && touch {SNAPSHOTS}/etcd-snapshot-s1-100")
    c.configure(
        "s1",
        server_config(
            c, "s1", 'etcd-snapshot-schedule-cron: "* * * * *"', "etcd-snapshot-retention: 1"
        ),
    )
    c.start("s1")
    for node in ("s2", "s3"):
        c.configure(node, server_config(c, node))
        c.start(node)  # returns after READY=1, i.e. after the leader promoted it
        journal = c.journal(node)
        assert "Managed etcd cluster not yet initialized" in journal
        assert re.search(rf"Adding member {node}-[0-9a-f]{{8}}=https://{c.ip(node)}:2380", journal)
    members = c.etcd_members("s1")
    assert sorted(m["name"].rsplit("-", 1)[0] for m in members) == list(SERVERS)
    assert not any(m.get("isLearner") for m in members)
    for node in SERVERS:
        wait(
            f"{node} EtcdIsVoter=True",
            lambda n=node: (
                c.node_condition("s1", n, "EtcdIsVoter").get("reason") == "MemberNotLearner"
            ),
            60,
        )
        assert c.node_condition("s1", node, "Ready")["status"] == "True"
    # Every server serves the same data: write through s1, read through s2 and s3.
    c.kubectl("s1", "create", "configmap", "ha-probe", "--from-literal=written-by=s1")
    for node in ("s2", "s3"):
        assert (
            c.kubectl(node, "get", "configmap", "ha-probe", "-o", "name") == "configmap/ha-probe\n"
        )


def test_one_container_stopped_and_the_others_still_serve_reads_and_writes(cluster: Cluster):
    c = cluster
    container = c.lab.node("s3").container
    podman("stop", "-t", "2", container, timeout=60)
    try:
        c.kubectl("s1", "create", "configmap", "after-loss", "--from-literal=written-by=s1")
        c.kubectl("s2", "patch", "configmap", "after-loss", "-p", '{"data":{"patched":"s2"}}')
        assert '"patched":"s2"' in c.kubectl(
            "s1", "get", "configmap", "after-loss", "-o", "jsonpath={.data}"
        )
        assert len(c.etcd_members("s1")) == 3  # s3 is down, not removed
    finally:
        podman("start", container, timeout=60)
    labmod.wait_for_ssh(c.ip("s3"), 22, 90)
    # The enabled unit brings s3 back as an existing member: no join, no bootstrap download.
    wait(
        "s3 active again",
        lambda: c.sudo("s3", "systemctl is-active k3s", check=False).strip() == "active",
        180,
    )
    assert "Managed etcd cluster bootstrap already complete and initialized" in c.journal("s3")
    assert "after-loss" in c.kubectl("s3", "get", "configmap", "after-loss", "-o", "name")


def test_joins_refused_without_a_token_with_a_wrong_ca_hash_and_with_another_cluster_cidr(
    cluster: Cluster,
):
    c = cluster

    def refused(env: str, message: str) -> None:
        c.write("s4", "/etc/systemd/system/k3s.service.env", env)
        c.sudo(
            "s4",
            "systemctl daemon-reload && systemctl reset-failed k3s; systemctl start --no-block k3s",
        )
        wait(f"s4 refused: {message}", lambda: message in c.journal("s4"), 120)
        c.sudo("s4", "systemctl stop k3s")

    c.write("s4", "/etc/rancher/k3s/config.yaml", server_config(c, "s4"))
    refused("", "token is required to join a cluster")
    refused(
        f"K3S_TOKEN=K10{'0' * 64}::server:{TOKEN}\n",
        "failed to check if bootstrap data has been initialized: failed to validate token: "
        f"token CA hash does not match the Cluster CA certificate hash: {'0' * 64} != ",
    )
    c.configure("s4", server_config(c, "s4", "cluster-cidr: 10.99.0.0/16"))
    c.sudo("s4", "systemctl daemon-reload && systemctl start --no-block k3s")
    wait("s4 refused", lambda: "critical configuration value mismatch" in c.journal("s4"), 120)
    journal = c.journal("s4")
    assert "critical configuration mismatched: cluster-cidr" in journal
    assert (
        "failed to validate server configuration: critical configuration value mismatch "
        "between servers" in journal
    )
    c.sudo("s4", "systemctl stop k3s")
    assert all(not m["name"].startswith("s4-") for m in c.etcd_members("s1"))


def test_scheduled_snapshots_are_taken_and_pruned_to_the_retention(cluster: Cluster):
    c = cluster

    def scheduled() -> object:
        names = c.sudo("s1", f"ls {SNAPSHOTS}").split()
        mine = [n for n in names if n.startswith("etcd-snapshot-s1-")]
        return True if mine and "etcd-snapshot-s1-100" not in mine else names

    wait("a scheduled snapshot on s1 and the old one pruned", scheduled, 150)
    names = [n for n in c.sudo("s1", f"ls {SNAPSHOTS}").split() if n.startswith("etcd-snapshot-")]
    assert len(names) == 1, names
    assert (
        "Applying snapshot retention=1 to local snapshots with prefix etcd-snapshot"
        in c.journal("s1")
    )


def test_snapshot_then_cluster_reset_restore_brings_back_a_deleted_object(cluster: Cluster):
    c = cluster
    c.kubectl("s1", "create", "configmap", "restore-me", "--from-literal=v=1")
    saved = c.sudo("s1", "k3s etcd-snapshot save --name pre-reset 2>&1")
    name = re.search(r"Snapshot (pre-reset-s1-\d+) saved\.", saved).group(1)
    c.kubectl("s1", "delete", "configmap", "restore-me")
    for node in ("s3", "s2", "s1"):
        c.sudo(node, "systemctl stop k3s")
    path = f"/var/lib/rancher/k3s/server/db/snapshots/{name}"
    # cluster-reset refuses while `server` is set; s1 has cluster-init only.
    out = c.sudo(
        "s1", f"k3s server --cluster-reset --cluster-reset-restore-path={path} 2>&1", timeout=240
    )
    assert (
        "Managed etcd cluster membership has been reset, restart without --cluster-reset flag now."
        in out
    )
    c.start("s1")
    for node in ("s2", "s3"):
        c.sudo(node, "rm -rf /var/lib/rancher/k3s/server/db")
        c.start(node)
    assert "restore-me" in c.kubectl("s2", "get", "configmap", "restore-me", "-o", "name")
    assert len(c.etcd_members("s1")) == 3
