"""playbooks/ufw-cf-refresh.yml against three lab nodes, with the range lists served from a
local HTTP server on 127.0.0.1: the rules follow list changes exactly, a no-op is fast and
changes nothing, every bad input fails with its reason and leaves every node byte-for-byte
unchanged, the lock keeps two refreshes apart, and failures reach the webhook."""

from __future__ import annotations

import fcntl
import json
import os
import random
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from firewall_helpers import (
    CF_V4,
    CF_V6,
    FIREWALL,
    REFRESH,
    lab_states,
)

from cloudflare_server import CfServer, Route
from opsbook.lab import lab as labmod
from playbook_run import PlaybookResult, ansible_env, ansible_playbook

pytestmark = pytest.mark.lab

NEW_V4 = "45.64.64.0/22"
GONE_V4 = "131.0.72.0/22"
NODES = {"node1", "node2", "node3"}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    name = f"fw-refresh-{os.getpid() % 100000}"
    specs = [
        labmod.NodeSpec("node1", "debian12", ("k3s_servers",)),
        labmod.NodeSpec("node2", "debian13", ("k3s_servers",)),
        labmod.NodeSpec("node3", "debian12", ("k3s_agents",)),
    ]
    try:
        lab = labmod.up(name, specs, log=lambda _m: None)
        # Baseline: the whole role with the bundled list (the lab's inventory setting).
        # ssh_port 22: sshd stays on 22 here (no ssh role), like production after the move.
        proc = ansible_playbook(FIREWALL, {"ssh_port": 22}, inventory=lab.inventory)
        assert proc.returncode == 0, proc.stdout[-3000:]
        yield lab
    finally:
        labmod.down(name, log=lambda _m: None)


@pytest.fixture
def lock_file(tmp_path) -> Path:
    return tmp_path / "locks" / "cf.lock"


def refresh(lab, server: CfServer, lock_file: Path, kinds=("json", "text"), diff=False, **extra):
    extra_vars = {
        "ssh_port": 22,
        "firewall_cloudflare_source": "fetch",
        "firewall_cloudflare_sources": server.sources(kinds),
        "firewall_cloudflare_timeout": 2,
        "firewall_cloudflare_lock_file": str(lock_file),
        "firewall_cloudflare_lock_wait": 2,
        **extra,
    }
    return ansible_playbook(
        REFRESH, extra_vars, *(["--diff"] if diff else []), inventory=lab.inventory
    )


def changed(proc: PlaybookResult) -> dict[str, int]:
    """Each node's changed count (the recap must have every node of the lab, and only those)."""
    assert set(proc.recap) == NODES, proc.stdout[-3000:]
    return {host: c["changed"] for host, c in proc.recap.items()}


def test_rules_follow_the_list_exactly(lab, cf_server, lock_file):
    cf_server.serve_lists(CF_V4, CF_V6, "etag-1")
    first = refresh(lab, cf_server, lock_file)
    assert first.returncode == 0, first.stdout[-3000:]
    base = lab_states(lab)
    for state in base.values():
        assert sorted(state.cloudflare_sources()) == sorted(CF_V4 + CF_V6)
        recorded = json.loads(state.state_file)
        assert recorded["etag"] == "etag-1"
        assert recorded["origin"].startswith("http://127.0.0.1")

    # unchanged list: no ufw command, changed=0, files byte-for-byte the same (its time is
    # measured by `make bench` (refresh_noop_3), not asserted here: the test machine's load swings)
    noop = refresh(lab, cf_server, lock_file)
    assert noop.returncode == 0, noop.stdout[-3000:]
    assert set(changed(noop).values()) == {0}
    assert lab_states(lab) == base

    # add a range: exactly one rule more on every node, nothing else touched
    cf_server.serve_lists([*CF_V4, NEW_V4], CF_V6, "etag-2")
    added = refresh(lab, cf_server, lock_file, diff=True)
    assert added.returncode == 0, added.stdout[-3000:]
    assert set(changed(added).values()) == {1}
    after = lab_states(lab)
    for node, state in after.items():
        old = base[node].rule_lines()
        new = state.rule_lines()
        assert [line for line in new if line not in old] == [
            f"443/tcp ALLOW {NEW_V4} # opsbook:firewall:cloudflare"
        ]
        assert [line for line in old if line not in new] == []
        assert state.user6_rules == base[node].user6_rules
    assert f"+in allow tcp from {NEW_V4} to 0.0.0.0/0 port 443" in added.stdout  # --diff

    # remove a range: exactly that rule goes
    cf_server.serve_lists([v for v in [*CF_V4, NEW_V4] if v != GONE_V4], CF_V6, "etag-3")
    removed = refresh(lab, cf_server, lock_file)
    assert removed.returncode == 0, removed.stdout[-3000:]
    now = lab_states(lab)
    for node, state in now.items():
        old = after[node].rule_lines()
        assert [line for line in old if line not in state.rule_lines()] == [
            f"443/tcp ALLOW {GONE_V4} # opsbook:firewall:cloudflare"
        ]
        assert len(state.rule_lines()) == len(old) - 1

    # reorder (same set, new etag not even needed): nothing changes at all
    shuffled_v4 = [v for v in [*CF_V4, NEW_V4] if v != GONE_V4]
    random.Random(7).shuffle(shuffled_v4)
    cf_server.serve_lists(shuffled_v4, list(reversed(CF_V6)), "etag-3")
    reordered = refresh(lab, cf_server, lock_file)
    assert reordered.returncode == 0, reordered.stdout[-3000:]
    assert set(changed(reordered).values()) == {0}
    assert lab_states(lab) == now

    # the JSON API down: the text lists are used (and back to the real list)
    cf_server.serve_lists(CF_V4, CF_V6, "etag-4")
    cf_server.routes["/client/v4/ips"] = Route(status=503, body=b"unavailable")
    fallback = refresh(lab, cf_server, lock_file)
    assert fallback.returncode == 0, fallback.stdout[-3000:]
    for state in lab_states(lab).values():
        assert sorted(state.cloudflare_sources()) == sorted(CF_V4 + CF_V6)
        assert "/ips-v4" in json.loads(state.state_file)["origin"]


