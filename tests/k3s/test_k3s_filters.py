"""The k3s role's filters (roles/k3s/filter_plugins/k3s.py) on hand-made inputs."""

from __future__ import annotations

from typing import Any

import pytest

from role_filters import load_filters

f = load_filters("k3s")
V = "v1.36.4+k3s1"


def node(name: str, ready: str | None = "True", version: str = V, etcd: bool = True,
         voter: str | None = "True") -> dict[str, Any]:  # fmt: skip
    conditions = [{"type": t, "status": s} for t, s in (("Ready", ready), ("EtcdIsVoter", voter))
                  if s is not None]  # fmt: skip
    labels = {"node-role.kubernetes.io/etcd": "true"} if etcd else {}
    status = {"conditions": conditions, "nodeInfo": {"kubeletVersion": version}}
    return {"metadata": {"name": name, "labels": labels}, "status": status}


def nodes(*items: dict[str, Any]) -> dict[str, Any]:
    return {"items": list(items)}


def test_a_healthy_server_has_no_problem():
    assert f.k3s_node_health_problem(nodes(node("a"), node("b")), "a", V, True) == ""


@pytest.mark.parametrize(
    ("items", "server", "problem"),
    [
        ((node("b"),), True, "no Node a registered"),
        ((node("a", ready="Unknown"),), True, "Node a is Ready=Unknown"),
        ((node("a", ready=None),), True, "Node a is Ready=missing"),
        ((node("a", version="v1.36.3+k3s1"),), True, "Node a runs v1.36.3+k3s1, not " + V),
        ((node("a"), node("b", voter="False"), node("c", voter=None)), True,
         "etcd members not voting (EtcdIsVoter not True): b, c"),
    ],
)  # fmt: skip
def test_each_problem_is_named(items, server, problem):
    assert f.k3s_node_health_problem(nodes(*items), "a", V, server) == problem


def test_an_agent_does_not_wait_for_etcd_votes():
    cluster = nodes(node("a", etcd=False, voter=None), node("b", voter="False"))
    assert f.k3s_node_health_problem(cluster, "a", V, False) == ""
    assert f.k3s_node_health_problem(cluster, "a", V, "false") == ""


def test_only_etcd_nodes_are_counted_as_not_voting():
    cluster = nodes(node("a", etcd=False, voter=None), node("b", voter="False"))
    assert f.k3s_not_voting(cluster) == ["b"]


def test_token_password_and_url_host():
    assert f.k3s_token_password("K10abc::server:s3cret") == "s3cret"
    assert f.k3s_token_password("K10abc::server") == ""
    assert f.k3s_token_password(" plain ") == "plain"
    assert f.k3s_url_host("fd00::1") == "[fd00::1]"
    assert f.k3s_url_host("10.0.0.1") == "10.0.0.1"
    assert f.k3s_url_host("node1") == "node1"


@pytest.mark.parametrize(
    ("installed", "wanted", "problem"),
    [
        ("", V, ""),
        (V, V, ""),
        ("v1.36.3+k3s1", V, ""),
        ("v1.35.9+k3s2", V, ""),
        (V, "v1.36.3+k3s1", "older than the installed"),
        ("v1.34.1+k3s1", V, "skips a minor release"),
    ],
)
def test_upgrade_problem(installed, wanted, problem):
    got = f.k3s_upgrade_problem(installed, wanted)
    assert (problem in got) if problem else got == ""


def test_a_version_that_is_not_a_k3s_release_is_refused():
    with pytest.raises(ValueError, match="not a k3s release version"):
        f.k3s_version_key("1.36.4")


ROLE_ARGS = {
    "kube-apiserver-arg": ["audit-log-maxage=30", "service-account-extend-token-expiration=false"],
    "kube-controller-manager-arg": ["terminated-pod-gc-threshold=100"],
    "kubelet-arg": [],
}


def test_the_role_args_go_first_and_the_inventory_entries_after():
    config = {
        "kube-apiserver-arg": ["v=2"],
        "kube-controller-manager-arg": "bind-address=127.0.0.1",
    }
    merged = f.k3s_merge_args(config, ROLE_ARGS)
    assert merged["kube-apiserver-arg"] == [
        "audit-log-maxage=30",
        "service-account-extend-token-expiration=false",
        "v=2",
    ]
    assert merged["kube-controller-manager-arg"] == [
        "terminated-pod-gc-threshold=100",
        "bind-address=127.0.0.1",
    ]
    assert "kubelet-arg" not in merged
    assert config["kube-apiserver-arg"] == ["v=2"]


def test_an_empty_role_list_leaves_the_inventory_entries_alone():
    assert f.k3s_merge_args({"kubelet-arg": ["max-pods=50"]}, ROLE_ARGS)["kubelet-arg"] == [
        "max-pods=50"
    ]


def test_inventory_entries_for_the_role_flags_are_named_with_or_without_dashes():
    config = {
        "kube-apiserver-arg": ["--audit-log-maxage=7", "v=2"],
        "kube-controller-manager-arg": ["terminated-pod-gc-threshold=10"],
        "kubelet-arg": ["terminated-pod-gc-threshold=10"],
    }
    assert f.k3s_owned_args(config, ROLE_ARGS) == [
        "kube-apiserver-arg audit-log-maxage",
        "kube-controller-manager-arg terminated-pod-gc-threshold",
    ]
    assert f.k3s_owned_args({"kube-apiserver-arg": "v=2"}, ROLE_ARGS) == []
