"""The test control plane (kube_cluster): real API, controllers and scheduler, kwok nodes.

Each test works in its own namespace and asserts on what the real controllers did with the
pod states kwok's stages (tests/kube/kwok-stages.yaml) produced.
"""

from __future__ import annotations

import base64
import datetime
import json
import secrets
from pathlib import Path

import kubernetes
import pytest

from opsbook.kube import ControlPlane
from opsbook.kube.nodes import KWOK_ANNOTATION, NODE_PREFIX

pytestmark = pytest.mark.kube
REPO = Path(__file__).resolve().parents[2]


def _deployment(name: str, image: str, replicas: int = 1, deadline: int = 600) -> str:
    return json.dumps(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {
                "replicas": replicas,
                "progressDeadlineSeconds": deadline,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "main", "image": image}]},
                },
            },
        }
    )


def _job(name: str, image: str) -> str:
    return json.dumps(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": name},
            "spec": {
                "backoffLimit": 0,
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "main", "image": image}],
                    }
                },
            },
        }
    )


def _pods(kube: ControlPlane, ns: str, selector: str) -> list[dict]:
    return kube.kubectl_json("get", "pods", "-n", ns, "-l", selector)["items"]


def _condition(obj: dict, kind: str) -> dict:
    return next((c for c in obj["status"].get("conditions", []) if c["type"] == kind), {})


def test_fake_nodes_are_ready_untainted_and_keep_their_leases(kube_cluster: ControlPlane):
    nodes = kube_cluster.kubectl_json("get", "nodes")["items"]
    assert sorted(n["metadata"]["name"] for n in nodes) == [f"{NODE_PREFIX}{i}" for i in (1, 2, 3)]
    for node in nodes:
        assert node["metadata"]["annotations"][KWOK_ANNOTATION] == "fake"
        assert node["metadata"]["labels"]["type"] == "kwok"
        assert not node["spec"].get("taints"), "fake nodes must take pods without tolerations"
        assert _condition(node, "Ready")["status"] == "True"
    # kwok renews the node Lease (--node-lease-duration-seconds); without it the node-lifecycle
    # controller would mark the nodes NotReady after ~50 s.
    lease = kube_cluster.kubectl_json("get", "lease", "-n", "kube-node-lease", f"{NODE_PREFIX}1")
    assert lease["spec"]["holderIdentity"]  # kwok's identity
    assert lease["spec"]["leaseDurationSeconds"] == 40
    renewed = datetime.datetime.fromisoformat(lease["spec"]["renewTime"])
    age = datetime.datetime.now(datetime.UTC) - renewed
    assert age < datetime.timedelta(seconds=40), f"lease renewed {age} ago"


def test_deployment_becomes_available_on_kwok_nodes(kube_cluster: ControlPlane, kube_namespace):
    ns = kube_namespace
    kube_cluster.kubectl("apply", "-n", ns, "-f", "-", input=_deployment("web", "web:1", 3))
    kube_cluster.kubectl(
        "wait", "-n", ns, "--for=condition=Available", "deployment/web", "--timeout=60s"
    )
    deploy = kube_cluster.kubectl_json("get", "-n", ns, "deployment/web")
    assert deploy["status"]["readyReplicas"] == 3
    pods = _pods(kube_cluster, ns, "app=web")
    assert len(pods) == 3
    for pod in pods:
        assert pod["spec"]["nodeName"].startswith(NODE_PREFIX), "scheduled by kube-scheduler"
        assert pod["status"]["phase"] == "Running"
        assert pod["status"]["podIP"].startswith("10.42.")


def test_job_completes(kube_cluster: ControlPlane, kube_namespace):
    ns = kube_namespace
    kube_cluster.kubectl("apply", "-n", ns, "-f", "-", input=_job("migrate", "tools:1"))
    kube_cluster.kubectl(
        "wait", "-n", ns, "--for=condition=Complete", "job/migrate", "--timeout=60s"
    )
    job = kube_cluster.kubectl_json("get", "-n", ns, "job/migrate")
    assert job["status"]["succeeded"] == 1
    [pod] = _pods(kube_cluster, ns, "job-name=migrate")
    assert pod["status"]["phase"] == "Succeeded"
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0


def test_job_with_kwok_fails_marker_ends_failed(kube_cluster: ControlPlane, kube_namespace):
    ns = kube_namespace
    image = "registry.example/backup-kwok-fails:2"  # the marker anywhere in the image
    kube_cluster.kubectl("apply", "-n", ns, "-f", "-", input=_job("backup", image))
    kube_cluster.kubectl("wait", "-n", ns, "--for=condition=Failed", "job/backup", "--timeout=60s")
    job = kube_cluster.kubectl_json("get", "-n", ns, "job/backup")
    assert _condition(job, "Failed")["reason"] == "BackoffLimitExceeded"
    assert not _condition(job, "Complete")
    [pod] = _pods(kube_cluster, ns, "job-name=backup")
    assert pod["status"]["phase"] == "Failed"
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 1


