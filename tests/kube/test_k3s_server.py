"""`k3s server` of the opsbook k3s test server, one server at a time on a loopback address of
its own: what it writes, what it prints, what it refuses (../shared/docs/k3s-contract.md).

Each server here is a real process (etcd, kube-apiserver, controller-manager and scheduler
in it); the tests stop and restart it with other flags, config files and tokens.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from opsbook.kube import binaries, processes
from opsbook.kube.testserver import TestCluster, free_address

pytestmark = pytest.mark.kube
REPO = Path(__file__).resolve().parents[2]
PINNED = binaries.build_versions()


class Server:
    """One `k3s server` in `directory`, started and stopped by the test."""

    def __init__(self, directory: Path, name: str = "single", start: int = 100) -> None:
        self.directory = directory
        self.name = name
        self.address = free_address(start)
        self.data_dir = directory / "data"
        self.config = directory / "etc" / "config.yaml"
        self.kubeconfig = directory / "k3s.yaml"
        self.proc: processes.Proc | None = None
        self.runs = 0

    def argv(self, *extra: str, binary: Path | None = None) -> list[str]:
        return [
            str(binary or binaries.binary("k3s")),
            "server",
            f"--config={self.config}",
            f"--data-dir={self.data_dir}",
            f"--node-ip={self.address}",
            f"--node-name={self.name}",
            f"--write-kubeconfig={self.kubeconfig}",
            "--etcd-disable-snapshots",
            *extra,
        ]

    def start(self, *extra: str, token: str | None, binary: Path | None = None) -> processes.Proc:
        self.runs += 1
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        if token is not None:
            env["K3S_TOKEN"] = token
        self.proc = processes.spawn(
            f"run{self.runs}", self.argv(*extra, binary=binary), self.directory, env=env,
            die_with_parent=True,
        )  # fmt: skip
        return self.proc

    def log(self) -> str:
        assert self.proc is not None
        return self.proc.log.read_text(errors="replace")

    def wait_up(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "k3s is up and running" in self.log():
                return
            assert self.proc is not None
            if not processes.alive(self.proc):
                pytest.fail(f"k3s server exited:\n{self.log()[-3000:]}")
            time.sleep(0.3)
        pytest.fail(f"k3s server not up after {timeout}s:\n{self.log()[-3000:]}")

    def wait_log(self, message: str, timeout: float = 90) -> str:
        """The log once it holds `message` (the process may exit or keep retrying)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if message in self.log():
                return self.log()
            time.sleep(0.3)
        pytest.fail(f"{message!r} not logged after {timeout}s:\n{self.log()[-3000:]}")

    def wait_exit(self, timeout: float = 60) -> str:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while processes.alive(self.proc) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not processes.alive(self.proc), "k3s server did not exit"
        return self.log()

    def stop(self) -> None:
        if self.proc is not None:
            processes.stop(self.proc, timeout=20)

    def k3s(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [str(binaries.binary("k3s")), *args]
        if args[0] in ("secrets-encrypt", "token"):
            argv += [f"--data-dir={self.data_dir}", f"--server=https://{self.address}:6443"]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        if check:
            assert proc.returncode == 0, proc.stderr
        return proc

    def kubectl(self, *args: str) -> str:
        return self.k3s("kubectl", f"--kubeconfig={self.kubeconfig}", *args).stdout

    def tls(self, *parts: str) -> Path:
        return self.data_dir.joinpath("server", "tls", *parts)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path)
    try:
        yield srv
    finally:
        srv.stop()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def fatal_line(log: str) -> str:
    lines = [line for line in log.splitlines() if "level=fatal" in line]
    assert lines, log[-2000:]
    return re.sub(r'^.*msg="(.*)"$', r"\1", lines[-1]).replace('\\"', '"')


