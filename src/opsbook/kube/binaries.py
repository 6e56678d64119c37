"""Where the test control plane's binaries, kwok stages and CRDs are."""

from __future__ import annotations

import os
from pathlib import Path

from opsbook.paths import project_root

BINARIES = (
    "etcd",
    "etcdctl",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kwok",
)
# Same variable as tests/kube/build.sh: where `make kube` puts the binaries.
BIN_DIR_ENV = "KUBE_BIN_DIR"
CRDS_ENV = "OPSBOOK_KUBE_CRDS"
STAGES_ENV = "OPSBOOK_KWOK_STAGES"


class KubeError(RuntimeError):
    """The test control plane could not be built, started, reached or stopped."""


class BinariesMissing(KubeError):
    """`make kube` has not been run (or KUBE_BIN_DIR points elsewhere)."""


def bin_dir() -> Path:
    env = os.environ.get(BIN_DIR_ENV)
    return Path(env) if env else project_root() / ".cache" / "kube" / "bin"


def binary(name: str) -> Path:
    return bin_dir() / name


def check_binaries(names: tuple[str, ...] = BINARIES) -> Path:
    """The binary directory; raise BinariesMissing (saying `make kube`) if any is missing."""
    directory = bin_dir()
    missing = [n for n in names if not os.access(directory / n, os.X_OK)]
    if missing:
        raise BinariesMissing(
            f"test control plane binaries missing from {directory}: {', '.join(missing)}. "
            "Build them with `make kube` (tests/kube/build.sh; about 8-17 minutes cold, "
            f"seconds when cached), or point {BIN_DIR_ENV} at a directory that has them."
        )
    return directory


def stages_file() -> Path:
    """kwok's Stage configuration: $OPSBOOK_KWOK_STAGES, else tests/kube/kwok-stages.yaml."""
    env = os.environ.get(STAGES_ENV)
    path = Path(env) if env else project_root() / "tests" / "kube" / "kwok-stages.yaml"
    if not path.is_file():
        raise KubeError(f"kwok stages file {path} not found (set {STAGES_ENV} to override)")
    return path


def crds_dir() -> Path:
    """CRDs applied at start-up: $OPSBOOK_KUBE_CRDS, else `../shared/kube-crds/`.

    The repository refers to them as `../shared/kube-crds/` relative to the checkout, so the
    default is resolved against the parent of the project root.
    """
    env = os.environ.get(CRDS_ENV)
    path = Path(env) if env else project_root().parent / "shared" / "kube-crds"
    if not path.is_dir() or not any(path.glob("*.yaml")):
        raise KubeError(
            f"CRD directory {path} not found or has no *.yaml files "
            f"(set {CRDS_ENV} to the directory holding the traefik.io and helm.cattle.io CRDs)"
        )
    return path