def test_never_ready_deployment_hits_its_progress_deadline(
    kube_cluster: ControlPlane, kube_namespace
):
    ns = kube_namespace
    manifest = _deployment("stuck", "app-kwok-never-ready:1", replicas=2, deadline=3)
    kube_cluster.kubectl("apply", "-n", ns, "-f", "-", input=manifest)
    kube_cluster.kubectl(
        "wait",
        "-n",
        ns,
        "--for=jsonpath={.status.conditions[?(@.type=='Progressing')].reason}"
        "=ProgressDeadlineExceeded",
        "deployment/stuck",
        "--timeout=60s",
    )
    deploy = kube_cluster.kubectl_json("get", "-n", ns, "deployment/stuck")
    assert _condition(deploy, "Progressing")["status"] == "False"
    assert _condition(deploy, "Available")["status"] == "False"
    assert not deploy["status"].get("readyReplicas")
    pods = _pods(kube_cluster, ns, "app=stuck")
    assert len(pods) == 2
    for pod in pods:
        assert pod["status"]["phase"] == "Running"
        assert _condition(pod, "Ready")["status"] == "False"
        assert "running" in pod["status"]["containerStatuses"][0]["state"]


def test_secrets_are_encrypted_at_rest_in_etcd(kube_cluster: ControlPlane, kube_namespace):
    ns = kube_namespace
    plaintext = "opsbook-" + secrets.token_hex(12)
    for kind in ("secret", "configmap"):
        kube_cluster.kubectl(
            "create", kind, *(["generic"] if kind == "secret" else []), "probe", "-n", ns,
            f"--from-literal=value={plaintext}",
        )  # fmt: skip
    stored = kube_cluster.etcd_get(f"/registry/secrets/{ns}/probe")
    assert stored.startswith(b"k8s:enc:aescbc:v1:key1:"), stored[:40]
    assert plaintext.encode() not in stored
    # The same read of a ConfigMap (not encrypted) shows the value: the etcd read is real.
    assert plaintext.encode() in kube_cluster.etcd_get(f"/registry/configmaps/{ns}/probe")
    # ...and the API still decrypts the Secret.
    data = kube_cluster.kubectl_json("get", "secret", "probe", "-n", ns)["data"]
    assert base64.b64decode(data["value"]).decode() == plaintext


def test_shared_crds_are_served(kube_cluster: ControlPlane, kube_namespace):
    ns = kube_namespace
    crds = kube_cluster.kubectl("get", "crd", "-o", "name").stdout.split()
    for name in ("ingressroutes.traefik.io", "middlewares.traefik.io", "helmcharts.helm.cattle.io"):
        assert f"customresourcedefinition.apiextensions.k8s.io/{name}" in crds
    route = {
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "IngressRoute",
        "metadata": {"name": "web"},
        "spec": {
            "entryPoints": ["websecure"],
            "routes": [
                {
                    "match": "Host(`example.test`)",
                    "kind": "Rule",
                    "services": [{"name": "web", "port": 80}],
                }
            ],
        },
    }
    kube_cluster.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(route))
    got = kube_cluster.kubectl_json("get", "ingressroute.traefik.io/web", "-n", ns)
    assert got["spec"]["routes"][0]["match"] == "Host(`example.test`)"
    # The CRD's schema is enforced: `kind` must be `Rule`.
    route["spec"]["routes"][0]["kind"] = "NotAKind"
    bad = kube_cluster.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(route), check=False)
    assert bad.returncode != 0
    assert "NotAKind" in bad.stderr or "Unsupported value" in bad.stderr


def test_all_components_run(kube_cluster: ControlPlane):
    status = kube_cluster.status()
    assert status["api_ready"] is True
    assert all(p["running"] for p in status["processes"].values()), status["processes"]
    pinned = dict(
        line.split("=", 1)
        for line in (REPO / "tests" / "kube" / "versions.env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    version = kube_cluster.kubectl_json("version")
    assert version["serverVersion"]["gitVersion"] == pinned["KUBE_VERSION"]
    # The `kubernetes` Python client works with the same kubeconfig.
    core = kubernetes.client.CoreV1Api(kube_cluster.api_client())
    assert len(core.list_node(label_selector="type=kwok").items) == 3
