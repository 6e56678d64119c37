"""The k3s role's operations on a running cluster, in four lab containers over SSH (three
servers, one agent), against the opsbook k3s test server (a test double of k3s; README "k3s
test server").

One cluster goes through a production life, in order: refusals that must change nothing on
fresh nodes; an install of an older release from its release URL (served from the lab
bridge) without secrets encryption (the servers join the way k3s joins: learner, then voter;
the agent after them); a drifted token refused; encryption turned on in the
running cluster (Secrets written before it end up ciphertext); a broken build that stops the
upgrade at the first server; an upgrade that stops when a server's container goes away
mid-way, while the others keep serving, then completes with each node drained first; a key
rotation that keeps old Secrets readable; scheduled snapshots pruned to their retention; a
downgrade and an unasked flannel change refused; the token rotated; the flannel backend
migrated; a restore of the three servers from a snapshot (k3s's own procedure, by hand); and
the reset.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from opsbook.kube import binaries
from opsbook.lab import lab as labmod
from opsbook.lab.podman import podman
from playbook_run import ansible_playbook

pytestmark = [pytest.mark.lab, pytest.mark.kube]

ROOT = Path(__file__).resolve().parents[2]
LAB = "pytest-k3s-role"
NODES = ("node1", "node2", "node3")  # the servers
AGENT = "node4"
ALL = (*NODES, AGENT)
VERSIONS = binaries.build_versions()
PINNED, OLDER = VERSIONS["K3S_VERSION"], VERSIONS["K3S_TEST_OLDER"]
NEWER, BROKEN = VERSIONS["K3S_TEST_NEWER"], VERSIONS["K3S_TEST_BROKEN"]
# Quick health checks for the test server (production keeps the role's defaults), and a
# scheduled snapshot every minute, one kept, so the schedule and its retention show here.
LAB_VARS = {
    "k3s_health_timeout": 60,
    "k3s_health_poll": 2,
    "k3s_snapshot_cron": "* * * * *",
    "k3s_snapshot_retention": 1,
}
SNAPSHOTS = "/var/lib/rancher/k3s/server/db/snapshots"
# What the kubelet wants under protect-kernel-defaults (roles/k3s/vars/main.yml)
KERNEL_DEFAULTS = yaml.safe_load((ROOT / "roles/k3s/vars/main.yml").read_text())[
    "k3s__kernel_defaults"
]


class Cluster:
    def __init__(self, lab: labmod.Lab, tmp: Path) -> None:
        self.lab = lab
        self.tmp = tmp
        self.kubeconfig = tmp / "kubeconfig"
        self.releases: ReleaseServer | None = None

    def play(
        self, extra: dict, *args: str, playbook: str = "k3s.yml", inventories: tuple[Path, ...] = ()
    ) -> tuple[int, dict]:
        """ansible-playbook with the JSON callback: (rc, parsed output)."""
        proc = ansible_playbook(
            ROOT / "playbooks" / playbook,
            {**LAB_VARS, "k3s_kubeconfig_dest": str(self.kubeconfig), **extra},
            *args,
            inventory=(self.lab.inventory, *inventories),
            env={"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"},
            timeout=1200,
        )
        try:
            return proc.returncode, json.loads(proc.stdout)
        except ValueError:
            pytest.fail(
                f"no JSON from ansible-playbook (rc {proc.returncode}):\n"
                f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
            )

    def ssh(self, node: str, command: str, check: bool = True, timeout: float = 120) -> str:
        return labmod.run(self.lab, node, command, sudo=True, check=check, timeout=timeout).stdout

    def nodes(self, via: str = "node1") -> dict[str, dict]:
        out = self.ssh(via, "k3s kubectl get nodes -o json")
        return {n["metadata"]["name"]: n for n in json.loads(out)["items"]}

    def versions(self) -> dict[str, str]:
        return {n: self.ssh(n, "/usr/local/bin/k3s --version | head -1").split()[2] for n in ALL}

    def started_at(self, node: str) -> int:
        unit = "k3s-agent" if node == AGENT else "k3s"
        out = self.ssh(node, f"systemctl show -p ActiveEnterTimestampMonotonic --value {unit}")
        return int(out.strip())

    def journal(self, node: str) -> str:
        return self.ssh(node, "journalctl -u k3s --no-pager -o cat", check=False)

    def etcdctl(self, command: str) -> str:
        """etcdctl on node1 with k3s's etcd client certificate; `command` is shell text."""
        argv = binaries.etcdctl_argv("/var/lib/rancher/k3s", etcdctl="/tmp/etcdctl")
        return self.ssh("node1", f"{shlex.join(argv)} {command}")

    def raw_secret(self, name: str) -> str:
        return self.etcdctl(
            f"get /registry/secrets/default/{name} --print-value-only | head -c 600 "
            "| tr -c '[:print:]' ."
        )

    @staticmethod
    def node_ready(node: dict) -> bool:
        conds = node["status"].get("conditions", [])
        return any(x["type"] == "Ready" and x["status"] == "True" for x in conds)

    def pods(self, selector: str) -> list[dict]:
        out = self.ssh("node1", f"k3s kubectl get pods -l {selector} -o json")
        return json.loads(out)["items"]


