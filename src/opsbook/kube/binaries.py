"""Where the k3s test server and etcdctl are (`make kube`: tests/kube/build.sh)."""

from __future__ import annotations

import os
from pathlib import Path

from opsbook.paths import project_root

BINARIES = ("k3s", "etcdctl")
# Same variable as tests/kube/build.sh: where `make kube` puts bin/.
BIN_DIR_ENV = "KUBE_BIN_DIR"


class KubeError(RuntimeError):
    """The k3s test server could not be built, started, reached or stopped."""


class BinariesMissing(KubeError):
    """`make kube` has not been run (or KUBE_BIN_DIR points elsewhere)."""


def cache_dir() -> Path:
    return project_root() / ".cache" / "kube"


def bin_dir() -> Path:
    env = os.environ.get(BIN_DIR_ENV)
    return Path(env) if env else cache_dir() / "bin"


def binary(name: str) -> Path:
    return bin_dir() / name


def airgap_dir(version: str) -> Path:
    """`.cache/kube/airgap/<version>/`: the test server as `k3s` plus `sha256sum-amd64.txt`,
    the layout of a k3s release's air-gap files."""
    return cache_dir() / "airgap" / version


def check_binaries(names: tuple[str, ...] = BINARIES) -> Path:
    """The binary directory; raise BinariesMissing (saying `make kube`) if any is missing."""
    directory = bin_dir()
    missing = [n for n in names if not os.access(directory / n, os.X_OK)]
    if missing:
        raise BinariesMissing(
            f"k3s test server binaries missing from {directory}: {', '.join(missing)}. "
            "Build them with `make kube` (tests/kube/build.sh; about 4-8 minutes cold, "
            f"seconds when cached), or point {BIN_DIR_ENV} at a directory that has them."
        )
    return directory


def k3s_version() -> str:
    """The pinned k3s release: `k3s_version` in roles/k3s/defaults/main.yml (its one pin)."""
    import yaml

    defaults = project_root() / "roles" / "k3s" / "defaults" / "main.yml"
    return str(yaml.safe_load(defaults.read_text())["k3s_version"])


def build_versions() -> dict[str, str]:
    """tests/kube/versions.env (what the test server is built from), plus K3S_VERSION."""
    path = project_root() / "tests" / "kube" / "versions.env"
    pairs = [line.split("=", 1) for line in path.read_text().splitlines()]
    values = {k: v for k, v in (p for p in pairs if len(p) == 2) if not k.startswith("#")}
    return {**values, "K3S_VERSION": k3s_version()}


def etcdctl_argv(
    data_dir: str | Path, endpoint: str = "https://127.0.0.1:2379", etcdctl: str | Path = ""
) -> list[str]:
    """etcdctl with the etcd client certificate of k3s's data dir `data_dir` (k3s:
    pkg/daemons/control/deps/deps.go: server/tls/etcd/server-ca.crt, client.crt, client.key).
    The one place these flags are written; `data_dir` may be a path on a lab node."""
    tls = Path(data_dir) / "server" / "tls" / "etcd"
    return [
        str(etcdctl or binary("etcdctl")),
        f"--endpoints={endpoint}",
        f"--cacert={tls / 'server-ca.crt'}",
        f"--cert={tls / 'client.crt'}",
        f"--key={tls / 'client.key'}",
    ]
