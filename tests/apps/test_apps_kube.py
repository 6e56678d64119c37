"""playbooks/apps.yml (cluster_security + app_rollout) on the k3s test server: a real
Kubernetes API, controllers and scheduler, with kwok nodes whose pods follow the image
markers (`kwok-fails`: the pod fails with exit code 1; `kwok-never-ready`: never Ready;
`kwok-crashloop`: Ready, then its containers restart every few seconds).

The tests of this module share one namespace and run in file order, like a sequence of deploys
of one system: v1 is deployed, deployed again (nothing changes), v2 is planned with --check
(nothing changes), a v2 whose migration fails stops before any Deployment, a v3 whose api never
becomes ready is rolled back, a v4 deploys cleanly afterwards (old Jobs cleaned up), and a v5
whose api pods restart after becoming Ready is rolled back by the soak check. Then
each node is drained in turn through the eviction API (the real disruption controller and
scheduler; kwok pods become Ready at once, so this shows the budgets and the spread, not how
long a real app takes to start).

The namespace enforces the restricted Pod Security level (cluster_security), so every pod the
deploys create is admitted under it; the pod templates are also dry-run as Pods into a
restricted namespace next to a privileged pod that is refused.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

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
# pods per app after a deploy (the api's from its HPA minimum), and the apps with a budget
REPLICAS = {"api": 2, "worker": 1, "web": 3, "admin": 2}
NODES = ("pytest-server", "pytest-agent-1", "pytest-agent-2")


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
        # kwok pods are Ready at once and restart only with the kwok-crashloop marker
        "app_rollout_soak_seconds": 3,
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


def pods_by_app(cluster: Any, ns: str) -> dict[str, list[dict]]:
    """The live (not terminating, not finished) pods of each app, with their node."""
    out: dict[str, list[dict]] = {n: [] for n in NAMES}
    for p in cluster.kubectl_json("get", "pods", "-n", ns)["items"]:
        app = p["metadata"].get("labels", {}).get("app.kubernetes.io/name")
        live = p["status"].get("phase") in ("Pending", "Running")
        if app in out and live and not p["metadata"].get("deletionTimestamp"):
            out[app].append(p)
    return out


def wait_for(what: str, check: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not {what} after {timeout}s")
        time.sleep(0.5)


def settled(cluster: Any, ns: str) -> bool:
    """Every app Available at its replica count, with exactly that many live pods."""
    pods = pods_by_app(cluster, ns)
    state = available(cluster, ns)
    return all(state.get(n) and len(pods[n]) == REPLICAS[n] for n in NAMES)


def test_the_pods_of_each_app_sit_on_different_nodes(kube_cluster: Any, ns: str) -> None:
    wait_for("settled (the HPA scales the api to 2)", lambda: settled(kube_cluster, ns))
    pods = pods_by_app(kube_cluster, ns)
    nodes = {app: sorted(p["spec"]["nodeName"] for p in pods[app]) for app in NAMES}
    assert len(set(nodes["web"])) == 3, nodes
    assert len(set(nodes["api"])) == 2, nodes
    assert len(set(nodes["admin"])) == 2, nodes
    assert set(nodes["web"]) == set(NODES)


def pod_templates(cluster: Any, ns: str) -> dict[str, dict]:
    """{kind/name: pod template} of the Deployments, Jobs and CronJobs the roles applied."""
    out = {}
    for d in cluster.kubectl_json("get", "deployments,jobs,cronjobs", "-n", ns)["items"]:
        template = (
            d["spec"]["template"]
            if d["kind"] != "CronJob"
            else (d["spec"]["jobTemplate"]["spec"]["template"])
        )
        out[f"{d['kind']}/{d['metadata']['name']}"] = template
    return out


def dry_run_pod(cluster: Any, ns: str, name: str, spec: dict) -> subprocess.CompletedProcess[str]:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns}}
    return cluster.kubectl(
        "apply", "--dry-run=server", "-f", "-", input=json.dumps({**pod, "spec": spec}), check=False
    )


def test_the_pods_meet_the_restricted_pod_security_level(
    kube_cluster: Any, ns: str, kube_namespace: str
) -> None:
    labels = kube_cluster.kubectl_json("get", "namespace", ns)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    for mode in ("enforce", "warn"):
        kube_cluster.kubectl(
            "label", "namespace", kube_namespace, f"pod-security.kubernetes.io/{mode}=restricted"
        )
    # the control: a privileged pod is refused there, so the check below can fail
    privileged = {
        "containers": [{"name": "c", "image": "busybox", "securityContext": {"privileged": True}}]
    }
    refused = dry_run_pod(kube_cluster, kube_namespace, "privileged", privileged)
    assert refused.returncode != 0
    assert "violates PodSecurity" in refused.stderr, refused.stderr
    templates = pod_templates(kube_cluster, ns)
    assert {"Deployment/web", "Deployment/redis", "CronJob/db-backup"} <= set(templates)
    assert any(k.startswith("Job/") for k in templates)
    for key, template in templates.items():
        proc = dry_run_pod(
            kube_cluster, kube_namespace, "dry-" + key.split("/")[1], template["spec"]
        )
        assert proc.returncode == 0, (key, proc.stderr)
        assert "Warning" not in proc.stderr, (key, proc.stderr)


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


def test_pods_that_restart_after_the_rollout_are_caught_by_the_soak_and_rolled_back(
    kube_cluster: Any, ns: str, settings: dict
) -> None:
    """The 2026-04-24 admin incident, on the api: Ready, Available, then restarted by its
    liveness probe over and over. kwok's kwok-crashloop marker keeps the pod Ready while its
    restart count climbs; the rollout gate alone would pass it, the soak check does not. (The
    migration Job runs the same image: the marker leaves Job pods alone.)"""
    proc = deploy(
        settings,
        "v5",
        "--skip-tags",
        "cluster-security",
        app_rollout_release_overrides={"api": "v5-kwok-crashloop"},
        app_rollout_soak_seconds=30,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "new pods restarted within the 30s soak after the rollout" in out, out[-4000:]
    assert re.search(
        r"Deployment api: pod api-[a-z0-9]+-[a-z0-9]+ container api restarted \d+ times?"
        r" after the rollout \(last termination: reason Error, exitCode 137\)",
        out,
    ), out[-4000:]
    assert "they are available again" in out
    # api and worker (the same wave) back on v4; web and admin were never touched
    assert images(kube_cluster, ns) == release_images("v4")
    assert all(available(kube_cluster, ns).values()), available(kube_cluster, ns)


def test_a_budget_that_cannot_be_drained_is_refused_before_anything_is_applied(
    kube_cluster: Any, settings: dict
) -> None:
    defaults = yaml.safe_load((ROOT / "roles/cluster_security/defaults/main.yml").read_text())
    rollout = yaml.safe_load((ROOT / "roles/app_rollout/defaults/main.yml").read_text())
    budget = [
        {**a, "pdb": {"minAvailable": 3}} if a["name"] == "web" else a
        for a in defaults["cluster_security_apps"]
    ]
    single = [
        {**a, "replicas": 1} if a["name"] == "web" else a for a in rollout["app_rollout_apps"]
    ]
    for extra, message in (
        ({"cluster_security_apps": budget}, "the budget minAvailable 3 with replicas 3 allows no"),
        (
            {"app_rollout_apps": single},
            "a PodDisruptionBudget (maxUnavailable 1 with replicas 1) on a 1-replica",
        ),
    ):
        name = "apps-refused"
        proc = deploy({**settings, "opsbook_app_namespace": name}, "v1", **extra)
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0
        assert f"app web: {message}" in " ".join(out.split()), out[-3000:]
        assert proc.host("localhost")["changed"] == 0
        gone = kube_cluster.kubectl("get", "namespace", name, check=False)
        assert gone.returncode != 0  # not even the namespace was created


class ReadyWatch:
    """Watches the namespace's pods and records, after every change, the fewest ready pods
    (Ready and not terminating, as the disruption controller counts them) each app had."""

    def __init__(self, cluster: Any, ns: str) -> None:
        from kubernetes import client

        self.core = client.CoreV1Api(cluster.api_client())
        self.ns = ns
        self.pods: dict[str, tuple[str, bool]] = {}
        self.lowest: dict[str, int] = {}
        self.events = 0
        self.stopped = threading.Event()
        self.error: BaseException | None = None
        listed = self.core.list_namespaced_pod(ns)
        for pod in listed.items:
            self._update(pod)
        self.version = listed.metadata.resource_version
        self._count()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _update(self, pod: Any, deleted: bool = False) -> None:
        app = (pod.metadata.labels or {}).get("app.kubernetes.io/name", "")
        conditions = {c.type: c.status for c in (pod.status.conditions or [])}
        ready = conditions.get("Ready") == "True" and pod.metadata.deletion_timestamp is None
        if deleted:
            self.pods.pop(pod.metadata.name, None)
        else:
            self.pods[pod.metadata.name] = (app, ready)

    def _count(self) -> None:
        counts = dict.fromkeys(NAMES, 0)
        for app, ready in self.pods.values():
            if ready and app in counts:
                counts[app] += 1
        for app, n in counts.items():
            self.lowest[app] = min(self.lowest.get(app, n), n)

    def _run(self) -> None:
        from kubernetes import watch

        try:
            while not self.stopped.is_set():
                for event in watch.Watch().stream(
                    self.core.list_namespaced_pod,
                    self.ns,
                    resource_version=self.version,
                    timeout_seconds=2,
                ):
                    pod = event["object"]
                    self.version = pod.metadata.resource_version
                    self._update(pod, deleted=event["type"] == "DELETED")
                    self._count()
                    self.events += 1
        except BaseException as exc:  # reported by stop()
            self.error = exc

    def stop(self) -> dict[str, int]:
        self.stopped.set()
        self.thread.join(10)
        if self.error:
            raise self.error
        return dict(self.lowest)


def evict(core: Any, name: str, ns: str, deadline: float) -> int:
    """Evict one pod through the eviction API, retrying while its budget refuses (429)."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    refused = 0
    body = client.V1Eviction(metadata=client.V1ObjectMeta(name=name, namespace=ns))
    while True:
        try:
            core.create_namespaced_pod_eviction(name, ns, body)
            return refused
        except ApiException as exc:
            if exc.status == 404:  # already gone
                return refused
            if exc.status != 429 or time.monotonic() > deadline:
                raise
            refused += 1
            time.sleep(0.3)


