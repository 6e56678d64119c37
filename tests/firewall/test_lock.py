"""The controller-side lock: a real flock held by a detached process for as long as the
ansible-playbook process that took it lives."""

from __future__ import annotations

import os
import subprocess
import sys
import time


def _wait_gone(pid: int, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} still alive")


def test_second_taker_waits_then_gives_up_and_lock_dies_with_owner(lockmod, tmp_path):
    path = str(tmp_path / "locks" / "cf.lock")
    owner = subprocess.Popen(["sleep", "60"])
    try:
        status, holder = lockmod.acquire(path, 2, owner.pid, "refresh")
        assert status == "ok"
        started = time.monotonic()
        second_owner = subprocess.Popen(["sleep", "60"])
        try:
            status2, detail = lockmod.acquire(path, 1, second_owner.pid, "refresh")
            waited = time.monotonic() - started
            assert status2 == "busy"
            assert f"pid {owner.pid}" in detail
            assert 0.9 <= waited < 5
            owner.kill()
            owner.wait()
            _wait_gone(holder)  # the holder notices its owner is gone and exits
            status3, holder3 = lockmod.acquire(path, 2, second_owner.pid, "refresh")
            assert status3 == "ok"
        finally:
            second_owner.kill()
            second_owner.wait()
        _wait_gone(holder3)
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()


def test_waiting_taker_gets_the_lock_when_the_first_run_ends(lockmod, tmp_path):
    path = str(tmp_path / "cf.lock")
    first = subprocess.Popen(["sleep", "1"])
    second = subprocess.Popen(["sleep", "30"])
    try:
        assert lockmod.acquire(path, 1, first.pid, "x")[0] == "ok"
        status, _holder = lockmod.acquire(path, 10, second.pid, "x")
        assert status == "ok"  # waited for `first` to exit, then took it
    finally:
        second.kill()
        second.wait()
        first.wait()


def test_finds_the_outermost_ansible_playbook_ancestor(lockmod, tmp_path):
    fake = tmp_path / "ansible-playbook"
    fake.symlink_to(sys.executable)
    lib = lockmod.__file__
    child = (
        "import importlib.util,sys;"
        f"s=importlib.util.spec_from_file_location('l', {lib!r});"
        "m=importlib.util.module_from_spec(s);"
        "s.loader.exec_module(m);print(m.find_playbook_pid())"
    )
    outer = (
        "import os,subprocess;"
        f"out=subprocess.run([{sys.executable!r},'-c',{child!r}],"
        "capture_output=True,text=True).stdout.strip();"
        "print(os.getpid(), out)"
    )
    proc = subprocess.run([str(fake), "-c", outer], capture_output=True, text=True, check=True)
    pid, found = proc.stdout.split()
    assert pid == found
    assert lockmod.find_playbook_pid() is None  # pytest is not run by ansible-playbook
