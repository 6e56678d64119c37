"""opsbook.kube pieces without a control plane: PKI, stages file, processes, binaries check."""

from __future__ import annotations

import base64
import datetime
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from opsbook.kube import binaries, crds, pki, processes

REPO = Path(__file__).resolve().parents[2]
STAGES = REPO / "tests" / "kube" / "kwok-stages.yaml"


def _load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_leaf_certificates_chain_to_the_ca_with_the_right_names(tmp_path: Path):
    ca = pki.CA(tmp_path)
    server = ca.issue(
        "api", "kube-apiserver", ips=["127.0.0.1", pki.SERVICE_IP], dns=["kubernetes"], server=True
    )
    admin = ca.issue("admin", "opsbook-admin", orgs=["system:masters"], client=True)
    ca_cert = _load(ca.cert_path)
    for pair in (server, admin):
        cert = _load(pair.cert)
        cert.verify_directly_issued_by(ca_cert)
        assert cert.not_valid_after_utc > datetime.datetime.now(datetime.UTC)
        assert oct(pair.key.stat().st_mode & 0o777) == "0o600"
    sans = _load(server.cert).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert {str(ip) for ip in sans.value.get_values_for_type(x509.IPAddress)} == {
        "127.0.0.1",
        "10.43.0.1",
    }
    eku = _load(admin.cert).extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    subject = _load(admin.cert).subject
    assert subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "system:masters"
    assert isinstance(_load(server.cert).public_key(), ec.EllipticCurvePublicKey)


def test_encryption_config_has_a_fresh_aescbc_key_first(tmp_path: Path):
    first = yaml.safe_load(pki.encryption_config(tmp_path / "a.yaml").read_text())
    second = yaml.safe_load(pki.encryption_config(tmp_path / "b.yaml").read_text())
    providers = first["resources"][0]["providers"]
    assert first["resources"][0]["resources"] == ["secrets"]
    assert list(providers[0]) == ["aescbc"]
    assert providers[-1] == {"identity": {}}
    key = providers[0]["aescbc"]["keys"][0]["secret"]
    assert len(base64.b64decode(key)) == 32
    assert key != second["resources"][0]["providers"][0]["aescbc"]["keys"][0]["secret"]


def test_kwok_stages_list_every_lifecycle_step_and_both_markers():
    stages = [d for d in yaml.safe_load_all(STAGES.read_text()) if d]
    names = [s["metadata"]["name"] for s in stages]
    assert names == [
        "node-initialize",
        "node-heartbeat-with-lease",
        "pod-ready",
        "pod-never-ready",
        "pod-complete",
        "pod-fail",
        "pod-delete",
    ]
    assert all(s["kind"] == "Stage" for s in stages)
    by_name = {s["metadata"]["name"]: s for s in stages}
    # The marker strings are a contract with the apps tests.
    keys = {
        name: " ".join(e["key"] for e in s["spec"]["selector"]["matchExpressions"])
        for name, s in by_name.items()
    }
    assert 'contains("kwok-fails")' in keys["pod-fail"]
    assert 'contains("kwok-never-ready")' in keys["pod-never-ready"]
    assert 'contains("kwok-never-ready")' in keys["pod-ready"]  # excluded there
    assert "exitCode: 1" in by_name["pod-fail"]["spec"]["next"]["statusTemplate"]
    assert "phase: Failed" in by_name["pod-fail"]["spec"]["next"]["statusTemplate"]


def test_crd_names_come_from_the_shared_directory():
    names = crds.crd_names(binaries.crds_dir())
    assert "ingressroutes.traefik.io" in names
    assert "helmcharts.helm.cattle.io" in names


def test_crds_dir_is_overridable_and_missing_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv(binaries.CRDS_ENV, str(tmp_path))
    with pytest.raises(binaries.KubeError, match=binaries.CRDS_ENV):
        binaries.crds_dir()
    (tmp_path / "x.yaml").write_text("{}\n")
    assert binaries.crds_dir() == tmp_path
    monkeypatch.delenv(binaries.CRDS_ENV)
    assert binaries.crds_dir() == REPO.parent / "shared" / "kube-crds"


def test_missing_binaries_say_make_kube(tmp_path, monkeypatch):
    monkeypatch.setenv(binaries.BIN_DIR_ENV, str(tmp_path))
    with pytest.raises(binaries.BinariesMissing, match="make kube"):
        binaries.check_binaries()


def test_kube_cluster_fixture_fails_loudly_without_binaries(tmp_path):
    """Not a skip: a session without `make kube` errors, naming `make kube`."""
    (tmp_path / "conftest.py").write_text((REPO / "tests" / "conftest.py").read_text())
    (tmp_path / "test_needs_kube.py").write_text("def test_x(kube_cluster):\n    pass\n")
    env = {**os.environ, binaries.BIN_DIR_ENV: str(tmp_path / "empty")}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1, proc.stdout
    assert "1 error" in proc.stdout
    assert "skipped" not in proc.stdout
    assert "make kube" in proc.stdout


def test_processes_are_recorded_stopped_and_never_confused_with_a_reused_pid(tmp_path):
    proc = processes.spawn("sleeper", ["/bin/sleep", "300"], tmp_path)
    assert processes.alive(proc)
    [loaded] = processes.load(tmp_path)
    assert loaded == proc
    # Same pid, different start time: that would be another process; never treated as ours.
    impostor = processes.Proc(proc.name, proc.pid, "1", proc.executable, proc.log)
    assert not processes.alive(impostor)
    processes.stop(impostor)  # does not signal it
    assert processes.alive(proc)
    processes.stop(proc, timeout=5)
    assert not processes.alive(proc)
    assert processes.load(tmp_path) == []


def test_a_process_ignoring_sigterm_is_killed(tmp_path):
    script = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)"
    proc = processes.spawn("stubborn", [sys.executable, "-c", script], tmp_path)
    time.sleep(0.5)  # let it install the handler
    started = time.monotonic()
    processes.stop(proc, timeout=1)
    assert not processes.alive(proc)
    assert time.monotonic() - started < 5
