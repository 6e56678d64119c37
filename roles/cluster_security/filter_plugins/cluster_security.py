"""Filters for the cluster_security role: the NetworkPolicies, the disruption budgets and
Secret redaction.

The NetworkPolicies are built here rather than in a template: the rules follow from the app
list (who serves Traefik, who calls whom, who needs Redis, the database, object storage), and
the CIDR handling (node IPs to /32 or /128, `except` lists) needs real address parsing.
"""

from __future__ import annotations

import base64
import ipaddress
import math
from collections.abc import Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError

NAME_LABEL = "app.kubernetes.io/name"
REDIS_PORT = 6379


def host_cidrs(addresses: list[Any]) -> list[str]:
    """Addresses or CIDRs as CIDRs: a bare IPv4 address becomes /32, IPv6 /128; sorted, unique."""
    out = set()
    for raw in addresses or []:
        text = str(raw).strip()
        if not text:
            continue
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError as exc:
            raise AnsibleFilterError(f"cluster_security: not an address or CIDR: {text!r}") from exc
        out.add(str(net))
    return sorted(out, key=lambda c: (ipaddress.ip_network(c).version, ipaddress.ip_network(c)))


def _ip_block(cidr: str, excepts: list[str]) -> dict[str, Any]:
    net = ipaddress.ip_network(cidr, strict=False)
    inner = []
    for e in excepts or []:
        sub = ipaddress.ip_network(e, strict=False)
        if sub.version == net.version and sub != net and sub.subnet_of(net):  # type: ignore[arg-type]
            inner.append(str(sub))
    block: dict[str, Any] = {"cidr": str(net)}
    if inner:
        block["except"] = sorted(inner)
    return {"ipBlock": block}


def _pods(name: str) -> dict[str, Any]:
    return {"podSelector": {"matchLabels": {NAME_LABEL: name}}}


def _tcp(port: int) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": int(port)}]