def messages(output: dict) -> str:
    """Every task message of a JSON-callback run, one string (for assertions)."""
    parts = []
    for play in output.get("plays", []):
        for task in play.get("tasks", []):
            for result in task.get("hosts", {}).values():
                for key in ("msg", "stderr"):
                    if result.get(key):
                        parts.append(str(result[key]))
    return "\n".join(parts)


def failures(output: dict) -> str:
    """The task, host and message of each failed result (not the ignored ones), for assertion
    messages: the first 1500 characters of each."""
    parts = []
    for play in output.get("plays", []):
        for task in play.get("tasks", []):
            for host, result in task.get("hosts", {}).items():
                if result.get("failed") and not result.get("ignore_errors"):
                    text = str(result.get("msg") or result.get("stderr") or result)
                    parts.append(f"{task['task']['name']} [{host}]: {text[:1500]}")
    return "\n".join(parts) or "no failed task"


def airgap(version: str) -> str:
    return str(binaries.airgap_dir(version))


class ReleaseServer(ThreadingHTTPServer):
    """The k3s release layout (<url>/<version>/k3s, <url>/<version>/sha256sum-amd64.txt) over
    HTTP on the lab bridge's gateway, from the air-gap directories `make kube` builds (the
    k3s test server, a test double of k3s, under each version): the role's `url` install
    source, for real, without the internet. Records each request path."""

    def __init__(self, address: str) -> None:
        self.paths: list[str] = []
        directory = str(binaries.airgap_dir(PINNED).parent)
        server = self

        class Handler(SimpleHTTPRequestHandler):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, directory=directory, **kwargs)

            def log_message(self, *args: object) -> None:
                server.paths.append(self.path)

        super().__init__((address, 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    specs = [labmod.NodeSpec(n, "debian12", ("k3s_servers",)) for n in NODES]
    specs.append(labmod.NodeSpec(AGENT, "debian12", ("k3s_agents",)))
    try:
        lab = labmod.up(LAB, specs, log=lambda _m: None)
        c = Cluster(lab, tmp_path_factory.mktemp("k3s-role"))
        subprocess.run(labmod.scp_command(lab, "node1", [binaries.binary("etcdctl")], "/tmp/"),
                       check=True, timeout=120)  # fmt: skip
        c.releases = ReleaseServer(lab.gateway)
        yield c
        c.releases.shutdown()
    finally:
        labmod.down(LAB, log=lambda _m: None)


def wait(what: str, check: Callable[[], object], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (AssertionError, labmod.LabError, subprocess.SubprocessError, ValueError,
                KeyError) as exc:  # fmt: skip
            last = exc
        if last is True:
            return
        time.sleep(2)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}: {last}")


def nothing_installed(c: Cluster) -> None:
    for node in ALL:
        paths = (
            "/usr/local/bin/k3s /etc/rancher/k3s /usr/local/lib/opsbook-k3s /var/lib/rancher/k3s"
        )
        leftover = c.ssh(node, f"ls -d {paths} 2>/dev/null; true").split()
        assert leftover == [], f"{node} was changed: {leftover}"


def test_refusals_change_nothing_on_fresh_nodes(cluster: Cluster):
    c = cluster
    rc, out = c.play({"k3s_flannel_backend": "wireguard-native"})
    assert rc != 0
    assert "its kernel cannot create WireGuard links" in messages(out)
    assert "could not create wireguard interface" in messages(out)

    extra_inventory = c.tmp / "cidr.yml"
    extra_inventory.write_text(
        "all:\n  children:\n    k3s_servers:\n      hosts:\n"
        "        node2:\n          k3s_cluster_cidr: 10.99.0.0/16\n"
    )
    rc, out = c.play({}, inventories=(extra_inventory,))
    assert rc != 0
    assert "critical k3s values differ between servers, nothing was changed: cluster-cidr" in (
        messages(out)
    )

    rc, out = c.play({"k3s_cluster_config": {"not-a-flag": True}})
    assert rc != 0
    assert "keys ['not-a-flag'] are not k3s server flags" in messages(out)

    rc, out = c.play({"k3s_cluster_config": {"kube-apiserver-arg": ["audit-log-maxage=5", "v=2"]}})
    assert rc != 0
    assert "kube-apiserver-arg audit-log-maxage are set by the role" in messages(out)

    # protect-kernel-defaults: the lab nodes have the host's kernel values (a container cannot
    # set its own), which are not the kubelet's, so the preflight refuses and names them.
    wrong = {
        key: Path("/proc/sys", key.replace(".", "/")).read_text().strip()
        for key, want in KERNEL_DEFAULTS.items()
        if Path("/proc/sys", key.replace(".", "/")).read_text().strip() != str(want)
    }
    rc, out = c.play({"k3s_protect_kernel_defaults": True})
    if wrong:
        assert rc != 0
        assert "k3s_protect_kernel_defaults is on, and the kubelet refuses to start with" in (
            messages(out)
        )
        for key, value in wrong.items():
            assert f"{key}={value}" in messages(out)
    else:  # a host that has them: nothing to refuse (the preflight passes on)
        assert "k3s_protect_kernel_defaults is on" not in messages(out)

    # A port that refuses connections (bound, never listening: the preflight's own listener
    # cannot take it) is named from every other node, and nothing is installed.
    ip = c.lab.node(AGENT).ip
    blocker = f"import socket, time; s = socket.socket(); s.bind(('{ip}', 10250)); time.sleep(900)"
    # a transient unit: sudo (use_pty) kills what a command leaves in the background
    unit = "systemd-run --collect --unit=opsbook-t-blocker"
    c.ssh(AGENT, f"{unit} python3 -c {shlex.quote(blocker)}")
    try:
        rc, out = c.play({})
    finally:
        c.ssh(AGENT, "systemctl stop opsbook-t-blocker")
    assert rc != 0
    for node in NODES:
        refused = f"these k3s ports do not answer: {AGENT}:10250."
        assert f"from {node} ({c.lab.node(node).ip}) {refused}" in messages(out), failures(out)

    tampered = c.tmp / "airgap-tampered"
    shutil.copytree(binaries.airgap_dir(PINNED), tampered)
    (tampered / "sha256sum-amd64.txt").write_text(f"{'0' * 64}  k3s\n")
    rc, out = c.play({"k3s_airgap_dir": str(tampered)})
    assert rc != 0
    assert f"{tampered}/k3s does not match {tampered}/sha256sum-amd64.txt" in messages(out)
    nothing_installed(c)


def test_an_older_release_installs_from_its_url_without_encryption(cluster: Cluster):
    c = cluster
    assert c.releases is not None
    source = {"k3s_install_source": "url", "k3s_release_url": c.releases.url}
    rc, out = c.play({"k3s_version": OLDER, **source, "k3s_secrets_encryption": False})
    assert rc == 0, failures(out)
    # Each node downloaded the binary and the checksum file of the release (the "+" of the
    # version URL-encoded, as in GitHub's release URLs).
    quoted = OLDER.replace("+", "%2B")
    assert sorted(p for p in c.releases.paths if p.endswith("/k3s")) == [f"/{quoted}/k3s"] * 4
    assert f"/{quoted}/sha256sum-amd64.txt" in c.releases.paths
    nodes = c.nodes()
    assert sorted(nodes) == list(ALL)
    assert {n["status"]["nodeInfo"]["kubeletVersion"] for n in nodes.values()} == {OLDER}
    # The servers joined the way k3s joins: a learner first, promoted to voter by the leader.
    for node in ("node2", "node3"):
        journal = c.journal(node)
        assert "Managed etcd cluster not yet initialized" in journal
        ip = c.lab.node(node).ip
        assert re.search(rf"Adding member {node}-[0-9a-f]{{8}}=https://{ip}:2380", journal)
    members = json.loads(c.etcdctl("member list -w json"))["members"]
    assert sorted(m["name"].rsplit("-", 1)[0] for m in members) == list(NODES)  # not the agent
    assert not any(m.get("isLearner") for m in members)
    # The agent joined the servers and runs k3s-agent; it starts after every server.
    assert c.started_at(AGENT) > max(c.started_at(n) for n in NODES)
    c.ssh("node1", "k3s kubectl create secret generic before-encryption --from-literal=v=old-plain")
    assert "old-plain" in c.raw_secret("before-encryption")  # stored as plain protobuf
    # Every server serves the same data.
    for node in ("node2", "node3"):
        assert "before-encryption" in c.ssh(node, "k3s kubectl get secret -o name")
    for node in ALL:
        modes = c.ssh(node, "stat -c %a /etc/rancher/k3s/config.yaml /etc/rancher/k3s/token")
        assert modes.split() == ["600", "600"]
    # Every key the role sets is a key of config.yaml, none hidden in its comment lines.
    config = yaml.safe_load(c.ssh("node1", "cat /etc/rancher/k3s/config.yaml"))
    assert config["cluster-cidr"] == "10.42.0.0/16"
    assert config["node-ip"] == c.lab.node("node1").ip
    agent = yaml.safe_load(c.ssh(AGENT, "cat /etc/rancher/k3s/config.yaml"))
    assert sorted(agent) == ["kubelet-arg", "node-ip", "node-name", "server", "token-file"]
    # the hardening guide's kubelet flags reach agents too (no kube-apiserver-arg there)
    assert agent["kubelet-arg"][0] == "streaming-connection-idle-timeout=5m"
    assert agent["kubelet-arg"][1].startswith("tls-cipher-suites=TLS_ECDHE_")
    assert oct(c.kubeconfig.stat().st_mode & 0o777) == "0o600"
    # An old scheduled snapshot the retention (1) prunes (checked after the key rotation).
    c.ssh("node1", f"touch {SNAPSHOTS}/etcd-snapshot-node1-100")


def test_a_token_that_differs_from_the_cluster_is_refused_and_nothing_restarts(cluster: Cluster):
    c = cluster
    before = {n: c.started_at(n) for n in NODES}
    settings = {"k3s_version": OLDER, "k3s_airgap_dir": airgap(OLDER)}
    rc, out = c.play(
        {**settings, "k3s_secrets_encryption": False, "k3s_token": "not-the-cluster-token"}
    )
    assert rc != 0
    assert "k3s_token is not the token of the running cluster" in messages(out)
    assert "not-the-cluster-token" not in json.dumps(out)
    assert {n: c.started_at(n) for n in NODES} == before


def test_encryption_is_turned_on_in_the_running_cluster(cluster: Cluster):
    c = cluster
    rc, out = c.play({"k3s_version": OLDER, "k3s_airgap_dir": airgap(OLDER)})
    assert rc == 0, failures(out)
    status = c.ssh("node1", "k3s secrets-encrypt status")
    assert "Encryption Status: Enabled" in status
    assert "Current Rotation Stage: reencrypt_finished" in status
    assert "Server Encryption Hashes: All hashes match" in status
    # The Secret written before encryption was on is ciphertext now, and still readable.
    raw = c.raw_secret("before-encryption")
    assert raw.startswith("k8s:enc:aescbc:v1:aescbckey-"), raw
    assert "old-plain" not in raw
    assert c.ssh("node2", "k3s kubectl get secret before-encryption -o jsonpath={.data.v}") == (
        "b2xkLXBsYWlu"
    )
    rc, out = c.play({"k3s_version": OLDER, "k3s_airgap_dir": airgap(OLDER)})
    assert rc == 0
    assert all(h["changed"] == 0 for h in out["stats"].values()), out["stats"]


def test_a_broken_build_stops_the_upgrade_at_the_first_server(cluster: Cluster):
    c = cluster
    # A crash loop stops the run after 3 exits (k3s_health_max_restarts; RestartSec=5s), not at
    # the end of the health timeout: the timeout is 600 s here, and the message and the
    # exit count say which ended the wait (no wall-clock bound that a loaded machine breaks).
    rc, out = c.play(
        {"k3s_version": BROKEN, "k3s_airgap_dir": airgap(BROKEN), "k3s_health_timeout": 600}
    )
    assert rc != 0
    text = messages(out)
    assert "k3s on node1 was not healthy after 3 exits" in text, text[-2000:]
    assert "k3s exited 3 times since its restart (a crash loop)" in text
    assert "made to fail at start" in text
    assert "within 600 s" not in text
    versions = c.versions()
    assert versions["node1"] == BROKEN
    assert versions["node2"] == versions["node3"] == versions[AGENT] == OLDER  # untouched
    # node2 and node3 keep the cluster serving (2 of 3 etcd members).
    c.ssh("node2", "k3s kubectl create configmap during-broken-upgrade")
    assert "during-broken-upgrade" in c.ssh("node3", "k3s kubectl get configmap -o name")


def test_an_upgrade_stops_when_a_server_goes_away_mid_way_then_completes(cluster: Cluster):
    c = cluster
    container = c.lab.node("node3").container
    stopped = threading.Event()

    def stop_node3_once_node2_upgrades() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                version = c.ssh("node2", "/usr/local/bin/k3s --version | head -1", check=False)
            except (labmod.LabError, subprocess.SubprocessError):
                time.sleep(1)  # a probe that did not get through under load: ask again
                continue
            if version.split()[2:3] == [PINNED]:
                podman("stop", "-t", "2", container, timeout=60)
                stopped.set()
                return
            time.sleep(1)

    watcher = threading.Thread(target=stop_node3_once_node2_upgrades, daemon=True)
    watcher.start()
    try:
        # The pinned release: node1 recovers from the broken build first (its Node, NotReady
        # since the crash loop, needs a while to be Ready again: the full health timeout).
        rc, out = c.play({})
        watcher.join(timeout=60)
        assert stopped.is_set(), f"node2 was never upgraded (rc {rc}): {failures(out)}"
        assert rc != 0, "the play went on with node3 gone"
        assert c.ssh("node1", "/usr/local/bin/k3s --version | head -1").split()[2] == PINNED
        assert c.ssh("node2", "/usr/local/bin/k3s --version | head -1").split()[2] == PINNED
        # node1 and node2 keep serving reads and writes.
        c.ssh("node1", "k3s kubectl create configmap during-node3-outage")
        assert "during-node3-outage" in c.ssh("node2", "k3s kubectl get configmap -o name")
    finally:
        podman("start", container, timeout=60)
    labmod.wait_for_ssh(c.lab.node("node3").ip, 22, 120)
    assert c.ssh("node3", "/usr/local/bin/k3s --version | head -1").split()[2] == OLDER
    # node3's enabled unit brings it back as an existing member: no second join.
    wait(
        "node3 serving again",
        lambda: (
            "configmap/during-node3-outage"
            in c.ssh("node3", "k3s kubectl get configmap during-node3-outage -o name", check=False)
        ),
    )
    assert "Managed etcd cluster bootstrap already complete and initialized" in c.journal("node3")

    # The rest of the upgrade through k3s-upgrade.yml, each node drained before its restart:
    # a pod held on the agent is evicted by the drain and comes back once it is uncordoned.
    probe = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "drain-probe"},
        "spec": {
            "selector": {"matchLabels": {"app": "drain-probe"}},
            "template": {
                "metadata": {"labels": {"app": "drain-probe"}},
                "spec": {"nodeSelector": {"kubernetes.io/hostname": AGENT},
                         # restricted, as the role's Pod Security config wants in default
                         "securityContext": {"runAsNonRoot": True, "runAsUser": 65532,
                                             "seccompProfile": {"type": "RuntimeDefault"}},
                         "containers": [{"name": "main", "image": "registry.local/probe:1",
                                         "securityContext": {
                                             "allowPrivilegeEscalation": False,
                                             "capabilities": {"drop": ["ALL"]}}}]},
            },
        },
    }  # fmt: skip
    c.ssh("node1", f"printf %s {shlex.quote(json.dumps(probe))} | k3s kubectl apply -f -")
    wait(
        "the drain probe running on the agent",
        lambda: (
            [
                (p["spec"].get("nodeName"), p["status"].get("phase"))
                for p in c.pods("app=drain-probe")
            ]
            == [(AGENT, "Running")]
        ),
    )
    before = c.pods("app=drain-probe")[0]["metadata"]["uid"]
    rc, out = c.play({"k3s_upgrade_drain": True}, playbook="k3s-upgrade.yml")
    assert rc == 0, failures(out)
    assert c.versions() == dict.fromkeys(ALL, PINNED)
    nodes = c.nodes()
    assert {n["status"]["nodeInfo"]["kubeletVersion"] for n in nodes.values()} == {PINNED}
    assert not any(n["spec"].get("unschedulable") for n in nodes.values())  # uncordoned
    drained = [
        t["task"]["name"].split(" : ", 1)[-1]
        for p in out["plays"]
        for t in p["tasks"]
        if "Drain before its upgrade restart" in t["task"]["name"]
        and any(not r.get("skipped") for r in t["hosts"].values())
    ]
    assert drained == [
        "Drain before its upgrade restart: node3",
        f"Drain before its upgrade restart: {AGENT}",
    ], drained
    wait("the drain probe back on the agent", lambda: [
        (p["metadata"]["uid"] != before, p["spec"].get("nodeName"), p["status"].get("phase"))
        for p in c.pods("app=drain-probe")] == [(True, AGENT, "Running")])  # fmt: skip


