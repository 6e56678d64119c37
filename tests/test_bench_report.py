"""The benchmark's arithmetic and report: targets, ratios, results.json and the README table.

The measurements themselves need the lab and run in `make bench`, never in the test suite.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from bench import cpu, report
from bench.__main__ import main as bench_main
from bench.__main__ import targets
from bench.stats import Measurement

MACHINE = {
    "machine": {"cores": 2, "cpu": "test cpu", "memory_gib": 24},
    "versions": {"opsbook": "0.0", "ansible-core": "2.19"},
}


def _m(name: str, *samples: float, cpu: tuple[float, ...] = ()) -> Measurement:
    return Measurement(name, name.replace("_", " "), list(samples), cpu_samples=list(cpu))


def test_median_min_max_ignore_sample_order() -> None:
    data = _m("x", 9.0, 1.0, 5.0, 3.0, 7.0).to_json()
    assert (data["median"], data["min"], data["max"]) == (5.0, 1.0, 9.0)


def test_targets_compare_medians_and_ratios_against_their_limits() -> None:
    found = {
        t.name: t
        for t in targets(
            {
                m.name: m
                for m in [
                    _m("harden_noop_3", 9, 9, 9),
                    _m("scaling_noop_3", 10, 12, 11, cpu=(15, 16, 14)),
                    _m("scaling_noop_12", 30, 31, 29, cpu=(58, 60, 62)),
                    _m("refresh_noop_3", 3, 4, 5),
                    _m("harden_noop_3_opsbook", 10.4, 10.5, 10.6),
                    _m("harden_noop_3_ansible", 10, 10, 10),
                ]
            },
            cores=2,
        )
    }
    # the quiet no-op, not the scaling run's 3-node figure (taken beside 18 other nodes)
    assert found["no-op harden, 3 nodes (s)"].value == 9
    assert found["no-op harden, 3 nodes (s)"].met
    assert found["no-op refresh, 3 nodes (s)"].value == 4
    scaling = found["no-op 12 nodes / 3 nodes"]
    assert round(scaling.value, 3) == round(30 / 11, 3)
    assert not scaling.met
    # 60 CPU-seconds on 2 cores: at least 30 s here, 2.7 times the 3-node median of 11 s
    assert "60.0 CPU-seconds" in scaling.why
    assert "4.0 times the 3-node run's 15.0" in scaling.why
    assert "under 30.0 s here (2.7 times" in scaling.why
    overhead = found["driver overhead (opsbook / ansible-playbook)"]
    assert round(overhead.value, 2) == 1.05
    assert not overhead.met


def test_only_measured_targets_are_reported() -> None:
    assert [t.name for t in targets({"refresh_noop_3": _m("refresh_noop_3", 2)}, 2)] == [
        "no-op refresh, 3 nodes (s)"
    ]


def test_write_replaces_only_the_marked_readme_section(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{report.BEGIN}\nold table\n{report.END}\noutro\n")
    slow = {"no-op": [{"task": "Read the rules", "seconds": 1.5}]}
    data = report.results(MACHINE, [_m("harden_noop_3", 11, 12, 13)], [], slow, 3)
    report.write(data, tmp_path / "bench" / "results.json", readme)

    text = readme.read_text()
    assert text.startswith("intro\n")
    assert text.endswith(f"{report.END}\noutro\n")
    assert "old table" not in text
    assert "| harden noop 3 | 12 | 11 | 13 |" in text
    assert "1. Read the rules: 1.5" in text
    saved = json.loads((tmp_path / "bench" / "results.json").read_text())
    assert saved["measurements"][0]["samples"] == [11, 12, 13]
    assert saved["runs_per_figure"] == 3


def test_scaling_rows_show_seconds_per_node() -> None:
    m = _m("scaling_noop_12", 24, 24, 24)
    m.notes["seconds_per_node"] = 2.0
    table = report.markdown(report.results(MACHINE, [m], [], {}, 3))
    assert "| scaling noop 12 (2.0 s per node) | 24 | 24 | 24 |  |" in table


def test_a_missed_target_says_why_in_the_json_and_the_table() -> None:
    big = _m("scaling_noop_12", 40, cpu=(80,))
    small = _m("scaling_noop_3", 10, cpu=(20,))
    found = targets({m.name: m for m in (big, small)}, cores=2)
    data = report.results(MACHINE, [big, small], found, {}, 1)
    (scaling,) = [t for t in data["targets"] if t["name"] == "no-op 12 nodes / 3 nodes"]
    assert scaling["met"] is False
    assert scaling["why"].startswith("CPU-bound here")
    assert f"Missed, no-op 12 nodes / 3 nodes: {scaling['why']}." in report.markdown(data)
    assert "| scaling noop 3 | 10 | 10 | 10 | 20 |" in report.markdown(data)


def test_busy_cpu_seconds_count_every_busy_field_but_idle_and_iowait(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    ticks = os.sysconf("SC_CLK_TCK")
    # user nice system idle iowait irq softirq steal guest guest_nice
    stat.write_text(f"cpu  {ticks} {ticks} {ticks} 999999 999999 {ticks} {ticks} {ticks} 7 7\n")
    assert cpu.busy_seconds(stat) == 6.0


def test_busy_cpu_seconds_grow_while_this_process_works() -> None:
    before = cpu.busy_seconds()
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:
        pass
    assert cpu.busy_seconds() - before >= 0.2


def test_render_recomputes_the_targets_from_the_stored_samples(tmp_path: Path) -> None:
    measured = [_m("harden_noop_3", 20, 21, 22, cpu=(30, 31, 32))]
    stale = report.results(MACHINE, measured, [], {}, 3)  # written before a target existed
    assert Measurement.from_json(stale["measurements"][0]) == measured[0]
    stale["targets"] = [{"name": "old rule", "value": 1, "limit": 2, "met": True}]
    out = tmp_path / "results.json"
    out.write_text(json.dumps(stale))
    readme = tmp_path / "README.md"
    readme.write_text(f"{report.BEGIN}\n{report.END}\n")

    assert bench_main(["--render", "--out", str(out)], readme) == 0

    (target,) = json.loads(out.read_text())["targets"]
    assert target == {"name": "no-op harden, 3 nodes (s)", "value": 21, "limit": 15, "met": False}
    assert "| no-op harden, 3 nodes (s) | 21 | < 15 | **no** |" in readme.read_text()
