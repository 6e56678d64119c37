"""Filters of the k3s role: token parts, critical-value comparison, release ordering."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from ansible.module_utils.parsing.convert_bool import boolean


def _bool(value: Any) -> bool:
    """Ansible's own `bool` filter reading: "yes", "true", "1", "on" and so on."""
    return boolean(value, strict=False)


VERSION_RE = re.compile(r"^v(\d+)\.(\d+)\.(\d+)\+k3s(\d+)$")


def k3s_token_password(token: str) -> str:
    """The password of a token: K10<hash>::<user>:<password>, or the token itself (k3s:
    pkg/util/token.go NormalizeToken; only the password keys the bootstrap data)."""
    token = (token or "").strip()
    if token.startswith("K10") and "::" in token:
        creds = token.split("::", 1)[1]
        return creds.split(":", 1)[1] if ":" in creds else ""
    return token


def k3s_url_host(address: str) -> str:
    """An address as the host part of a URL: IPv6 in brackets."""
    try:
        if ipaddress.ip_address(address).version == 6:
            return f"[{address}]"
    except ValueError:
        pass
    return address


def k3s_mismatched(views: list[dict[str, Any]], keys: list[str]) -> list[str]:
    """The keys whose values are not the same in every view."""
    out = []
    for key in keys:
        values = {repr(v.get(key)) for v in views}
        if len(values) > 1:
            out.append(key)
    return out


def k3s_version_key(version: str) -> list[int]:
    """v1.36.4+k3s1 -> [1, 36, 4, 1], for ordering releases."""
    match = VERSION_RE.match(version or "")
    if not match:
        raise ValueError(f"not a k3s release version: {version!r}")
    return [int(g) for g in match.groups()]


def k3s_upgrade_problem(installed: str, wanted: str) -> str:
    """Why going from installed to wanted breaks the Kubernetes version skew policy (no
    downgrade, no skipped minor; docs: upgrades/manual.md), or "" when it is fine."""
    if not installed:
        return ""
    have, want = k3s_version_key(installed), k3s_version_key(wanted)
    if want < have:
        return f"{wanted} is older than the installed {installed}: k3s does not support downgrades"
    if want[1] > have[1] + 1 or want[0] != have[0]:
        return (
            f"{installed} -> {wanted} skips a minor release: upgrade one minor at a time "
            f"(v1.{have[1] + 1}.x first)"
        )
    return ""


def k3s_changed_keys(keys: list[str], current: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """The keys whose current and wanted values differ (lists compared as sets of strings)."""

    def norm(value: Any) -> Any:
        if isinstance(value, list):
            return sorted(str(v) for v in value)
        if isinstance(value, bool):
            return value
        return str(value)

    return [k for k in keys if norm(current.get(k)) != norm(wanted.get(k))]


def k3s_needing_apply(hosts: list[str], hostvars: Any) -> list[str]:
    """The hosts whose plan writes a file or restarts k3s, in the given order."""
    flags = (
        "k3s__restart",
        "k3s__write_config",
        "k3s__write_unit",
        "k3s__write_binary",
        "k3s__write_token",
        "k3s__write_policies",
    )
    return [h for h in hosts if any(_bool(hostvars[h].get(f)) for f in flags)]


def _condition(node: dict[str, Any], kind: str) -> str | None:
    for cond in node.get("status", {}).get("conditions") or []:
        if cond.get("type") == kind:
            return str(cond.get("status"))
    return None


def k3s_node_health_problem(nodes: dict[str, Any], name: str, version: str, server: bool) -> str:
    """What keeps `name` from being healthy in `kubectl get nodes -o json`, or "" when it is
    Ready at `version` and, for a server, every node with the etcd role is a voting member
    (EtcdIsVoter=True; contract 3.2)."""
    items = {n["metadata"]["name"]: n for n in nodes.get("items", [])}
    node = items.get(name)
    if node is None:
        return f"no Node {name} registered"
    ready = _condition(node, "Ready")
    if ready != "True":
        return f"Node {name} is Ready={ready or 'missing'}"
    running = node.get("status", {}).get("nodeInfo", {}).get("kubeletVersion")
    if running != version:
        return f"Node {name} runs {running}, not {version}"
    not_voting = k3s_not_voting(nodes) if _bool(server) else []
    if not_voting:
        return "etcd members not voting (EtcdIsVoter not True): " + ", ".join(not_voting)
    return ""


def k3s_not_voting(nodes: dict[str, Any]) -> list[str]:
    """Nodes with the etcd role whose EtcdIsVoter condition is not True."""
    return sorted(
        n["metadata"]["name"]
        for n in nodes.get("items", [])
        if n["metadata"].get("labels", {}).get("node-role.kubernetes.io/etcd") == "true"
        and _condition(n, "EtcdIsVoter") != "True"
    )


def _arg_list(value: Any) -> list[str]:
    """A config.yaml list flag's entries: k3s accepts one string or a list (k3s:
    pkg/configfilearg/parser.go)."""
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _arg_name(entry: str) -> str:
    """The flag of a "flag=value" entry of kube-apiserver-arg and the like, without dashes."""
    return entry.split("=", 1)[0].strip().lstrip("-")


def k3s_merge_args(config: dict[str, Any], role_args: dict[str, list[str]]) -> dict[str, Any]:
    """config.yaml with the role's entries first in each *-arg key and the inventory's after.
    k3s passes a second entry for the same flag on to the component as well (k3s:
    pkg/util/args.go GetArgs), so which one counts would depend on the component's flag
    parsing; the role refuses inventory entries for its own flags instead (k3s_owned_args)."""
    merged = dict(config)
    for key, entries in role_args.items():
        if entries:
            merged[key] = list(entries) + _arg_list(config.get(key))
    return merged


def k3s_owned_args(config: dict[str, Any], role_args: dict[str, list[str]]) -> list[str]:
    """The inventory's *-arg entries for flags the role sets, as "key flag"."""
    owned = []
    for key, entries in role_args.items():
        names = {_arg_name(e) for e in entries}
        owned += [
            f"{key} {_arg_name(e)}" for e in _arg_list(config.get(key)) if _arg_name(e) in names
        ]
    return owned


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "k3s_token_password": k3s_token_password,
            "k3s_url_host": k3s_url_host,
            "k3s_mismatched": k3s_mismatched,
            "k3s_version_key": k3s_version_key,
            "k3s_upgrade_problem": k3s_upgrade_problem,
            "k3s_changed_keys": k3s_changed_keys,
            "k3s_needing_apply": k3s_needing_apply,
            "k3s_node_health_problem": k3s_node_health_problem,
            "k3s_not_voting": k3s_not_voting,
            "k3s_merge_args": k3s_merge_args,
            "k3s_owned_args": k3s_owned_args,
        }
