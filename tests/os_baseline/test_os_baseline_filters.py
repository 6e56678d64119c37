"""The os_baseline role's filters: the sysctl plan on a real node and in a container, and the
readings of login.defs and /etc/shadow."""

from __future__ import annotations

import pytest
import yaml

from role_filters import ROOT, load_filters

F = load_filters("os_baseline")
NAMESPACED = yaml.safe_load((ROOT / "roles/os_baseline/vars/main.yml").read_text())[
    "__os_baseline_sysctl_namespaced"
]
DEFAULTS = yaml.safe_load((ROOT / "roles/os_baseline/defaults/main.yml").read_text())

RUNNING = """net.ipv4.conf.all.rp_filter = 1
net.ipv4.ip_forward = 1
kernel.kptr_restrict = 0
net.ipv4.ip_local_port_range = 32768\t60999
"""
WANTED = {
    "net.ipv4.conf.all.rp_filter": 2,
    "net.ipv4.ip_forward": 1,
    "kernel.kptr_restrict": 1,
    "net.ipv4.ip_local_port_range": "32768 60999",
    "net.core.bpf_jit_harden": 2,
    "net.ipv6.conf.all.accept_redirects": 0,
}


def test_sysctl_values_read_the_kernels_output() -> None:
    values = F.sysctl_values(RUNNING)
    assert values["net.ipv4.ip_local_port_range"] == "32768 60999"
    assert values["kernel.kptr_restrict"] == "0"


def test_on_a_real_node_every_setting_is_live() -> None:
    plan = F.sysctl_plan(WANTED, F.sysctl_values(RUNNING), False, NAMESPACED)
    assert plan["boot"] == []
    assert plan["differ"] == {
        "net.ipv4.conf.all.rp_filter": ["1", "2"],
        "kernel.kptr_restrict": ["0", "1"],
        "net.core.bpf_jit_harden": [None, "2"],  # not read: missing from the kernel's answer
        "net.ipv6.conf.all.accept_redirects": [None, "0"],
    }
    assert sorted(plan["set"]) == [
        "kernel.kptr_restrict=1",
        "net.core.bpf_jit_harden=2",
        "net.ipv4.conf.all.rp_filter=2",
        "net.ipv6.conf.all.accept_redirects=0",
    ]


def test_in_a_container_only_its_network_namespace_is_touched() -> None:
    plan = F.sysctl_plan(WANTED, F.sysctl_values(RUNNING), True, NAMESPACED)
    # kernel.* and net.core.* belong to the host: written to the file, never set here
    assert plan["boot"] == ["kernel.kptr_restrict", "net.core.bpf_jit_harden"]
    assert set(plan["differ"]) == {
        "net.ipv4.conf.all.rp_filter",
        "net.ipv6.conf.all.accept_redirects",
    }
    assert not any(s.startswith(("kernel.", "vm.", "fs.", "net.core.")) for s in plan["set"])


def test_the_defaults_in_a_container_set_no_host_setting() -> None:
    plan = F.sysctl_plan(DEFAULTS["os_baseline_sysctl"], {}, True, NAMESPACED)
    assert all(k.startswith(("net.ipv4.", "net.ipv6.")) for k in plan["live"])
    assert {"vm.overcommit_memory", "kernel.panic", "fs.suid_dumpable"} <= set(plan["boot"])
    assert DEFAULTS["os_baseline_sysctl"]["net.ipv4.ip_forward"] == 1  # k3s needs it


def test_a_key_that_is_not_a_sysctl_is_refused() -> None:
    with pytest.raises(Exception, match="is not a sysctl key"):
        F.sysctl_plan({"kernel.panic; reboot": 1}, {}, False, NAMESPACED)


def test_login_defs_and_aging() -> None:
    assert F.login_defs("UMASK\t\t022\nPASS_MAX_DAYS\t99999\n") == {
        "UMASK": "022",
        "PASS_MAX_DAYS": "99999",
    }
    shadow = "alice:1:365:7\nbob:0:99999:7\n"
    assert F.aging_to_fix(shadow, 1, 365, 7) == ["bob"]
    assert F.aging_to_fix("", 1, 365, 7) == []


DAEMONS = yaml.safe_load((ROOT / "roles/os_baseline/vars/main.yml").read_text())[
    "__os_baseline_time_daemons"
]


def test_an_installed_time_daemon_is_not_swapped_for_another() -> None:
    conflicts = F.time_daemon_conflicts
    chrony = {"chrony": True, "systemd-timesyncd": False, "libpam-tmpdir": True}
    assert conflicts(chrony, "systemd-timesyncd", DAEMONS) == ["chrony"]  # refused
    assert conflicts(chrony, "chrony", DAEMONS) == []
    # the distribution's default may give way to chrony
    assert conflicts({"systemd-timesyncd": True}, "chrony", DAEMONS) == []
    assert conflicts({"ntp": True}, "chrony", DAEMONS) == ["ntp"]
    assert conflicts({}, "systemd-timesyncd", DAEMONS) == []