def key_name(raw: str) -> str:
    """The aescbc key a raw etcd value is encrypted with (the name holds an RFC 3339 time)."""
    match = re.match(r"k8s:enc:aescbc:v1:(aescbckey-[0-9T:-]+(?:Z|[+-][0-9:]+)):", raw)
    assert match, raw[:80]
    return match.group(1)


def test_rotate_keys_keeps_old_secrets_readable(cluster: Cluster):
    c = cluster
    old_key = key_name(c.raw_secret("before-encryption"))
    rc, out = c.play({}, playbook="k3s-rotate-keys.yml")
    assert rc == 0, failures(out)
    new_key = key_name(c.raw_secret("before-encryption"))
    assert new_key != old_key
    for node in NODES:
        assert c.ssh(node, "k3s kubectl get secret before-encryption -o jsonpath={.data.v}") == (
            "b2xkLXBsYWlu"
        )


def test_scheduled_snapshots_are_taken_and_pruned_to_the_retention(cluster: Cluster):
    c = cluster
    # Every minute since the install (k3s_snapshot_cron), one kept (k3s_snapshot_retention).
    names = c.ssh("node1", f"ls {SNAPSHOTS}").split()
    scheduled = [n for n in names if n.startswith("etcd-snapshot-")]
    assert len(scheduled) == 1, names
    assert scheduled[0].startswith("etcd-snapshot-node1-"), names
    assert "etcd-snapshot-node1-100" not in names
    assert any(n.startswith("pre-upgrade-node1-") for n in names), names  # on demand: kept
    assert (
        "Applying snapshot retention=1 to local snapshots with prefix etcd-snapshot"
        in c.journal("node1")
    )


