"""CustomResourceDefinitions the tests need that Kubernetes does not build in.

Traefik's traefik.io and k3s's helm.cattle.io definitions, copied from upstream into
`../shared/kube-crds/` (see opsbook.kube.binaries.crds_dir). Applied server-side: the
Traefik CRDs are too large for the last-applied annotation of a client-side apply.
"""

from __future__ import annotations

from pathlib import Path

import yaml


def crd_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.yaml"))


def crd_names(directory: Path) -> list[str]:
    """metadata.name of every CustomResourceDefinition in the directory's YAML files."""
    names = []
    for path in crd_files(directory):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                names.append(doc["metadata"]["name"])
    return sorted(names)


def apply_args(directory: Path) -> list[str]:
    """kubectl arguments that apply every CRD file of the directory."""
    args = ["apply", "--server-side", "--field-manager=opsbook-test"]
    for path in crd_files(directory):
        args += ["-f", str(path)]
    return args