def test_draining_each_node_keeps_every_app_within_its_budget(kube_cluster: Any, ns: str) -> None:
    from kubernetes import client

    core = client.CoreV1Api(kube_cluster.api_client())
    wait_for("settled", lambda: settled(kube_cluster, ns))
    # after the rolling updates of v4 too, each revision is spread (matchLabelKeys)
    pods = pods_by_app(kube_cluster, ns)
    assert {p["spec"]["nodeName"] for p in pods["web"]} == set(NODES)
    pdbs = kube_cluster.kubectl_json("get", "poddisruptionbudgets", "-n", ns)["items"]
    budget = {p["metadata"]["name"]: REPLICAS[p["metadata"]["name"]] - 1 for p in pdbs}
    assert budget == {"api": 1, "web": 2, "admin": 1}
    assert all(p["spec"]["maxUnavailable"] == 1 for p in pdbs)
    watcher = ReadyWatch(kube_cluster, ns)
    try:
        for node in NODES:
            core.patch_node(node, {"spec": {"unschedulable": True}})
            try:
                deadline = time.monotonic() + 90
                on_node = [
                    p["metadata"]["name"]
                    for app in pods_by_app(kube_cluster, ns).values()
                    for p in app
                    if p["spec"].get("nodeName") == node
                ]
                assert on_node, node
                for name in on_node:
                    evict(core, name, ns, deadline)
                wait_for(f"settled after draining {node}", lambda: settled(kube_cluster, ns), 90)
                after = pods_by_app(kube_cluster, ns)
                assert not [p for a in after.values() for p in a if p["spec"]["nodeName"] == node]
            finally:
                core.patch_node(node, {"spec": {"unschedulable": None}})
    finally:
        lowest = watcher.stop()
    assert watcher.events > 0
    for app, minimum in budget.items():
        assert lowest[app] >= minimum, (app, lowest)
    # Whether a drain above met a refusal depends on how fast a replacement became Ready, so
    # the refusal itself is shown here, without a race: with every node cordoned a replacement
    # stays Pending, and after one web pod is evicted the budget (maxUnavailable 1) refuses the
    # next eviction (429) until the cordons are lifted.
    from kubernetes.client.rest import ApiException

    web = [p["metadata"]["name"] for p in pods_by_app(kube_cluster, ns)["web"]]
    for node in NODES:
        core.patch_node(node, {"spec": {"unschedulable": True}})
    try:
        # (the eviction API takes this one off the budget's disruptionsAllowed at once)
        evict(core, web[0], ns, time.monotonic() + 30)
        second = client.V1Eviction(metadata=client.V1ObjectMeta(name=web[1], namespace=ns))
        with pytest.raises(ApiException) as refusal:
            core.create_namespaced_pod_eviction(web[1], ns, second)
        assert refusal.value.status == 429, refusal.value
    finally:
        for node in NODES:
            core.patch_node(node, {"spec": {"unschedulable": None}})
    wait_for("settled after the refused eviction", lambda: settled(kube_cluster, ns), 90)
    nodes = kube_cluster.kubectl_json("get", "nodes")["items"]
    assert not any(n["spec"].get("unschedulable") for n in nodes)
    assert all(available(kube_cluster, ns).values())