def test_a_downgrade_and_a_flannel_change_are_refused_on_the_running_cluster(cluster: Cluster):
    c = cluster
    before = {n: c.started_at(n) for n in NODES}
    rc, out = c.play({"k3s_version": OLDER, "k3s_airgap_dir": airgap(OLDER)})
    assert rc != 0
    assert f"{OLDER} is older than the installed {PINNED}: k3s does not support downgrades" in (
        messages(out)
    )
    rc, out = c.play({"k3s_flannel_backend": "host-gw"})
    assert rc != 0
    assert "runs k3s with flannel-backend=vxlan (wanted host-gw)" in messages(out)
    assert "Changing the flannel backend of a running cluster" in messages(out)
    assert {n: c.started_at(n) for n in NODES} == before


NEW_TOKEN = "rotated-token-0123456789abcdef"


def in_turn(before: dict[str, int], after: dict[str, int], order: tuple[str, ...]) -> None:
    """Each node of `order` restarted, one after the other in that order."""
    assert all(after[n] > before[n] for n in order), (before, after)
    assert sorted(order, key=after.__getitem__) == list(order), after


NETPOL_FILE = "/var/lib/rancher/k3s/server/manifests/opsbook-kube-system-netpol.yaml"


def test_the_kube_system_network_policies_are_deleted_when_turned_off(cluster: Cluster):
    # k3s leaves a removed manifest's objects in place (the test server's deploy controller
    # does the same), so the role deletes them through the API; no node restarts for it.
    c = cluster

    def policies() -> list[str]:
        return c.ssh(
            "node1", "k3s kubectl get networkpolicy -n kube-system -o name 2>/dev/null"
        ).split()

    wait("the guide's five kube-system NetworkPolicies", lambda: len(policies()) == 5, timeout=60)
    before = {n: c.started_at(n) for n in ALL}
    rc, out = c.play({"k3s_kube_system_network_policies": False})
    assert rc == 0, failures(out)
    assert policies() == []
    addon = "addon -n kube-system opsbook-kube-system-netpol --ignore-not-found -o name"
    assert c.ssh("node1", f"k3s kubectl get {addon} 2>/dev/null").strip() == ""
    for node in NODES:
        assert c.ssh(node, f"ls {NETPOL_FILE} 2>/dev/null; true").strip() == "", node
    assert {n: c.started_at(n) for n in ALL} == before
    # The next test's run turns them on again (the default): the file is written back.


