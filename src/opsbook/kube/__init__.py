"""The test control plane: real Kubernetes (etcd, kube-apiserver, controller-manager,
scheduler) on 127.0.0.1 with kwok-simulated worker nodes, built by `make kube`."""

from opsbook.kube.binaries import BinariesMissing, KubeError
from opsbook.kube.controlplane import ControlPlane

__all__ = ["BinariesMissing", "ControlPlane", "KubeError"]
