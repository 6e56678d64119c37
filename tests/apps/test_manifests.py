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
    probes = {
        name: d["spec"]["template"]["spec"]["containers"][0].get("livenessProbe")
        for name, d in deployments.items()
    }
    assert probes["admin"]["httpGet"]["path"] == "/"
    assert probes["api"]["httpGet"]["path"] == "/api/health/"
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