def test_the_token_rotates_and_every_node_restarts_in_turn_with_it(cluster: Cluster):
    c = cluster
    before = {n: c.started_at(n) for n in ALL}
    rc, out = c.play({"k3s_token": NEW_TOKEN, "k3s_token_rotate": True})
    assert rc == 0, failures(out)
    assert NEW_TOKEN not in json.dumps(out)
    in_turn(before, {n: c.started_at(n) for n in ALL}, ALL)
    server_token = c.ssh("node1", "cat /var/lib/rancher/k3s/server/token").strip()
    assert server_token.startswith("K10")
    assert server_token.endswith(f"::server:{NEW_TOKEN}")
    for node in ALL:
        assert c.ssh(node, "cat /etc/rancher/k3s/token").strip().split("::server:")[-1] == (
            NEW_TOKEN
        )
    assert all(c.node_ready(n) for n in c.nodes().values()), "a node is not Ready on the new token"
    # The vault now holds the new token: the next run takes it as the cluster's.
    rc, out = c.play({"k3s_token": NEW_TOKEN})
    assert rc == 0, failures(out)
    assert all(h["changed"] == 0 for h in out["stats"].values()), out["stats"]


def test_the_flannel_backend_migrates_with_its_variable_servers_first(cluster: Cluster):
    c = cluster
    before = {n: c.started_at(n) for n in ALL}
    rc, out = c.play({"k3s_flannel_backend": "host-gw", "k3s_flannel_migration": True})
    assert rc == 0, failures(out)
    # Every server restarted on the new backend, one at a time, then the agent, which takes
    # the backend from the servers when it starts.
    in_turn(before, {n: c.started_at(n) for n in ALL}, ALL)
    for node in NODES:
        assert "flannel-backend: host-gw" in c.ssh(node, "cat /etc/rancher/k3s/config.yaml")
    assert all(c.node_ready(n) for n in c.nodes().values())
    rc, out = c.play({"k3s_flannel_backend": "host-gw"})  # done: no migration variable needed
    assert rc == 0, failures(out)
    assert all(h["changed"] == 0 for h in out["stats"].values()), out["stats"]


