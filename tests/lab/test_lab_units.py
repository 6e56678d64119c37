"""The lab's pure logic: mirrors, node specs, groups and the generated inventory."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from opsbook.lab import image
from opsbook.lab import lab as labmod
from opsbook.lab.inventory import inventory_data
from opsbook.lab.lab import Lab, LabError, Node, NodeSpec, default_specs
from opsbook.lab.podman import PodmanError


def test_host_mirrors_reads_deb822_and_one_line_sources(tmp_path: Path) -> None:
    deb822 = tmp_path / "debian.sources"
    deb822.write_text(
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\n\n"
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n"
    )
    assert image.host_mirrors([deb822]) == (
        "http://mirror.example/debian",
        "http://mirror.example/debian-security",
    )
    one_line = tmp_path / "sources.list"
    one_line.write_text("deb [arch=amd64] http://other.example/debian/ bookworm main\n")
    assert image.host_mirrors([one_line]) == (
        "http://other.example/debian",
        "http://other.example/debian-security",
    )


def test_image_tag_changes_with_the_recipe(monkeypatch: pytest.MonkeyPatch) -> None:
    before = image.image_ref("debian12")
    assert before.startswith("localhost/opsbook-node:debian12-")
    monkeypatch.setattr(image, "ROLE_PACKAGES", (*image.ROLE_PACKAGES, "htop"))
    assert image.image_ref("debian12") != before
    assert image.image_ref("debian13") != image.image_ref("debian12")


def test_unknown_os_is_refused() -> None:
    with pytest.raises(image.ImageError, match="unknown OS"):
        image.image_ref("ubuntu2404")


def test_node_spec_parsing() -> None:
    assert NodeSpec.parse("n1:debian13") == NodeSpec("n1", "debian13", ("k3s_servers",))
    assert NodeSpec.parse("a:debian12:k3s_agents,extra") == NodeSpec(
        "a", "debian12", ("k3s_agents", "extra")
    )
    for bad in ("n1", "N1:debian12", "n1:debian12:x:y"):
        with pytest.raises(LabError):
            NodeSpec.parse(bad)


@pytest.mark.parametrize(("count", "servers"), [(1, 1), (2, 1), (3, 3), (6, 3), (12, 3)])
def test_default_specs_make_an_odd_server_count(count: int, servers: int) -> None:
    specs = default_specs(count, "debian12")
    assert [s.name for s in specs] == [f"node{i}" for i in range(1, count + 1)]
    assert sum("k3s_servers" in s.groups for s in specs) == servers
    assert sum("k3s_agents" in s.groups for s in specs) == count - servers


def test_inventory_has_the_production_groups(tmp_path: Path) -> None:
    lab = Lab(
        "t",
        "opsbook-t",
        "10.123.5.0/24",
        "10.123.5.1",
        [
            Node("node1", "debian12", "10.123.5.11", "c1", ["k3s_servers"]),
            Node("node2", "debian13", "10.123.5.12", "c2", ["k3s_agents", "extra"]),
        ],
    )
    data = inventory_data(lab, tmp_path / "key")["all"]
    assert isinstance(data, dict)
    cluster = data["children"]["k3s_cluster"]["children"]
    assert cluster["k3s_servers"]["hosts"] == {
        "node1": {"ansible_host": "10.123.5.11", "node_ip": "10.123.5.11"}
    }
    assert set(cluster["k3s_agents"]["hosts"]) == {"node2"}
    assert set(data["children"]["extra"]["hosts"]) == {"node2"}
    assert data["vars"]["opsbook_lab_controller_ip"] == "10.123.5.1"
    assert data["vars"]["ansible_ssh_private_key_file"] == str(tmp_path / "key")


class _RacingPodman:
    """Stands in for podman in `down`'s retry logic only: the first `rm` fails as podman does
    when a container stops by itself while being killed; what is left is listed and removed.
    The real removal is tested against podman in test_lab_nodes.py."""

    def __init__(self, fail_times: int) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.fail_times = fail_times
        self.left = ["opsbook-x-n1", "opsbook-x-n2"]

    def __call__(
        self, *args: str, check: bool = True, **_kw: object
    ) -> subprocess.CompletedProcess[str]:
        self.calls.append(args)
        if args[0] == "ps":
            return subprocess.CompletedProcess(args, 0, "\n".join(self.left), "")
        if args[0] == "rm":
            if self.fail_times > 0:
                self.fail_times -= 1
                self.left = ["opsbook-x-n1"]
                if check:
                    raise PodmanError("container state improper: stopped")
                return subprocess.CompletedProcess(args, 125, "", "container state improper")
            self.left = []
        return subprocess.CompletedProcess(args, 0, "", "")


def test_down_removes_again_what_a_racing_rm_left(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = _RacingPodman(fail_times=1)
    monkeypatch.setattr(labmod, "podman", fake)
    monkeypatch.setattr(labmod, "lab_dir", lambda _name: tmp_path / "gone")
    labmod.down("x", log=lambda _m: None)
    rms = [c for c in fake.calls if c[0] == "rm"]
    assert rms[0][-2:] == ("opsbook-x-n1", "opsbook-x-n2")
    assert rms[1][-1:] == ("opsbook-x-n1",)
    assert len(rms) == 2


def test_down_raises_when_the_second_rm_fails(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(labmod, "podman", _RacingPodman(fail_times=2))
    monkeypatch.setattr(labmod, "lab_dir", lambda _name: tmp_path / "gone")
    with pytest.raises(PodmanError):
        labmod.down("x", log=lambda _m: None)
