"""kwok: the simulated worker nodes and the kwok process that plays their kubelets.

Fake nodes carry the annotation `kwok.x-k8s.io/node=fake` (kwok manages only those) and the
label `type=kwok`. They are deliberately NOT tainted: the cluster has no real node, so
ordinary manifests (Deployments without tolerations) schedule onto them unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

KWOK_ANNOTATION = "kwok.x-k8s.io/node"
KWOK_ANNOTATION_VALUE = "fake"
NODE_LABEL = ("type", "kwok")
NODE_PREFIX = "kwok-node-"
POD_CIDR = "10.42.0.0/16"  # k3s's default cluster CIDR; kwok hands out pod IPs from it
NODE_IP_BASE = "10.44.0."  # fake InternalIPs, never routed: 10.44.0.<n>
# kwok renews each node's Lease with this duration; without it (the default with only Stages
# in --config is 0) no Lease is kept and the node-lifecycle controller marks the nodes
# NotReady every ~50 s.
LEASE_SECONDS = 40


def node_names(count: int) -> list[str]:
    return [f"{NODE_PREFIX}{i}" for i in range(1, count + 1)]


def node_manifest(name: str, index: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {
                KWOK_ANNOTATION: KWOK_ANNOTATION_VALUE,
                "node.alpha.kubernetes.io/ttl": "0",
            },
            "labels": {
                NODE_LABEL[0]: NODE_LABEL[1],
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "node-role.kubernetes.io/agent": "true",
            },
        },
        "spec": {},
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": f"{NODE_IP_BASE}{index}"},
                {"type": "Hostname", "address": name},
            ],
        },
    }


def nodes_list(count: int) -> dict[str, Any]:
    """A v1 List of `count` fake nodes (kwok-node-1..N), for `kubectl create -f -`."""
    return {
        "apiVersion": "v1",
        "kind": "List",
        "items": [node_manifest(n, i) for i, n in enumerate(node_names(count), start=1)],
    }


def kwok_args(binary: Path, kubeconfig: Path, stages: Path) -> list[str]:
    return [
        str(binary),
        f"--kubeconfig={kubeconfig}",
        f"--config={stages}",
        "--manage-all-nodes=false",
        f"--manage-nodes-with-annotation-selector={KWOK_ANNOTATION}={KWOK_ANNOTATION_VALUE}",
        f"--node-lease-duration-seconds={LEASE_SECONDS}",
        f"--cidr={POD_CIDR}",
    ]
