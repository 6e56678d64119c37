"""The lab's pure logic: mirrors, node specs, groups and the generated inventory."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsbook.lab import image
from opsbook.lab.inventory import inventory_data
from opsbook.lab.lab import Lab, LabError, Node, NodeSpec, default_specs


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
