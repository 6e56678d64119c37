"""playbooks/apps.yml (cluster_security + app_rollout) on the k3s test server: a real
Kubernetes API, controllers and scheduler, with kwok nodes whose pods follow the image
markers (`kwok-fails`: the pod fails with exit code 1; `kwok-never-ready`: never Ready).

The tests of this module share one namespace and run in file order, like a sequence of deploys
of one system: v1 is deployed, deployed again (nothing changes), v2 is planned with --check
(nothing changes), a v2 whose migration fails stops before any Deployment, a v3 whose api never
becomes ready is rolled back, and a v4 deploys cleanly afterwards (old Jobs cleaned up).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from apps_helpers import (
    INVENTORY,
    NODE_CIDRS,
    ROOT,
    base_vars,
    secret_values,
    self_signed_cert,
)

from playbook_run import PlaybookResult, ansible_env, ansible_playbook

pytestmark = pytest.mark.kube

APPS = ROOT / "playbooks" / "apps.yml"
REGISTRY = "registry.example/honeydue"
NAMES = ("api", "worker", "web", "admin")


@pytest.fixture(scope="module")
def ns(kube_cluster: Any) -> Any:
    name = "apps-e2e"
    yield name
    kube_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="module")
def settings(kube_cluster: Any, ns: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    cert, key = self_signed_cert(tmp_path_factory.mktemp("tls"))
    return {
        **base_vars(cert, key),
        "opsbook_kubeconfig": str(kube_cluster.kubeconfig),
        "opsbook_app_namespace": ns,
        # short timings for kwok (the controllers are real, the pods are simulated)
        "app_rollout_progress_deadline_seconds": 10,
        "app_rollout_rollout_timeout": 60,
        "app_rollout_rollback_timeout": 60,
        "app_rollout_poll_interval": 1,
        "app_rollout_migration_backoff_limit": 0,
        "app_rollout_migration_active_deadline_seconds": 60,
    }


def deploy(settings: dict, release: str, *args: str, **extra: Any) -> PlaybookResult:
    proc = ansible_playbook(
        APPS, {**settings, "app_release": release, **extra}, *args, inventory=INVENTORY
    )
    out = proc.stdout + proc.stderr
    for value in secret_values(settings):
        assert value not in out, "a secret value was printed"
    return proc


def images(cluster: Any, ns: str) -> dict[str, str]:
    items = cluster.kubectl_json("get", "deployments", "-n", ns)["items"]
    return {
        d["metadata"]["name"]: d["spec"]["template"]["spec"]["containers"][0]["image"]
        for d in items
        if d["metadata"]["name"] in NAMES
    }


def available(cluster: Any, ns: str) -> dict[str, bool]:
    out = {}
    for d in cluster.kubectl_json("get", "deployments", "-n", ns)["items"]:
        spec, status = d["spec"], d.get("status", {})
        out[d["metadata"]["name"]] = (
            status.get("observedGeneration") == d["metadata"]["generation"]
            and status.get("updatedReplicas") == spec["replicas"]
            and status.get("availableReplicas") == spec["replicas"]
            and status.get("replicas") == spec["replicas"]
        )
    return out


def release_images(release: str, **overrides: str) -> dict[str, str]:
    return {n: f"{REGISTRY}/honeydue-{n}:{overrides.get(n, release)}" for n in NAMES}


def jobs(cluster: Any, ns: str) -> dict[str, str]:
    out = {}
    for job in cluster.kubectl_json("get", "jobs", "-n", ns)["items"]:
        conds = {c["type"]: c["status"] for c in job.get("status", {}).get("conditions", [])}
        state = (
            "Complete"
            if conds.get("Complete") == "True"
            else ("Failed" if conds.get("Failed") == "True" else "Running")
        )
        out[job["metadata"]["name"]] = state
    return out


def versions(cluster: Any, ns: str) -> dict[str, str]:
    """What the roles manage in the namespace: each object without its status (controllers
    update statuses, and the HPA the api's replica count, on their own)."""
    kinds = "deployments,services,jobs,secrets,networkpolicies,ingresses,poddisruptionbudgets,"
    kinds += "horizontalpodautoscalers,cronjobs,configmaps,middlewares.traefik.io"
    out = {}
    for i in cluster.kubectl_json("get", kinds, "-n", ns)["items"]:
        meta = i["metadata"]
        spec = dict(i.get("spec") or {})
        if i["kind"] == "Deployment":
            spec.pop("replicas", None)
        view = {
            "spec": spec,
            "data": i.get("data"),
            "labels": meta.get("labels"),
            "annotations": meta.get("annotations"),
            "generation": meta.get("generation") if i["kind"] != "Deployment" else None,
        }
        out[f"{i['kind']}/{meta['name']}"] = json.dumps(view, sort_keys=True)
    return out


def test_a_release_rolls_out_end_to_end(kube_cluster: Any, ns: str, settings: dict) -> None:
    proc = deploy(settings, "v1")
    assert proc.returncode == 0, proc.stdout[-5000:]
    assert images(kube_cluster, ns) == release_images("v1")
    assert all(available(kube_cluster, ns).values()), available(kube_cluster, ns)
    assert list(jobs(kube_cluster, ns).values()) == ["Complete"]
    # the security objects are there, with the inventory's node IPs for Traefik
    policy = kube_cluster.kubectl_json("get", "networkpolicy", "allow-api", "-n", ns)
    cidrs = [
        p["ipBlock"]["cidr"] for r in policy["spec"]["ingress"] for p in r["from"] if "ipBlock" in p
    ]
    assert sorted(cidrs) == sorted([*NODE_CIDRS, "10.42.0.0/16"])
    mws = kube_cluster.kubectl_json("get", "middlewares.traefik.io", "-n", ns)["items"]
    assert {m["metadata"]["name"] for m in mws} == {"security-headers", "rate-limit", "admin-auth"}
    tls = kube_cluster.kubectl_json("get", "secret", "cloudflare-origin-cert", "-n", ns)
    assert tls["type"] == "kubernetes.io/tls"
    cron = kube_cluster.kubectl_json("get", "cronjob", "db-backup", "-n", ns)
    assert (
        cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["initContainers"][0]["name"]
        == "dump"
    )
    api = kube_cluster.kubectl_json("get", "deployment", "api", "-n", ns)
    env = api["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {
        "name": "REDIS_PASSWORD",
        "valueFrom": {"secretKeyRef": {"name": "redis-auth", "key": "password"}},
    } in env
    # the api's replicas come from its HPA (min 2), not from the role
    hpa = kube_cluster.kubectl_json("get", "hpa", "api", "-n", ns)
    assert hpa["spec"]["scaleTargetRef"]["name"] == "api"


def test_a_second_deploy_of_the_same_release_changes_nothing(
    kube_cluster: Any, ns: str, settings: dict
) -> None:
    before = versions(kube_cluster, ns)
    proc = deploy(settings, "v1")
    assert proc.returncode == 0, proc.stdout[-5000:]
    # neither cluster_security nor app_rollout changes anything
    assert proc.host("localhost")["changed"] == 0, proc.stdout[-5000:]
    after = versions(kube_cluster, ns)
    changed = {k for k in before if after.get(k) != before[k]}
    assert not changed, changed
    assert set(after) == set(before)
    assert images(kube_cluster, ns) == release_images("v1")


def test_deploy_check_prints_the_plan_and_changes_nothing(
    kube_cluster: Any, ns: str, settings: dict, tmp_path: Path
) -> None:
    before = versions(kube_cluster, ns)
    with tempfile.NamedTemporaryFile("w", suffix=".json", dir=tmp_path, delete=False) as f:
        json.dump(settings, f)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "opsbook.cli",
            "deploy",
            "--release",
            "v2",
            "--check",
            "-i",
            str(INVENTORY),
            "-e",
            f"@{f.name}",
        ],
        env={**ansible_env(), "OPSBOOK_STATE_DIR": str(tmp_path / "state")},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    plan = proc.stdout.split("PLAY [")[0]
    assert "DEPLOY PLAN" in plan
    assert "check mode" in plan
    for name in NAMES:
        assert f"{name}: {REGISTRY}/honeydue-{name}:v1 -> {REGISTRY}/honeydue-{name}:v2" in plan
    assert versions(kube_cluster, ns) == before
    assert images(kube_cluster, ns) == release_images("v1")
    for value in secret_values(settings):
        assert value not in proc.stdout + proc.stderr
        for path in (tmp_path / "state").rglob("*"):
            if path.is_file():
                assert value not in path.read_text(errors="replace"), path


