"""Offline: every rendered manifest of cluster_security and app_rollout validates against the
Kubernetes schemas (kubernetes-validate, strict, 1.36 like the k3s test server) and the
CRDs in ../shared/kube-crds; the filters of both roles; the rules the objects must follow."""

from __future__ import annotations

import base64
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
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

from playbook_run import ansible_playbook
from role_filters import load_filters

KUBE_VERSION = "1.36.0"
CRD_DIR = ROOT.parent / "shared" / "kube-crds"
RENDER = Path(__file__).resolve().parent / "playbooks" / "render.yml"


def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> openAPIV3Schema of every CRD version in ../shared/kube-crds."""
    out = {}
    for path in sorted(CRD_DIR.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = doc["spec"]["group"], doc["spec"]["names"]["kind"]
            for version in doc["spec"]["versions"]:
                out[(f"{group}/{version['name']}", kind)] = version["schema"]["openAPIV3Schema"]
    return out


def render(tmp: Path, extra: dict[str, Any], *args: str) -> list[dict[str, Any]]:
    out = tmp / "out"
    out.mkdir()
    proc = ansible_playbook(RENDER, {**extra, "render_dir": str(out)}, *args, inventory=INVENTORY)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    for value in secret_values(extra):
        assert value not in proc.stdout + proc.stderr, "a secret value was printed"
    docs = []
    for path in sorted(out.glob("*.yaml")):
        text = path.read_text()
        for value in secret_values(extra):
            assert value not in text, f"{path.name}: a secret value was written"
        docs.extend(d for d in yaml.safe_load_all(text) if d)
    return docs


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    return self_signed_cert(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def manifests(tls: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    return render(tmp_path_factory.mktemp("render"), base_vars(*tls))


def by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def test_every_manifest_validates_against_the_schemas(manifests: list[dict]) -> None:
    crds = crd_schemas()
    kinds = {d["kind"] for d in manifests}
    assert {
        "Namespace",
        "NetworkPolicy",
        "Middleware",
        "Secret",
        "Ingress",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "Deployment",
        "Service",
        "ConfigMap",
        "CronJob",
        "Job",
    } <= kinds
    checked_crd = 0
    for doc in manifests:
        key = (doc["apiVersion"], doc["kind"])
        if key in crds:
            jsonschema.validate(doc.get("spec", {}), crds[key]["properties"]["spec"])
            assert set(doc) <= {"apiVersion", "kind", "metadata", "spec"}
            checked_crd += 1
        else:
            kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
    assert checked_crd >= 3  # security-headers, rate-limit, admin-auth


def test_a_broken_manifest_is_caught(manifests: list[dict]) -> None:
    """The validation above can fail: a typo in a field is an error in strict mode."""
    deploy = dict(by_kind(manifests, "Deployment")["api"])
    deploy["spec"] = {**deploy["spec"], "replica": 2}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deploy, KUBE_VERSION, strict=True)
    mw = by_kind(manifests, "Middleware")["rate-limit"]
    bad = {"rateLimit": {**mw["spec"]["rateLimit"], "average": "lots"}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            bad, crd_schemas()[("traefik.io/v1alpha1", "Middleware")]["properties"]["spec"]
        )


def test_traefik_is_allowed_from_the_inventory_node_ips(manifests: list[dict]) -> None:
    policies = by_kind(manifests, "NetworkPolicy")
    assert policies["default-deny"]["spec"] == {
        "podSelector": {},
        "policyTypes": ["Ingress", "Egress"],
    }
    for app in ("api", "web", "admin"):
        rules = policies[f"allow-{app}"]["spec"]["ingress"]
        blocks = [p["ipBlock"]["cidr"] for r in rules for p in r["from"] if "ipBlock" in p]
        assert sorted(blocks) == sorted([*NODE_CIDRS, "10.42.0.0/16"]), app
        # hostNetwork traffic never matches a namespaceSelector: none is used for Traefik
        assert not any("namespaceSelector" in p for r in rules for p in r["from"])
    assert "ingress" not in policies["allow-worker"]["spec"]
    api_from = [p for r in policies["allow-api"]["spec"]["ingress"] for p in r["from"]]
    assert {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "web"}}} in api_from
    assert {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "admin"}}} in api_from
    redis_from = policies["allow-redis"]["spec"]["ingress"][0]["from"]
    assert sorted(
        p["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for p in redis_from
    ) == [
        "api",
        "worker",
    ]
    dns = policies["allow-dns"]["spec"]["egress"][0]["ports"]
    assert {"protocol": "UDP", "port": 53} in dns
    for name in ("api", "worker", "migrate", "backup"):
        ports = [p["port"] for r in policies[f"allow-{name}"]["spec"]["egress"] for p in r["ports"]]
        assert 5432 in ports, name
    backup = policies["allow-backup"]["spec"]["egress"]
    assert any(p["port"] == 443 for r in backup for p in r["ports"])
    wide = [r for r in policies["allow-api"]["spec"]["egress"] if "ipBlock" in r["to"][0]]
    assert all(r["to"][0]["ipBlock"]["except"] == ["10.42.0.0/16", "10.43.0.0/16"] for r in wide)


def test_middlewares_ingresses_and_tls(manifests: list[dict], tls: tuple[str, str]) -> None:
    middlewares = by_kind(manifests, "Middleware")
    headers = middlewares["security-headers"]["spec"]["headers"]
    assert "contentSecurityPolicy" not in headers
    assert "Content-Security-Policy" not in headers.get("customResponseHeaders", {})
    assert headers["stsSeconds"] > 0
    assert headers["frameDeny"] is True
    assert middlewares["rate-limit"]["spec"]["rateLimit"]["sourceCriterion"] == {
        "requestHeaderName": "CF-Connecting-IP"
    }
    assert middlewares["admin-auth"]["spec"]["basicAuth"]["secret"] == "admin-basic-auth"
    ingresses = by_kind(manifests, "Ingress")
    assert set(ingresses) == {"api", "web", "admin"}
    for name, ing in ingresses.items():
        chain = ing["metadata"]["annotations"]["traefik.ingress.kubernetes.io/router.middlewares"]
        mws = chain.split(",")
        assert mws[:2] == [
            "honeydue-security-headers@kubernetescrd",
            "honeydue-rate-limit@kubernetescrd",
        ]
        assert ("honeydue-admin-auth@kubernetescrd" in mws) == (name == "admin")
        assert ing["spec"]["tls"] == [
            {"hosts": [ing["spec"]["rules"][0]["host"]], "secretName": "cloudflare-origin-cert"}
        ]
    secret = by_kind(manifests, "Secret")["cloudflare-origin-cert"]
    assert secret["type"] == "kubernetes.io/tls"
    # rendered files carry no secret: every value is the placeholder
    assert base64.b64decode(secret["data"]["tls.key"]) == b"redacted"


def test_services_ports_match_the_ingress_backends(manifests: list[dict]) -> None:
    services = by_kind(manifests, "Service")
    for name, ing in by_kind(manifests, "Ingress").items():
        backend = ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
        assert backend["name"] == name
        assert backend["port"]["number"] == services[name]["spec"]["ports"][0]["port"]
        container = by_kind(manifests, "Deployment")[name]["spec"]["template"]["spec"][
            "containers"
        ][0]
        assert container["ports"][0]["containerPort"] == backend["port"]["number"]


def test_availability_redis_and_probes(manifests: list[dict]) -> None:
    deployments = by_kind(manifests, "Deployment")
    pdbs = by_kind(manifests, "PodDisruptionBudget")
    hpa = by_kind(manifests, "HorizontalPodAutoscaler")["api"]
    for name, deploy in deployments.items():
        replicas = deploy["spec"].get("replicas")
        if name == "api":
            assert replicas is None  # owned by the HPA
            assert hpa["spec"]["minReplicas"] >= 2
        if (replicas or 0) > 1 or name == "api":
            assert name in pdbs, f"{name} has several replicas but no PodDisruptionBudget"
            assert pdbs[name]["spec"]["maxUnavailable"] == 1
    containers = {n: d["spec"]["template"]["spec"]["containers"][0] for n, d in deployments.items()}
    for name in ("api", "web", "admin"):
        c = containers[name]
        path = "/api/health/" if name == "api" else "/"
        assert c["startupProbe"]["httpGet"] == {"path": path, "port": "http"}
        assert c["readinessProbe"]["httpGet"] == {"path": path, "port": "http"}
        # liveness checks the process (it accepts connections), not what readiness checks
        assert c["livenessProbe"]["tcpSocket"] == {"port": "http"}
        assert "httpGet" not in c["livenessProbe"]
    # the api's first start gets 2 minutes (its schema check), the Next.js apps one
    api_start = containers["api"]["startupProbe"]
    assert api_start["periodSeconds"] * api_start["failureThreshold"] == 120
    assert not {"startupProbe", "readinessProbe", "livenessProbe"} & set(containers["worker"])
    for name in ("api", "worker"):
        env = deployments[name]["spec"]["template"]["spec"]["containers"][0]["env"]
        ref = next(e for e in env if e["name"] == "REDIS_PASSWORD")["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "redis-auth", "key": "password"}
    redis = deployments["redis"]["spec"]["template"]["spec"]
    assert redis["containers"][0]["command"] == ["redis-server", "/etc/redis/redis.conf"]
    assert redis["volumes"][0]["secret"]["secretName"] == "redis-auth"
    assert deployments["api"]["spec"]["progressDeadlineSeconds"] == 300
    job = next(d for d in manifests if d["kind"] == "Job")
    assert job["spec"]["backoffLimit"] == 1
    assert job["spec"]["activeDeadlineSeconds"] == 600
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == (
        "registry.example/honeydue/honeydue-api:v1"
    )


def test_backup_cronjob(manifests: list[dict]) -> None:
    cron = by_kind(manifests, "CronJob")["db-backup"]
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["initContainers"][0]["command"] == ["sh", "/scripts/backup.sh", "dump"]
    assert pod["containers"][0]["command"] == ["sh", "/scripts/backup.sh", "upload"]
    dump_env = {e["name"] for e in pod["initContainers"][0]["env"]}
    upload_env = {e["name"] for e in pod["containers"][0]["env"]}
    assert "PGPASSWORD" in dump_env
    assert "BACKUP_S3_SECRET_ACCESS_KEY" not in dump_env
    assert "BACKUP_S3_SECRET_ACCESS_KEY" in upload_env
    assert "PGPASSWORD" not in upload_env
    script = by_kind(manifests, "ConfigMap")["db-backup-script"]["data"]["backup.sh"]
    assert script == (ROOT / "roles/cluster_security/files/backup.sh").read_text()


def test_no_admin_auth_without_its_secret(tls: tuple[str, str], tmp_path: Path) -> None:
    extra = {**base_vars(*tls), "vault_admin_basic_auth_users": ""}
    docs = render(
        tmp_path, extra, "--tags", "cluster-security-middlewares,cluster-security-ingress"
    )
    assert {d["kind"] for d in docs} == {"Middleware", "Ingress", "Secret"}  # only those tags
    assert "admin-auth" not in by_kind(docs, "Middleware")
    assert "admin-basic-auth" not in by_kind(docs, "Secret")
    chain = by_kind(docs, "Ingress")["admin"]["metadata"]["annotations"][
        "traefik.ingress.kubernetes.io/router.middlewares"
    ]
    assert "admin-auth" not in chain


def test_a_content_security_policy_is_refused(tls: tuple[str, str], tmp_path: Path) -> None:
    extra = base_vars(*tls)
    extra["cluster_security_security_headers"] = {"frameDeny": True, "contentSecurityPolicy": "x"}
    out = tmp_path / "out"
    out.mkdir()
    proc = ansible_playbook(RENDER, {**extra, "render_dir": str(out)}, inventory=INVENTORY)
    assert proc.returncode != 0
    assert not list(out.iterdir())


def test_a_liveness_probe_that_copies_readiness_is_refused_before_any_deployment(
    tls: tuple[str, str], tmp_path: Path
) -> None:
    """The admin incident's shape: liveness on the path readiness checks (the deploy's
    preflight runs the same check before the cluster is touched)."""
    defaults = yaml.safe_load((ROOT / "roles/app_rollout/defaults/main.yml").read_text())
    apps = [dict(a) for a in defaults["app_rollout_apps"]]
    admin = next(a for a in apps if a["name"] == "admin")
    admin["liveness_probe"] = {**admin["readiness_probe"], "periodSeconds": 30}
    for app in apps:  # the role's own templated default, given as a value here
        app["repository"] = f"registry.example/honeydue/honeydue-{app['name']}"
    out = tmp_path / "out"
    out.mkdir()
    proc = ansible_playbook(
        RENDER, {**base_vars(*tls), "render_dir": str(out), "app_rollout_apps": apps},
        inventory=INVENTORY,
    )  # fmt: skip
    assert proc.returncode != 0
    text = proc.stdout
    assert "admin: liveness_probe checks what readiness_probe checks" in text, text[-3000:]
    assert not list(out.glob("deployments-*.yaml"))  # refused before any Deployment


# -- filters -----------------------------------------------------------------------------------
AR = load_filters("app_rollout")
CS = load_filters("cluster_security")


def test_image_references_and_job_names() -> None:
    digest = "sha256:" + "a" * 64
    assert AR.image_ref("r/api", "v1.2") == "r/api:v1.2"
    assert AR.image_ref("r/api", digest) == f"r/api@{digest}"
    with pytest.raises(Exception, match="neither"):
        AR.image_ref("r/api", "v1 2")
    name = AR.job_name("migrate", digest, f"r/api@{digest}", ["goose"])
    assert len(name) <= 63
    assert name.startswith("migrate-aaaa")
    assert name == AR.job_name("migrate", digest, f"r/api@{digest}", ["goose"])
    assert name != AR.job_name("migrate", digest, "r/other", ["goose"])


def deploy(
    gen: int,
    observed: int,
    want: int,
    updated: int,
    available: int,
    total: int,
    conditions: list[dict] | None = None,
) -> dict:
    return {
        "metadata": {"name": "api", "generation": gen},
        "spec": {"replicas": want},
        "status": {
            "observedGeneration": observed,
            "updatedReplicas": updated,
            "availableReplicas": available,
            "replicas": total,
            "unavailableReplicas": max(total - available, 0),
            "conditions": conditions or [],
        },
    }


DEADLINE = {
    "type": "Progressing",
    "status": "False",
    "reason": "ProgressDeadlineExceeded",
    "message": 'ReplicaSet "api-1" has timed out progressing.',
}


def test_deployment_states() -> None:
    assert AR.deployment_state(deploy(2, 2, 2, 2, 2, 2))["state"] == "complete"
    assert AR.deployment_state(deploy(3, 2, 2, 2, 2, 2))["state"] == "progressing"  # not observed
    assert AR.deployment_state(deploy(2, 2, 2, 1, 2, 3))["state"] == "progressing"  # old pod left
    failed = AR.deployment_state(deploy(2, 2, 2, 1, 2, 3, [DEADLINE]))
    assert failed["state"] == "failed"
    assert failed["reason"] == "ProgressDeadlineExceeded"
    # a stale deadline condition does not hide a finished rollout
    assert AR.deployment_state(deploy(2, 2, 2, 2, 2, 2, [DEADLINE]))["state"] == "complete"
    states = AR.deployment_states([deploy(2, 2, 2, 1, 2, 3, [DEADLINE])], ["api", "worker"])
    assert states["done"]
    assert not states["complete"]
    assert {s["name"] for s in states["failed"]} == {"api", "worker"}  # worker is missing


def test_job_states() -> None:
    def job(*conds: tuple[str, str]) -> dict:
        return {"status": {"conditions": [{"type": t, "status": s} for t, s in conds]}}

    assert AR.job_state(None)["state"] == "missing"
    assert AR.job_state(job())["state"] == "running"
    assert AR.job_state(job(("Complete", "True")))["state"] == "complete"
    assert AR.job_state(job(("FailureTarget", "True")))["state"] == "failed"
    assert AR.job_state(job(("Failed", "True"), ("Complete", "False")))["state"] == "failed"


def test_host_cidrs_and_excepts() -> None:
    assert CS.host_cidrs(["10.0.0.1", "2001:db8::1", "10.42.0.0/16", "10.0.0.1"]) == [
        "10.0.0.1/32",
        "10.42.0.0/16",
        "2001:db8::1/128",
    ]
    with pytest.raises(Exception, match="not an address"):
        CS.host_cidrs(["node1"])
    assert CS._ip_block("0.0.0.0/0", ["10.42.0.0/16", "fd00::/8"]) == {
        "ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.42.0.0/16"]}
    }


def test_restore_report_checks_the_minimums() -> None:
    lines = ["dump\thoneydue-x.sql.gz\t100", "rows\tpublic.users\t3", "tables\t1"]
    report = CS.restore_report(lines, {"public.users": 3, "public.tasks": 1})
    assert report["rows"] == {"public.users": 3}
    assert report["too_few"] == ["public.tasks: no such table (expected >= 1)"]
    assert CS.restore_report(lines, {"public.users": 4})["too_few"]


# -- availability and least privilege ----------------------------------------------------------
def pod_specs(docs: list[dict]) -> dict[str, dict]:
    """{kind/name: pod spec} of every workload (Deployments, the Job, the CronJob)."""
    out = {}
    for d in docs:
        if d["kind"] in ("Deployment", "Job"):
            out[f"{d['kind']}/{d['metadata']['name']}"] = d["spec"]["template"]["spec"]
        elif d["kind"] == "CronJob":
            spec = d["spec"]["jobTemplate"]["spec"]["template"]["spec"]
            out[f"CronJob/{d['metadata']['name']}"] = spec
    return out


def test_app_pods_spread_over_the_nodes(manifests: list[dict]) -> None:
    for name in ("api", "worker", "web", "admin"):
        spec = by_kind(manifests, "Deployment")[name]["spec"]["template"]["spec"]
        assert spec["topologySpreadConstraints"] == [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {"app.kubernetes.io/name": name}},
                "matchLabelKeys": ["pod-template-hash"],
            }
        ], name


def test_every_pod_is_least_privilege_with_requests_and_memory_limits(
    manifests: list[dict],
) -> None:
    specs = pod_specs(manifests)
    assert {"Deployment/web", "Deployment/redis", "CronJob/db-backup"} <= set(specs)
    assert any(k.startswith("Job/") for k in specs)
    for key, spec in specs.items():
        assert spec["automountServiceAccountToken"] is False, key
        pod_sc = spec.get("securityContext") or {}
        assert pod_sc["runAsNonRoot"] is True, key
        assert pod_sc["runAsUser"] > 0, key
        assert pod_sc["runAsGroup"] > 0, key
        assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}, key
        mounts_ok = {v["name"] for v in spec.get("volumes") or []}
        for c in spec.get("initContainers", []) + spec["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, (key, c["name"])
            assert sc["readOnlyRootFilesystem"] is True, (key, c["name"])
            assert sc["capabilities"] == {"drop": ["ALL"]}, (key, c["name"])
            res = c["resources"]
            assert res["requests"]["cpu"], (key, c["name"])
            assert res["requests"]["memory"], (key, c["name"])
            assert res["limits"]["memory"], (key, c["name"])
            assert "cpu" not in res["limits"], (key, c["name"])  # no app asks for a CPU limit
            assert {m["name"] for m in c.get("volumeMounts", [])} <= mounts_ok
    deploys = by_kind(manifests, "Deployment")
    for name, uid, paths in (
        ("api", 65532, ["/tmp"]),
        ("worker", 65532, ["/tmp"]),
        ("web", 1001, ["/tmp", "/app/.next/cache"]),
        ("admin", 1001, ["/tmp", "/app/.next/cache"]),
    ):
        spec = deploys[name]["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsUser"] == uid
        mounts = spec["containers"][0]["volumeMounts"]
        assert [m["mountPath"] for m in mounts] == paths, name
        by_name = {v["name"]: v for v in spec["volumes"]}
        assert all("emptyDir" in by_name[m["name"]] for m in mounts), name


def test_the_namespace_enforces_the_restricted_level(manifests: list[dict]) -> None:
    labels = by_kind(manifests, "Namespace")["honeydue"]["metadata"]["labels"]
    for mode in ("enforce", "warn", "audit"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"


def budgets(apps: list[dict], replicas: dict, hpa_min: int = 2) -> list[dict]:
    return CS.disruption_budgets(apps, replicas, "api", hpa_min)


def test_budgets_that_a_drain_can_honour() -> None:
    apps = [
        {"name": "api", "pdb": True},
        {"name": "worker", "pdb": False},
        {"name": "web", "pdb": {"minAvailable": 2}},
        {"name": "admin", "pdb": {"maxUnavailable": "50%"}},
    ]
    out = {b["name"]: b for b in budgets(apps, {"worker": 1, "web": 3, "admin": 2})}
    assert set(out) == {"api", "web", "admin"}
    assert out["api"] == {
        "name": "api",
        "replicas": 2,
        "spec": {"maxUnavailable": 1},
        "allowed": 1,
    }
    assert out["web"]["allowed"] == 1
    assert out["admin"]["allowed"] == 1
    assert out["admin"]["spec"] == {"maxUnavailable": "50%"}


@pytest.mark.parametrize(
    ("app", "replicas", "message"),
    [
        ({"name": "web", "pdb": {"minAvailable": 3}}, 3, "allows no eviction"),
        ({"name": "web", "pdb": {"minAvailable": "100%"}}, 3, "allows no eviction"),
        ({"name": "web", "pdb": {"maxUnavailable": 0}}, 3, "allows no eviction"),
        ({"name": "web", "pdb": {"maxUnavailable": 3}}, 3, "every web pod at once"),
        ({"name": "web", "pdb": {"minAvailable": 1}}, 1, "on a 1-replica app"),
        ({"name": "web", "pdb": True}, 1, "on a 1-replica app"),
        ({"name": "web", "pdb": {"minAvailable": 1, "maxUnavailable": 1}}, 3, "exactly one"),
        ({"name": "web", "pdb": {"maxUnavailable": "lots"}}, 3, "neither a number"),
    ],
)
def test_budgets_that_cannot_be_drained_are_refused(app: dict, replicas: int, message: str) -> None:
    with pytest.raises(Exception, match=message) as err:
        budgets([app], {"web": replicas})
    assert "web" in str(err.value)


def test_the_hpa_minimum_counts_for_its_app() -> None:
    with pytest.raises(Exception, match="the HPA's minReplicas 2"):
        budgets([{"name": "api", "pdb": {"minAvailable": 2}}], {}, hpa_min=2)
    assert budgets([{"name": "api", "pdb": {"minAvailable": 2}}], {}, hpa_min=3)[0]["allowed"] == 1
    with pytest.raises(Exception, match="no known replica count"):
        budgets([{"name": "other", "pdb": True}], {})


def test_replicas_come_from_app_rollouts_list() -> None:
    apps = [{"name": "api", "hpa": True, "replicas": 2}, {"name": "web", "replicas": 3}]
    assert CS.app_replicas(apps, {"web": 9}) == {"web": 3}
    assert CS.app_replicas([], {"web": 9}) == {"web": 9}


def test_the_app_list_needs_requests_limits_and_a_non_root_id() -> None:
    good = {
        "name": "web",
        "resources": {"requests": {"cpu": "50m", "memory": "1Mi"}, "limits": {"memory": "2Mi"}},
        "run_as_user": 1001,
        "run_as_group": 1001,
        "writable_paths": ["/tmp"],
    }
    assert AR.check_apps([good]) == ["web"]
    with pytest.raises(Exception, match=r"web: resources need requests.cpu, limits.memory"):
        AR.check_apps([{**good, "resources": {"requests": {"memory": "1Mi"}}}])
    with pytest.raises(Exception, match="run_as_user must be a non-root id"):
        AR.check_apps([{**good, "run_as_user": 0}])
    with pytest.raises(Exception, match="absolute path"):
        AR.check_apps([{**good, "writable_paths": ["tmp"]}])
    assert AR.writable_volumes(["/tmp", "/app/.next/cache"]) == [
        {"name": "w-tmp", "path": "/tmp"},
        {"name": "w-app-next-cache", "path": "/app/.next/cache"},
    ]
    with pytest.raises(Exception, match="given twice"):
        AR.writable_volumes(["/tmp", "/tmp"])


PROBED = {
    "name": "web",
    "port": 3000,
    "resources": {"requests": {"cpu": "50m", "memory": "1Mi"}, "limits": {"memory": "2Mi"}},
    "run_as_user": 1001,
    "run_as_group": 1001,
    "startup_probe": {"httpGet": {"path": "/", "port": "http"}, "failureThreshold": 30},
    "readiness_probe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 5},
    "liveness_probe": {"tcpSocket": {"port": "http"}, "periodSeconds": 20},
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        # the same check with other timings is still a copy
        (
            {"liveness_probe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 20}},
            r"web: liveness_probe checks what readiness_probe checks \(\{\"httpGet\": "
            r"\{\"path\": \"/\", \"port\": \"http\"\}\}\): a failing dependency",
        ),
        ({"startup_probe": None}, "web: liveness_probe needs a startup_probe"),
        ({"port": None}, "web: startup_probe checks a port, but the app has no port"),
        (
            {"readiness_probe": {"httpGet": {"path": "/"}, "exec": {"command": ["true"]}}},
            "web: readiness_probe needs exactly one of httpGet, tcpSocket, exec, grpc",
        ),
    ],
)
def test_probes_that_would_restart_healthy_pods_are_refused(change: dict, message: str) -> None:
    assert AR.check_apps([PROBED]) == ["web"]
    with pytest.raises(Exception, match=message):
        AR.check_apps([{**PROBED, **change}])


def test_an_app_without_probes_or_with_readiness_only_passes() -> None:
    bare = {k: v for k, v in PROBED.items() if not k.endswith("_probe")}
    assert AR.check_apps([{**bare, "port": None}]) == ["web"]
    assert AR.check_apps([{**bare, "readiness_probe": PROBED["readiness_probe"]}]) == ["web"]


def _owned(kind: str, name: str, uid: str, revision: str, **extra: Any) -> dict:
    return {
        "kind": kind,
        "metadata": {
            "name": name,
            "uid": uid,
            "annotations": {"deployment.kubernetes.io/revision": revision},
            **extra,
        },
    }


def _pod(name: str, app: str, hash_: str, restarts: int, **last: Any) -> dict:
    return {
        "metadata": {
            "name": name,
            "labels": {"app.kubernetes.io/name": app, "pod-template-hash": hash_},
        },
        "status": {
            "containerStatuses": [
                {"name": app, "restartCount": restarts, "lastState": {"terminated": last}}
            ]
        },
    }


def test_the_soak_check_looks_only_at_the_new_pods_of_the_wave() -> None:
    deployments = [_owned("Deployment", "web", "d1", "3"), _owned("Deployment", "api", "d2", "7")]
    replicasets = [
        _owned("ReplicaSet", "web-old", "r1", "2", ownerReferences=[{"uid": "d1"}],
               labels={"pod-template-hash": "old"}),
        _owned("ReplicaSet", "web-new", "r2", "3", ownerReferences=[{"uid": "d1"}],
               labels={"pod-template-hash": "new"}),
        _owned("ReplicaSet", "api-x", "r3", "3", ownerReferences=[{"uid": "d2"}],
               labels={"pod-template-hash": "other"}),
    ]  # fmt: skip
    hashes = AR.current_pod_hashes(replicasets, deployments, ["web"])
    assert hashes == {"web": "new"}
    pods = [
        _pod("web-new-a", "web", "new", 0),
        _pod("web-old-a", "web", "old", 5, reason="Error", exitCode=1),  # old: not watched
        _pod("api-x-a", "api", "other", 9, reason="OOMKilled"),  # not in the wave
    ]
    assert AR.soak_restarts(pods, hashes) == []
    pods.append(_pod("web-new-b", "web", "new", 2, reason="Error", exitCode=137))
    assert AR.soak_restarts(pods, hashes) == [
        "Deployment web: pod web-new-b container web restarted 2 times after the rollout "
        "(last termination: reason Error, exitCode 137)"
    ]
