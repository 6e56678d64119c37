"""The k3s test server on the controller: a single-server cluster (plus agents) on a loopback
address of its own, built by `make kube` from upstream Kubernetes, etcd and kwok. It is a
test double of k3s, not k3s: see the README's "k3s test server"."""

from opsbook.kube.binaries import BinariesMissing, KubeError
from opsbook.kube.testserver import TestCluster

__all__ = ["BinariesMissing", "KubeError", "TestCluster"]