def _json_doc(v4, v6, success=True):
    return json.dumps(
        {"success": success, "result": {"ipv4_cidrs": v4, "ipv6_cidrs": v6, "etag": "bad"}}
    ).encode()


BAD_INPUTS = {
    "http-error": (Route(status=500, body=b"oops"), "HTTP error 500"),
    "timeout": (Route(delay=4, body=_json_doc(CF_V4, CF_V6)), "timed out after 2s"),
    "redirect-loop": (
        Route(status=302, headers={"Location": "/client/v4/ips"}),
        "redirect loop",
    ),
    "html": (
        Route(
            body=b"<!DOCTYPE html><title>Just a moment...</title>",
            headers={"Content-Type": "text/html"},
        ),
        "HTML page instead of a list",
    ),
    "empty-body": (Route(body=b""), "empty response body"),
    "truncated": (Route(body=_json_doc(CF_V4, CF_V6), truncate_to=150), "truncated response"),
    "success-false": (Route(body=_json_doc(CF_V4, CF_V6, success=False)), "success=false"),
    "invalid-cidr": (Route(body=_json_doc([*CF_V4, "104.16.0.0/35"], CF_V6)), "not a valid CIDR"),
    "wrong-family": (Route(body=_json_doc([*CF_V4, "2606:4700::/32"], CF_V6)), "an IPv6 range"),
    "absurd-size": (
        Route(body=_json_doc([f"45.{i // 250}.{i % 250}.0/24" for i in range(1500)], CF_V6)),
        "1500 IPv4 ranges, more than the maximum 1000",
    ),
    "too-few": (Route(body=_json_doc(CF_V4[:3], CF_V6)), "only 3 IPv4 range(s)"),
    "too-large-shrink": (
        Route(
            body=_json_doc(
                [f"45.{i}.0.0/16" for i in range(10)], [f"2a0{i}:1000::/32" for i in range(5)]
            )
        ),
        "refusing to remove 22 of the 22 Cloudflare ranges",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_fails_with_its_reason_and_changes_nothing(lab, cf_server, lock_file, case):
    route, reason = BAD_INPUTS[case]
    cf_server.serve_lists(CF_V4, CF_V6)
    before = lab_states(lab)
    assert sorted(before["node1"].cloudflare_sources()) == sorted(CF_V4 + CF_V6)
    cf_server.routes["/client/v4/ips"] = route
    proc = refresh(
        lab, cf_server, lock_file, kinds=("json",),
        firewall_cloudflare_webhook_url=cf_server.url("/hook"),
    )  # fmt: skip
    assert proc.returncode != 0
    assert reason in proc.stdout, proc.stdout[-3000:]
    assert lab_states(lab) == before  # every node, byte for byte (rules and state file)
    hooks = [json.loads(body) for path, body in cf_server.posts if path == "/hook"]
    assert len(hooks) == 1, cf_server.posts
    assert hooks[0]["text"].startswith("opsbook cf-refresh failed")
    assert reason in hooks[0]["text"]


def test_truncated_text_list_is_refused(lab, cf_server, lock_file):
    cf_server.serve_lists(CF_V4, CF_V6)
    cf_server.routes["/ips-v4"] = Route(body="\n".join(CF_V4).encode()[:-6])  # "131.0.7"
    before = lab_states(lab)
    proc = refresh(lab, cf_server, lock_file, kinds=("text",))
    assert proc.returncode != 0
    assert "'131.0.7' is not a valid CIDR" in proc.stdout
    assert lab_states(lab) == before


def test_force_applies_a_large_shrink_and_back(lab, cf_server, lock_file):
    other_v4 = [f"45.{i}.0.0/16" for i in range(10)]
    other_v6 = [f"2a0{i}:1000::/32" for i in range(5)]
    cf_server.serve_lists(other_v4, other_v6)
    forced = refresh(lab, cf_server, lock_file, firewall_cloudflare_force=True)
    assert forced.returncode == 0, forced.stdout[-3000:]
    for state in lab_states(lab).values():
        assert sorted(state.cloudflare_sources()) == sorted(other_v4 + other_v6)
    cf_server.serve_lists(CF_V4, CF_V6)
    refused = refresh(lab, cf_server, lock_file)
    assert refused.returncode != 0
    assert "refusing to remove 15 of the 15" in refused.stdout
    back = refresh(lab, cf_server, lock_file, firewall_cloudflare_force=True)
    assert back.returncode == 0, back.stdout[-3000:]
    for state in lab_states(lab).values():
        assert sorted(state.cloudflare_sources()) == sorted(CF_V4 + CF_V6)


def test_a_second_refresh_waits_then_gives_up(lab, cf_server, lock_file):
    cf_server.serve_lists([*CF_V4, NEW_V4], CF_V6)
    before = lab_states(lab)
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another run holds it
        held.write(json.dumps({"owner_pid": 4242, "since": "a while"}))
        held.flush()
        proc = refresh(lab, cf_server, lock_file)
    assert proc.returncode != 0
    assert "another Cloudflare rules update is running (pid 4242" in proc.stdout
    assert "waited 2s, giving up" in proc.stdout
    assert lab_states(lab) == before
    # the lock is free again: the same refresh now goes through
    ok = refresh(lab, cf_server, lock_file)
    assert ok.returncode == 0, ok.stdout[-3000:]


def test_two_refreshes_at_once_one_runs_one_gives_up(lab, cf_server, lock_file):
    cf_server.serve_lists(CF_V4, CF_V6)
    extra = {
        "ssh_port": 22,
        "firewall_cloudflare_source": "fetch",
        "firewall_cloudflare_sources": cf_server.sources(("json",)),
        "firewall_cloudflare_lock_file": str(lock_file),
        "firewall_cloudflare_lock_wait": 1,
    }
    with ThreadPoolExecutor(2) as pool:  # the two runs at once
        runs = list(
            pool.map(
                lambda _: ansible_playbook(REFRESH, extra, inventory=lab.inventory, timeout=300),
                range(2),
            )
        )
    outputs = [(p.stdout + p.stderr, p.returncode) for p in runs]
    codes = sorted(rc for _, rc in outputs)
    assert codes[0] == 0, outputs
    assert codes[1] != 0, outputs
    loser = next(out for out, rc in outputs if rc != 0)
    assert "another Cloudflare rules update is running" in loser


def test_scheduled_command_exits_non_zero_and_posts(lab, cf_server, lock_file, tmp_path):
    """The service the timer starts runs `opsbook cf-refresh`; a failure is a non-zero exit."""
    from opsbook import schedule

    help_text = subprocess.run(
        [str(schedule.opsbook_executable()), "--help"], capture_output=True, text=True, check=False
    ).stdout
    assert "cf-refresh" in help_text, help_text
    cf_server.serve_lists(CF_V4, CF_V6)
    cf_server.routes["/client/v4/ips"] = Route(body=_json_doc(CF_V4, CF_V6, success=False))
    extra = {
        "ssh_port": 22,
        "firewall_cloudflare_source": "fetch",
        "firewall_cloudflare_sources": cf_server.sources(("json",)),
        "firewall_cloudflare_lock_file": str(lock_file),
        "firewall_cloudflare_webhook_url": cf_server.url("/hook"),
    }
    service = schedule.render_service(
        schedule.JOBS["cf-refresh"],
        schedule.opsbook_executable(),
        ["-i", str(lab.inventory), "-e", json.dumps(extra)],
        Path(os.environ.get("OPSBOOK_ROOT", ".")),
        None,
    )
    exec_start = next(line for line in service.splitlines() if line.startswith("ExecStart="))
    command = exec_start.split("=", 1)[1].replace("%%", "%").replace("$$", "$")
    before = lab_states(lab)
    proc = subprocess.run(
        ["sh", "-c", command], capture_output=True, text=True, env=ansible_env(), timeout=300,
        check=False,
    )  # fmt: skip
    assert proc.returncode != 0, proc.stdout[-2000:]
    assert lab_states(lab) == before
    hooks = [json.loads(body) for path, body in cf_server.posts if path == "/hook"]
    assert len(hooks) == 1
    assert "success=false" in hooks[0]["text"]