def test_the_servers_come_back_from_a_snapshot_with_cluster_reset(cluster: Cluster):
    """k3s's restore procedure (docs: cli/etcd-snapshot.md), by hand: the role has none."""
    c = cluster
    c.ssh("node1", "k3s kubectl create configmap restore-me --from-literal=v=1")
    saved = c.ssh("node1", "k3s etcd-snapshot save --name pre-reset 2>&1")
    match = re.search(r"Snapshot (pre-reset-node1-\d+) saved\.", saved)
    assert match, saved
    c.ssh("node1", "k3s kubectl delete configmap restore-me")
    for node in ("node3", "node2", "node1"):
        c.ssh(node, "systemctl stop k3s")
    out = c.ssh(
        "node1",
        f"k3s server --cluster-reset --cluster-reset-restore-path={SNAPSHOTS}/{match.group(1)} "
        "2>&1",
        timeout=240,
    )
    assert "Managed etcd cluster membership has been reset, restart without --cluster-reset" in out
    c.ssh("node1", "systemctl start k3s")
    for node in ("node2", "node3"):
        c.ssh(node, "rm -rf /var/lib/rancher/k3s/server/db && systemctl start k3s")
    assert "restore-me" in c.ssh("node2", "k3s kubectl get configmap restore-me -o name")
    members = json.loads(c.etcdctl("member list -w json"))["members"]
    assert len(members) == 3
    assert not any(m.get("isLearner") for m in members)


def test_reset_needs_its_confirmation_then_removes_k3s(cluster: Cluster):
    c = cluster
    rc, out = c.play({}, playbook="k3s-reset.yml")
    assert rc != 0
    assert "run with -e k3s_reset_confirm=delete-the-cluster" in messages(out)
    assert c.ssh("node1", "systemctl is-active k3s", check=False).strip() == "active"
    rc, out = c.play({"k3s_reset_confirm": "delete-the-cluster"}, playbook="k3s-reset.yml")
    assert rc == 0, failures(out)
    nothing_installed(c)
    for node in ALL:
        states = c.ssh(node, "systemctl is-active k3s k3s-agent", check=False).split()
        assert "active" not in states, (node, states)