def network_policies(apps: list[dict[str, Any]], s: dict[str, Any]) -> list[dict[str, Any]]:
    """Every NetworkPolicy of the namespace.

    s: namespace, part_of, traefik_sources (CIDRs: the node IPs, the pod CIDR, extras),
    dns_namespace, dns_pod_labels, database_cidrs, database_port, object_storage_cidrs,
    object_storage_port, egress_except (CIDRs cut out of the wide egress blocks), redis (bool),
    extra_pods: {name: {database: bool, object_storage: bool}} (migrate, backup).
    """
    ns = s["namespace"]
    labels = {"app.kubernetes.io/part-of": s["part_of"], "app.kubernetes.io/managed-by": "opsbook"}
    traefik = host_cidrs(s.get("traefik_sources") or [])
    if not traefik:
        raise AnsibleFilterError(
            "cluster_security: no Traefik source addresses (no node_ip in the inventory group?)"
        )
    excepts = s.get("egress_except") or []
    names = {a["name"] for a in apps}

    def policy(name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": ns, "labels": dict(labels)},
            "spec": spec,
        }

    def database_rule() -> dict[str, Any]:
        return {
            "to": [_ip_block(c, excepts) for c in s["database_cidrs"]],
            "ports": _tcp(s["database_port"]),
        }

    def storage_rule() -> dict[str, Any]:
        return {
            "to": [_ip_block(c, excepts) for c in s["object_storage_cidrs"]],
            "ports": _tcp(s["object_storage_port"]),
        }

    out = [
        policy(
            "default-deny",
            {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
        ),
        policy(
            "allow-dns",
            {
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [
                    {
                        "to": [
                            {
                                "namespaceSelector": {
                                    "matchLabels": {
                                        "kubernetes.io/metadata.name": s["dns_namespace"]
                                    }
                                },
                                "podSelector": {"matchLabels": dict(s["dns_pod_labels"])},
                            }
                        ],
                        "ports": [
                            {"protocol": "UDP", "port": 53},
                            {"protocol": "TCP", "port": 53},
                        ],
                    }
                ],
            },
        ),
    ]
    for app in apps:
        name = app["name"]
        for client in app.get("clients") or []:
            if client not in names:
                raise AnsibleFilterError(f"cluster_security: {name}: unknown client app {client!r}")
        ingress = []
        if app.get("host") and app.get("port"):
            # Traefik runs with hostNetwork: its connections come from the node addresses (and
            # the node's pod-network address), never from a pod a namespaceSelector could match.
            ingress.append(
                {"from": [_ip_block(c, []) for c in traefik], "ports": _tcp(app["port"])}
            )
        if app.get("clients") and app.get("port"):
            ingress.append({"from": [_pods(c) for c in app["clients"]], "ports": _tcp(app["port"])})
        egress = []
        for other in apps:
            if name in (other.get("clients") or []) and other.get("port"):
                egress.append({"to": [_pods(other["name"])], "ports": _tcp(other["port"])})
        if app.get("redis") and s.get("redis"):
            egress.append({"to": [_pods("redis")], "ports": _tcp(REDIS_PORT)})
        if app.get("database"):
            egress.append(database_rule())
        if app.get("object_storage"):
            egress.append(storage_rule())
        spec: dict[str, Any] = {
            "podSelector": {"matchLabels": {NAME_LABEL: name}},
            "policyTypes": ["Ingress", "Egress"],
        }
        if ingress:
            spec["ingress"] = ingress
        if egress:
            spec["egress"] = egress
        out.append(policy(f"allow-{name}", spec))
    if s.get("redis"):
        clients = [a["name"] for a in apps if a.get("redis")]
        spec = {
            "podSelector": {"matchLabels": {NAME_LABEL: "redis"}},
            "policyTypes": ["Ingress", "Egress"],
        }
        if clients:
            spec["ingress"] = [{"from": [_pods(c) for c in clients], "ports": _tcp(REDIS_PORT)}]
        out.append(policy("allow-redis", spec))
    for name, needs in sorted((s.get("extra_pods") or {}).items()):
        egress = []
        if needs.get("database"):
            egress.append(database_rule())
        if needs.get("object_storage"):
            egress.append(storage_rule())
        spec = {"podSelector": {"matchLabels": {NAME_LABEL: name}}, "policyTypes": ["Egress"]}
        if egress:
            spec["egress"] = egress
        out.append(policy(f"allow-{name}", spec))
    return out


# -- PodDisruptionBudgets ----------------------------------------------------------------------
BUDGET_KEYS = ("minAvailable", "maxUnavailable")


def _scaled(value: Any, replicas: int, app: str, key: str) -> int:
    """An int-or-percent of the replicas, rounded up as the disruption controller does
    (intstr.GetScaledValueFromIntOrPercent(..., roundUp=true))."""
    if isinstance(value, bool):
        raise AnsibleFilterError(f"cluster_security: app {app}: pdb {key} must be a number or N%")
    text = str(value).strip()
    try:
        if text.endswith("%"):
            return math.ceil(int(text[:-1]) * replicas / 100)
        return int(text)
    except ValueError as exc:
        raise AnsibleFilterError(
            f"cluster_security: app {app}: pdb {key} {value!r} is neither a number nor N%"
        ) from exc


def app_replicas(
    rollout_apps: list[dict[str, Any]] | None, fallback: Mapping[str, Any]
) -> dict[str, int]:
    """{name: replicas} from app_rollout's app list (apps with `hpa` left out: their count is
    the HPA's minimum), else `fallback` when the list is not known in this play."""
    if not rollout_apps:
        return {str(k): int(v) for k, v in (fallback or {}).items()}
    return {
        str(a["name"]): int(a.get("replicas") if a.get("replicas") is not None else 1)
        for a in rollout_apps
        if not a.get("hpa")
    }


def disruption_budgets(
    apps: list[dict[str, Any]],
    replicas: Mapping[str, Any],
    hpa_app: str = "",
    hpa_min_replicas: int = 0,
) -> list[dict[str, Any]]:
    """The PDB spec (selector aside) of every app with `pdb`, refusing a budget a drain cannot
    honour.

    `pdb: true` is `maxUnavailable: 1`; a dict gives exactly one of minAvailable and
    maxUnavailable (a number or N%). The replicas are `replicas[name]`, for the HPA's app its
    minReplicas (the fewest it may run: the strictest case). With every replica healthy, the
    budget must allow at least one eviction (else a drain of the node hangs) and must not
    allow all of them at once (else a drain may evict every pod and the budget protects
    nothing) - so an app with a budget needs 2 replicas or more.
    Returns [{name, replicas, spec: {minAvailable|maxUnavailable: value}, allowed}].
    """
    out = []
    for app in apps or []:
        name = str(app["name"])
        pdb = app.get("pdb")
        if not pdb:
            continue
        budget = {"maxUnavailable": 1} if pdb is True else dict(pdb)
        keys = [k for k in budget if k in BUDGET_KEYS]
        if len(keys) != 1 or set(budget) - set(BUDGET_KEYS):
            raise AnsibleFilterError(
                f"cluster_security: app {name}: pdb must be true or a dict with exactly one of "
                f"minAvailable and maxUnavailable, not {budget!r}"
            )
        key = keys[0]
        if name == hpa_app and int(hpa_min_replicas or 0) > 0:
            count, source = int(hpa_min_replicas), "the HPA's minReplicas"
        elif name in (replicas or {}):
            count, source = int(replicas[name]), "replicas"
        else:
            raise AnsibleFilterError(
                f"cluster_security: app {name} has a pdb but no known replica count "
                "(not in app_rollout_apps / cluster_security_app_replicas)"
            )
        value = _scaled(budget[key], count, name, key)
        allowed = count - value if key == "minAvailable" else value
        allowed = max(0, min(allowed, count))
        what = f"{key} {budget[key]} with {source} {count}"
        if count < 2:
            raise AnsibleFilterError(
                f"cluster_security: app {name}: a PodDisruptionBudget ({what}) on a "
                f"{count}-replica app either blocks every drain of its node or protects "
                f"nothing: give {name} 2 replicas or more, or set pdb: false for it. "
                "Nothing was applied."
            )
        if allowed < 1:
            raise AnsibleFilterError(
                f"cluster_security: app {name}: the budget {what} allows no eviction, so a "
                f"drain of a node with a {name} pod never finishes: use maxUnavailable 1 or "
                f"minAvailable {count - 1} at most. Nothing was applied."
            )
        if allowed >= count:
            raise AnsibleFilterError(
                f"cluster_security: app {name}: the budget {what} lets a drain evict every "
                f"{name} pod at once (the app goes down): use maxUnavailable {count - 1} at "
                "most. Nothing was applied."
            )
        out.append(
            {"name": name, "replicas": count, "spec": {key: budget[key]}, "allowed": allowed}
        )
    return out


def _plain(value: Any) -> Any:
    """A plain copy (no copy.deepcopy: it breaks on ansible's lazily templated containers)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return [_plain(v) for v in value]
    return value


def redact_secrets(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Copies of the objects with every Secret value replaced (for rendering to files)."""
    out = []
    placeholder = base64.b64encode(b"redacted").decode()
    for obj in objects or []:
        obj = _plain(obj)
        if obj.get("kind") == "Secret":
            for key in ("data", "stringData"):
                if isinstance(obj.get(key), dict):
                    obj[key] = {k: (placeholder if key == "data" else "redacted") for k in obj[key]}
        out.append(obj)
    return out


def restore_report(lines: list[str], min_rows: dict[str, Any] | None = None) -> dict[str, Any]:
    """Parse restore-check.sh's output (tab separated) into the report; check the minimums."""
    report: dict[str, Any] = {"dump": None, "bytes": 0, "rows": {}, "tables": 0, "too_few": []}
    for line in lines or []:
        parts = line.split("\t")
        if parts[0] == "dump" and len(parts) == 3:
            report["dump"], report["bytes"] = parts[1], int(parts[2])
        elif parts[0] == "rows" and len(parts) == 3:
            report["rows"][parts[1]] = int(parts[2])
        elif parts[0] == "tables" and len(parts) == 2:
            report["tables"] = int(parts[1])
    if report["dump"] is None:
        raise AnsibleFilterError("cluster_security: the restore check printed no dump line")
    for table, minimum in sorted((min_rows or {}).items()):
        have = report["rows"].get(table)
        if have is None or have < int(minimum):
            report["too_few"].append(
                f"{table}: {'no such table' if have is None else have} (expected >= {minimum})"
            )
    return report


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "cluster_security_host_cidrs": host_cidrs,
            "cluster_security_network_policies": network_policies,
            "cluster_security_app_replicas": app_replicas,
            "cluster_security_disruption_budgets": disruption_budgets,
            "cluster_security_redact_secrets": redact_secrets,
            "cluster_security_restore_report": restore_report,
        }
