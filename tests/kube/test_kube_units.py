"""opsbook.kube pieces without a running server: addresses, processes, the binaries check."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from opsbook.kube import binaries, processes, testserver

REPO = Path(__file__).resolve().parents[2]


def test_free_address_skips_an_address_whose_port_is_taken():
    first = testserver.free_address()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((first, 2379))
        sock.listen()
        second = testserver.free_address()
    assert first != second
    assert first.startswith("127.0.0.")
    assert second.startswith("127.0.0.")


def test_airgap_dir_is_per_version():
    assert (
        binaries.airgap_dir("v1.36.4+k3s1") == REPO / ".cache" / "kube" / "airgap" / "v1.36.4+k3s1"
    )


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