def test_version_prints_k3s_format_and_says_it_is_the_test_server():
    out = subprocess.run(
        [str(binaries.binary("k3s")), "--version"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    commit = PINNED["K3S_COMMIT"][:8]
    assert out[0] == f"k3s version {PINNED['K3S_VERSION']} ({commit})"
    assert re.fullmatch(r"go version go1\.\d+(\.\d+)?", out[1])
    assert "opsbook k3s test server" in out[2]
    assert "not k3s" in out[2]
    assert PINNED["KUBE_VERSION"] in out[2]
    assert PINNED["ETCD_VERSION"] in out[2]
    # The role reads field 3 of line 1 (k3s-ansible's k3s_upgrade does the same).
    assert out[0].split()[2] == PINNED["K3S_VERSION"]


def test_upgrade_test_builds_differ_only_in_their_version_and_the_broken_one_fails(tmp_path):
    for key in ("K3S_TEST_OLDER", "K3S_TEST_NEWER"):
        binary = binaries.airgap_dir(PINNED[key]) / "k3s"
        first = subprocess.run([str(binary), "--version"], capture_output=True, text=True)
        assert first.stdout.splitlines()[0] == f"k3s version {PINNED[key]} (00000000)"
        sums = (binary.parent / "sha256sum-amd64.txt").read_text()
        assert sums == f"{hashlib.sha256(binary.read_bytes()).hexdigest()}  k3s\n"
    broken = binaries.airgap_dir(PINNED["K3S_TEST_BROKEN"]) / "k3s"
    srv = Server(tmp_path)
    srv.start("--cluster-init", token="t0k3n", binary=broken)
    log = srv.wait_exit()
    assert "made to fail at start" in fatal_line(log)
    assert not (srv.data_dir / "server" / "db").exists(), "the broken build touched the data dir"


def test_first_start_writes_k3s_layout_token_and_kubeconfig(server: Server):
    server.config.parent.mkdir(parents=True)
    server.config.write_text("cluster-init: true\nsecrets-encryption: true\n")
    server.start(token="short-password-1")
    server.wait_up()
    srv = server.data_dir / "server"
    # server/token: K10<sha256 of the server CA file>::server:<password>, 0600
    ca_hash = hashlib.sha256((srv / "tls" / "server-ca.crt").read_bytes()).hexdigest()
    assert (srv / "token").read_text() == f"K10{ca_hash}::server:short-password-1\n"
    assert mode(srv / "token") == 0o600
    assert (srv / "node-token").readlink() == Path("token")
    assert (srv / "agent-token").readlink() == Path("token")
    passwd = (srv / "cred" / "passwd").read_text().splitlines()
    assert sorted(passwd) == [
        "short-password-1,node,node,k3s:agent",
        "short-password-1,server,server,k3s:server",
    ]
    for sub in ("tls/etcd/server-ca.crt", "tls/etcd/peer-server-client.crt", "db/etcd/member/wal"):
        assert (srv / sub).exists(), sub
    assert mode(srv / "cred" / "encryption-config.json") == 0o600
    config_hash = hashlib.sha256((srv / "cred" / "encryption-config.json").read_bytes()).hexdigest()
    assert (srv / "cred" / "encryption-state.json").read_text() == f"start-{config_hash}"
    # The admin kubeconfig: 0600, everything named `default`, certificates embedded.
    assert mode(server.kubeconfig) == 0o600
    kc = yaml.safe_load(server.kubeconfig.read_text())
    assert kc["current-context"] == "default"
    assert kc["clusters"][0]["name"] == "default"
    assert kc["clusters"][0]["cluster"]["server"] == f"https://{server.address}:6443"
    assert "client-certificate-data" in kc["users"][0]["user"]
    # The bootstrap data is in etcd under /bootstrap/<first 12 hex of sha256(password)>.
    key = "/bootstrap/" + hashlib.sha256(b"short-password-1").hexdigest()[:12]
    etcdctl = binaries.etcdctl_argv(server.data_dir, f"https://{server.address}:2379")
    keys = subprocess.run(
        [*etcdctl, "get", "--prefix", "/bootstrap", "--keys-only"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert keys == [key]
    value = subprocess.run([*etcdctl, "get", key, "--print-value-only"], capture_output=True).stdout
    assert re.fullmatch(rb"[0-9a-f]{16}:[A-Za-z0-9+/=]+\n", value), value[:60]
    # A Secret is ciphertext in etcd; the API decrypts it.
    server.kubectl("create", "secret", "generic", "probe", "--from-literal=v=plain-marker-42")
    raw = subprocess.run(
        [*etcdctl, "get", "/registry/secrets/default/probe", "--print-value-only"],
        capture_output=True,
    ).stdout  # fmt: skip
    assert raw.startswith(b"k8s:enc:aescbc:v1:aescbckey:")
    assert b"plain-marker-42" not in raw
    # secrets-encrypt status, exactly as k3s prints it.
    assert server.k3s("secrets-encrypt", "status").stdout == (
        "Encryption Status: Enabled\n"
        "Current Rotation Stage: start\n"
        "Server Encryption Hashes: All hashes match\n"
        "\n"
        "Active  Key Type  Name\n"
        "------  --------  ----\n"
        " *      AES-CBC   aescbckey\n"
        "\n"
    )
    node = yaml.safe_load(server.kubectl("get", "node", "single", "-o", "yaml"))
    assert (
        node["metadata"]["annotations"]["k3s.io/encryption-config-hash"] == f"start-{config_hash}"
    )


def test_config_file_drop_ins_and_an_unknown_key_that_only_warns(server: Server):
    server.config.parent.mkdir(parents=True)
    server.config.write_text("cluster-init: true\ntls-san: [one.example]\nnot-a-flag: 1\n")
    dropins = server.config.parent / "config.yaml.d"
    dropins.mkdir()
    (dropins / "10-more.yaml").write_text("tls-san+: [two.example]\nnode-label: [zone=a]\n")
    (dropins / "20-kubeconfig.YML").write_text(
        'write-kubeconfig-mode: "0640"\ndisable: [traefik]\n'
    )
    (dropins / "30-ignored.txt").write_text("node-label: [ignored=yes]\n")
    server.start(token="t0k3n")
    server.wait_up()
    assert "Unknown flag --not-a-flag found in config.yaml, skipping" in server.log()
    cert = x509.load_pem_x509_certificate(server.tls("serving-kube-apiserver.crt").read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"one.example", "two.example"} <= set(sans.get_values_for_type(x509.DNSName))
    assert mode(server.kubeconfig) == 0o640
    labels = yaml.safe_load(server.kubectl("get", "node", "single", "-o", "yaml"))["metadata"]
    assert labels["labels"]["zone"] == "a"
    assert "ignored" not in labels["labels"]
    # disable: [traefik]: no packaged traefik.yaml, no HelmChart, no traefik.io CRDs.
    assert not (server.data_dir / "server" / "manifests" / "traefik.yaml").exists()
    assert "traefik" not in server.kubectl("get", "helmcharts", "-A", "-o", "name")
    crds = server.kubectl("get", "crd", "-o", "name")
    assert "helmchartconfigs.helm.cattle.io" in crds
    assert "traefik.io" not in crds


def test_restart_with_another_token_fails_and_the_short_form_is_the_same_token(server: Server):
    server.start("--cluster-init", token="first-password")
    server.wait_up()
    full = (server.data_dir / "server" / "token").read_text().strip()
    server.stop()
    server.start("--cluster-init", token="another-password")
    assert fatal_line(server.wait_exit()) == (
        "Error: Failed to reconcile with temporary etcd: "
        "bootstrap data already found and encrypted with different token"
    )
    # The secure form K10<hash>::server:<password> carries the same password: accepted.
    server.start("--cluster-init", token=full)
    server.wait_up()
    server.stop()
    # No token at all: a restart reads server/token.
    server.start("--cluster-init", token=None)
    server.wait_up()
    server.stop()
    # A bootstrap file that differs from the datastore and is newer on disk stops the start.
    psk = server.data_dir / "server" / "cred" / "ipsec.psk"
    time.sleep(3)
    psk.write_text("edited by hand\n")
    server.start("--cluster-init", token=full)
    assert fatal_line(server.wait_exit()) == (
        f"Error: {psk} newer than datastore and could cause a cluster outage. "
        "Remove the file(s) from disk and restart to be recreated from datastore."
    )
    psk.unlink()
    server.start("--cluster-init", token=full)
    server.wait_up()
    assert psk.read_text() != "edited by hand\n"


def test_joins_refused_without_a_token_with_a_wrong_ca_hash_and_with_another_cluster_cidr(
    server: Server, tmp_path: Path
):
    """A second server joining the first (k3s: pkg/cluster/bootstrap.go, pkg/etcd/etcd.go
    join; pkg/server/handlers/handlers.go config validation) is refused before it joins."""
    server.start("--cluster-init", token="join-token-1")
    server.wait_up()
    joiner = Server(tmp_path / "joiner", name="joiner", start=150)
    join = f"--server=https://{server.address}:6443"
    try:
        joiner.start(join, token=None)
        joiner.wait_log("token is required to join a cluster")
        joiner.stop()
        joiner.start(join, token=f"K10{'0' * 64}::server:join-token-1")
        joiner.wait_log(
            "failed to check if bootstrap data has been initialized: failed to validate token: "
            f"token CA hash does not match the Cluster CA certificate hash: {'0' * 64} != "
        )
        joiner.stop()
        joiner.start(join, "--cluster-cidr=10.99.0.0/16", token="join-token-1")
        log = joiner.wait_log("critical configuration value mismatch between servers")
        assert "critical configuration mismatched: cluster-cidr" in log
        assert "failed to validate server configuration" in log
    finally:
        joiner.stop()
    members = subprocess.run(
        [*binaries.etcdctl_argv(server.data_dir, f"https://{server.address}:2379"),
         "member", "list"],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout.splitlines()  # fmt: skip
    assert [m.split(", ")[2].rsplit("-", 1)[0] for m in members] == ["single"]


def test_token_rotate_moves_the_bootstrap_data_to_the_new_token(server: Server):
    server.start("--cluster-init", token="old-token-1")
    server.wait_up()
    out = server.k3s("token", "rotate", "--token=old-token-1", "--new-token=new-token-2").stdout
    assert out.splitlines() == [
        "\x1b[33mWARNING\x1b[0m: Recommended to keep a record of the old token. "
        "If restoring from a snapshot, you must use the token associated with that snapshot.",
        "Token rotated, restart k3s nodes with new token",
    ]
    assert (server.data_dir / "server" / "token").read_text().endswith("::server:new-token-2\n")
    server.stop()
    server.start("--cluster-init", token="old-token-1")
    assert "encrypted with different token" in fatal_line(server.wait_exit())
    server.start("--cluster-init", token="new-token-2")
    server.wait_up()


def test_wireguard_native_fails_at_start_on_a_kernel_without_wireguard(server: Server):
    probe = subprocess.run(
        ["ip", "link", "add", "opsbook-wgprobe", "type", "wireguard"],
        capture_output=True,
        text=True,
    )
    if probe.returncode == 0:
        subprocess.run(["ip", "link", "del", "opsbook-wgprobe"], check=False)
        pytest.fail("this kernel has WireGuard: the test expects one without it (see README)")
    server.start("--cluster-init", "--flannel-backend=wireguard-native", token="t0k3n")
    assert fatal_line(server.wait_exit(90)) == (
        "Error: flannel exited: failed to register flannel network: "
        "could not create wireguard interface: operation not supported"
    )


def test_protect_kernel_defaults_fails_at_start_on_other_kernel_values(server: Server):
    # The kubelet's check (k3s passes the flag on); this machine's values are read, not set.
    wanted = {"vm/overcommit_memory": 1, "vm/panic_on_oom": 0, "kernel/panic": 10,
              "kernel/panic_on_oops": 1, "kernel/keys/root_maxkeys": 1000000,
              "kernel/keys/root_maxbytes": 25000000}  # fmt: skip
    actual = {k: int(Path("/proc/sys", k).read_text()) for k in wanted}
    wrong = sorted(k for k in wanted if actual[k] != wanted[k])
    if not wrong:
        pytest.fail("this kernel has the kubelet's values: the test expects other ones")
    server.start("--cluster-init", "--protect-kernel-defaults", token="t0k3n")
    line = fatal_line(server.wait_exit())
    assert line.startswith("Error: kubelet exited: failed to run Kubelet: [invalid kernel flag: ")
    for k in wrong:
        flag = f"invalid kernel flag: {k}, expected value: {wanted[k]}"
        assert f"{flag}, actual value: {actual[k]}" in line
    assert line.count("invalid kernel flag") == len(wrong)


def test_bad_flannel_backend_and_restore_path_without_reset_are_refused(server: Server):
    server.start("--cluster-init", "--flannel-backend=ipsec", token="t0k3n")
    assert fatal_line(server.wait_exit()) == "Error: invalid flannel backend: ipsec"
    server.start("--cluster-reset-restore-path=/nonexistent", token="t0k3n")
    assert fatal_line(server.wait_exit()) == (
        "Error: invalid flag use; --cluster-reset required with --cluster-reset-restore-path"
    )


def test_snapshot_save_ls_delete_and_a_restore_that_brings_back_a_deleted_object(server: Server):
    server.start("--cluster-init", token="snap-token")
    server.wait_up()
    server.kubectl("create", "configmap", "keep-me", "--from-literal=v=1")
    save = server.k3s(
        "etcd-snapshot", "save", "--name=before", f"--data-dir={server.data_dir}",
        f"--etcd-server=https://{server.address}:6443",
    )  # fmt: skip
    [name] = re.findall(r"Snapshot (before-single-\d+) saved\.", save.stderr)
    snapshots = server.data_dir / "server" / "db" / "snapshots"
    ls = server.k3s(
        "etcd-snapshot", "ls", f"--data-dir={server.data_dir}",
        f"--etcd-server=https://{server.address}:6443",
    ).stdout.splitlines()  # fmt: skip
    assert ls[0].split() == ["Name", "Location", "Size", "Created"]
    row = ls[1].split()
    assert row[0] == name
    assert row[1] == f"file://{snapshots / name}"
    assert int(row[2]) == (snapshots / name).stat().st_size
    server.kubectl("delete", "configmap", "keep-me")
    server.stop()
    server.start(
        "--cluster-init", "--cluster-reset", f"--cluster-reset-restore-path={snapshots / name}",
        token="snap-token",
    )  # fmt: skip
    log = server.wait_exit(120)
    assert (
        "Managed etcd cluster membership has been reset, restart without --cluster-reset flag "
        "now. Backup and delete ${datadir}/server/db on each peer etcd server and rejoin the "
        "nodes" in log
    )
    assert (server.data_dir / "server" / "db" / "reset-flag").exists()
    assert list((server.data_dir / "server" / "db").glob("etcd-old-*"))
    server.start("--cluster-init", token="snap-token")
    server.wait_up()
    assert "v" in server.kubectl("get", "configmap", "keep-me", "-o", "jsonpath={.data}")
    assert not (server.data_dir / "server" / "db" / "reset-flag").exists()
    gone = server.k3s(
        "etcd-snapshot", "delete", name, f"--data-dir={server.data_dir}",
        f"--etcd-server=https://{server.address}:6443",
    )  # fmt: skip
    assert f"Snapshot {name} deleted." in gone.stderr
    assert not (snapshots / name).exists()


def test_the_session_cluster_serves_the_packaged_traefik_helmchart(kube_cluster: TestCluster):
    charts = kube_cluster.kubectl_json("get", "helmcharts.helm.cattle.io", "-n", "kube-system")
    assert sorted(c["metadata"]["name"] for c in charts["items"]) == ["traefik", "traefik-crd"]
    addon = kube_cluster.kubectl_json("get", "addons.k3s.cattle.io", "traefik", "-n", "kube-system")
    assert addon["spec"]["source"].endswith("/server/manifests/traefik.yaml")


def test_node_leases_are_held_under_the_node_names(kube_cluster: TestCluster):
    # As the kubelet holds them (a restarted k3s renews its node's Lease at once), not under
    # kwok's per-process identity (a restarted node would wait for the old Lease to expire).
    leases = kube_cluster.kubectl_json("get", "leases", "-n", "kube-node-lease")
    holders = {lease["metadata"]["name"]: lease["spec"].get("holderIdentity")
               for lease in leases["items"]}  # fmt: skip
    assert set(holders) == set(kube_cluster.ready_nodes())
    assert all(holder == name for name, holder in holders.items()), holders


def test_a_manifest_dropped_in_server_manifests_is_applied_and_validated(kube_cluster: TestCluster):
    manifests = kube_cluster.data_dir / "server" / "manifests"
    name = f"probe-{secrets.token_hex(3)}"
    (manifests / f"{name}.yaml").write_text(
        "apiVersion: helm.cattle.io/v1\nkind: HelmChartConfig\n"
        f"metadata: {{name: {name}, namespace: kube-system}}\n"
        "spec:\n  valuesContent: |-\n    deployment:\n      kind: DaemonSet\n"
    )
    deadline = time.monotonic() + 40  # the watcher scans every 15 s
    while time.monotonic() < deadline:
        got = kube_cluster.kubectl("get", "helmchartconfig", name, "-n", "kube-system", check=False)
        if got.returncode == 0:
            break
        time.sleep(1)
    else:
        pytest.fail("the manifest was not applied within 40 s")
    hcc = kube_cluster.kubectl_json("get", "helmchartconfig", name, "-n", "kube-system")
    assert "kind: DaemonSet" in hcc["spec"]["valuesContent"]
    # A file the CRD's schema refuses is not applied; the server logs why.
    (manifests / f"{name}-bad.yaml").write_text(
        "apiVersion: helm.cattle.io/v1\nkind: HelmChartConfig\n"
        f"metadata: {{name: {name}-bad, namespace: kube-system}}\n"
        "spec: {failurePolicy: 12}\n"
    )
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline and f"{name}-bad.yaml" not in kube_cluster.log_text():
        time.sleep(1)
    assert re.search(
        rf'Failed to apply manifest at \\"[^"]*{name}-bad.yaml', kube_cluster.log_text()
    )
    assert kube_cluster.kubectl("get", "helmchartconfig", f"{name}-bad", "-n", "kube-system",
                                check=False).returncode != 0  # fmt: skip
