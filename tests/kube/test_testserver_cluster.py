"""The session's k3s test-server cluster (kube_cluster): real API, controllers and scheduler,
one server and two agents whose kubelets kwok plays.

Each test works in its own namespace and asserts on what the real controllers did with the
pod states kwok's stages (tests/kube/k3s/internal/nodes/kwok-stages.yaml) produced.
"""

from __future__ import annotations

import base64
import datetime
import json
import secrets
from pathlib import Path

import kubernetes
import pytest

from opsbook.kube import TestCluster, binaries

pytestmark = pytest.mark.kube
REPO = Path(__file__).resolve().parents[2]
PINNED = binaries.build_versions()


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


def _pods(kube: TestCluster, ns: str, selector: str) -> list[dict]:
    return kube.kubectl_json("get", "pods", "-n", ns, "-l", selector)["items"]


def _condition(obj: dict, kind: str) -> dict:
    return next((c for c in obj["status"].get("conditions", []) if c["type"] == kind), {})


NODES = ["pytest-agent-1", "pytest-agent-2", "pytest-server"]


def test_nodes_are_ready_untainted_with_k3s_roles_and_keep_their_leases(kube_cluster: TestCluster):
    nodes = {n["metadata"]["name"]: n for n in kube_cluster.kubectl_json("get", "nodes")["items"]}
    assert sorted(nodes) == NODES
    for node in nodes.values():
        assert not node["spec"].get("taints"), "nodes must take pods without tolerations"
        assert _condition(node, "Ready")["status"] == "True"
        assert node["status"]["nodeInfo"]["kubeletVersion"] == PINNED["K3S_VERSION"]
        assert node["spec"]["providerID"] == "k3s://" + node["metadata"]["name"]
    server = nodes["pytest-server"]["metadata"]
    assert server["labels"]["node-role.kubernetes.io/control-plane"] == "true"
    assert server["labels"]["node-role.kubernetes.io/etcd"] == "true"
    assert server["annotations"]["etcd.k3s.cattle.io/node-name"].startswith("pytest-server-")
    assert _condition(nodes["pytest-server"], "EtcdIsVoter") == {
        **_condition(nodes["pytest-server"], "EtcdIsVoter"),
        "status": "True",
        "reason": "MemberNotLearner",
        "message": "Node is a voting member of the etcd cluster",
    }
    agent = nodes["pytest-agent-1"]["metadata"]
    assert "node-role.kubernetes.io/control-plane" not in agent["labels"]
    # kwok renews the node Lease; without it the node-lifecycle controller would mark the
    # nodes NotReady after ~50 s.
    lease = kube_cluster.kubectl_json("get", "lease", "-n", "kube-node-lease", "pytest-agent-1")
    assert lease["spec"]["holderIdentity"]  # kwok's identity
    assert lease["spec"]["leaseDurationSeconds"] == 40
    renewed = datetime.datetime.fromisoformat(lease["spec"]["renewTime"])
    age = datetime.datetime.now(datetime.UTC) - renewed
    assert age < datetime.timedelta(seconds=40), f"lease renewed {age} ago"


def test_deployment_becomes_available_across_the_nodes(kube_cluster: TestCluster, kube_namespace):
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
        assert pod["spec"]["nodeName"] in NODES, "scheduled by kube-scheduler"
        assert pod["status"]["phase"] == "Running"
        assert pod["status"]["podIP"].startswith("10.42.")
    # Each node has its own pod range from the controller-manager (--allocate-node-cidrs).
    assert len({p["status"]["podIP"].rsplit(".", 1)[0] for p in pods}) >= 2


def test_job_completes(kube_cluster: TestCluster, kube_namespace):
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


def test_job_with_kwok_fails_marker_ends_failed(kube_cluster: TestCluster, kube_namespace):
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
    kube_cluster: TestCluster, kube_namespace
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


def test_crashloop_deployment_is_available_while_its_restarts_climb(
    kube_cluster: TestCluster, kube_namespace
):
    ns = kube_namespace
    manifest = _deployment("loops", "app-kwok-crashloop:1", replicas=1, deadline=30)
    kube_cluster.kubectl("apply", "-n", ns, "-f", "-", input=manifest)
    kube_cluster.kubectl(
        "wait", "-n", ns, "--for=condition=Available", "deployment/loops", "--timeout=60s"
    )
    kube_cluster.kubectl(
        "wait", "-n", ns, "--for=jsonpath={.status.containerStatuses[0].restartCount}=2",
        "pod", "-l", "app=loops", "--timeout=60s",
    )  # fmt: skip
    [pod] = _pods(kube_cluster, ns, "app=loops")
    status = pod["status"]["containerStatuses"][0]
    assert status["lastState"]["terminated"]["reason"] == "Error"
    assert status["lastState"]["terminated"]["exitCode"] == 137
    assert "running" in status["state"]
    assert _condition(pod, "Ready")["status"] == "True"  # Ready through it all
    deploy = kube_cluster.kubectl_json("get", "-n", ns, "deployment/loops")
    assert _condition(deploy, "Available")["status"] == "True"


def test_secrets_are_encrypted_at_rest_in_etcd(kube_cluster: TestCluster, kube_namespace):
    ns = kube_namespace
    plaintext = "opsbook-" + secrets.token_hex(12)
    for kind in ("secret", "configmap"):
        kube_cluster.kubectl(
            "create", kind, *(["generic"] if kind == "secret" else []), "probe", "-n", ns,
            f"--from-literal=value={plaintext}",
        )  # fmt: skip
    stored = kube_cluster.etcd_get(f"/registry/secrets/{ns}/probe")
    assert stored.startswith(b"k8s:enc:aescbc:v1:aescbckey:"), stored[:40]
    assert plaintext.encode() not in stored
    # The same read of a ConfigMap (not encrypted) shows the value: the etcd read is real.
    assert plaintext.encode() in kube_cluster.etcd_get(f"/registry/configmaps/{ns}/probe")
    # ...and the API still decrypts the Secret.
    data = kube_cluster.kubectl_json("get", "secret", "probe", "-n", ns)["data"]
    assert base64.b64decode(data["value"]).decode() == plaintext


def test_shared_crds_are_served(kube_cluster: TestCluster, kube_namespace):
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


def test_all_processes_run_and_the_api_reports_the_k3s_version(kube_cluster: TestCluster):
    status = kube_cluster.status()
    assert status["api_ready"] is True
    assert all(p["running"] for p in status["processes"].values()), status["processes"]
    assert sorted(status["processes"]) == ["k3s-agent-1", "k3s-agent-2", "k3s-server"]
    version = kube_cluster.kubectl_json("version")
    # k3s stamps its own version into Kubernetes; the code is KUBE_VERSION's.
    assert version["serverVersion"]["gitVersion"] == PINNED["K3S_VERSION"]
    # The `kubernetes` Python client works with the same kubeconfig.
    core = kubernetes.client.CoreV1Api(kube_cluster.api_client())
    assert len(core.list_node().items) == 3