def test_a_failed_migration_leaves_the_old_version_serving(
    kube_cluster: Any, ns: str, settings: dict
) -> None:
    proc = deploy(settings, "v2-kwok-fails", "--skip-tags", "cluster-security")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "Migration Job" in out
    assert "failed" in out
    assert "No Deployment was changed" in out
    # kwok has no kubelet: no logs, the pod's status instead (exit code 1)
    assert "exitCode=1" in out
    failed = [n for n, s in jobs(kube_cluster, ns).items() if "kwok-fails" in n]
    assert failed
    assert jobs(kube_cluster, ns)[failed[0]] == "Failed"
    assert images(kube_cluster, ns) == release_images("v1")
    assert all(available(kube_cluster, ns).values())


def test_an_api_that_never_becomes_ready_is_rolled_back(
    kube_cluster: Any, ns: str, settings: dict
) -> None:
    proc = deploy(
        settings,
        "v3",
        "--skip-tags",
        "cluster-security",
        app_rollout_release_overrides={"api": "v3-kwok-never-ready"},
        # the never-ready marker would also keep the migration pod from completing
        app_rollout_migration_image=f"{REGISTRY}/honeydue-api:v3",
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "Deployment api failed: ProgressDeadlineExceeded" in out, out[-4000:]
    assert "rolled back" in out
    assert "they are available again" in out
    # api and worker (updated in the same wave) are back on v1; web and admin were never touched
    assert images(kube_cluster, ns) == release_images("v1")
    assert all(available(kube_cluster, ns).values()), available(kube_cluster, ns)
    rs = kube_cluster.kubectl_json(
        "get", "replicasets", "-n", ns, "-l", "app.kubernetes.io/name=api"
    )
    never = [
        r
        for r in rs["items"]
        if "never-ready" in r["spec"]["template"]["spec"]["containers"][0]["image"]
    ]
    assert never
    assert all(r["spec"]["replicas"] == 0 for r in never)


def test_a_later_release_deploys_and_old_jobs_are_cleaned_up(
    kube_cluster: Any, ns: str, settings: dict
) -> None:
    proc = deploy(
        settings, "v4", "--skip-tags", "cluster-security", app_rollout_migration_jobs_keep=2
    )
    assert proc.returncode == 0, proc.stdout[-5000:]
    assert images(kube_cluster, ns) == release_images("v4")
    remaining = jobs(kube_cluster, ns)
    assert len(remaining) == 2, remaining
    assert any("v4" in n for n in remaining), remaining
