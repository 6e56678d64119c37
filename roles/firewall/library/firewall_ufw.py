#!/usr/bin/python3
"""Apply a whole set of UFW rules as one diff: read the rules once, add, then delete."""

from __future__ import annotations

# Ansible module layout: DOCUMENTATION/RETURN come before the imports (E402), and the module
# code is not type-annotated (it is shipped as is by AnsiballZ; the logic is covered
# by tests/firewall/ instead).
# ruff: noqa: E402, ANN001, ANN003, ANN201, ANN202, ANN204

DOCUMENTATION = r"""
---
module: firewall_ufw
short_description: Diff-based UFW rules for the rules tagged with the owners' comments
description:
  - Reads ufw's own rule files (C(user.rules), C(user6.rules)) and its defaults once, computes
    which rules to add and which to delete, then runs only those C(ufw) commands - new rules
    first, then the default policies and C(ufw enable), stale rules last. A run with nothing to
    do runs no ufw command and reports C(changed=false).
  - Owned rules are those whose comment is one of I(owners) or starts with one followed by
    C(:). Only owned rules and rules matching I(legacy) are ever deleted; never C(ufw reset).
  - An existing rule equal to a wanted one but carrying no opsbook comment is adopted (its
    comment is set) when I(adopt) is true; one owned by another opsbook owner satisfies the
    wanted rule and is left alone.
  - I(guard) refuses a change that would remove more than a fraction of the sources of the
    owned rules under a comment prefix (the Cloudflare ranges), unless forced.
  - Supports check mode and diff mode.
options:
  rules:
    description:
      - Wanted rules. Keys - C(action) (allow|deny|reject|limit, default allow), C(route)
        (bool), C(direction) (in|out, default in), C(proto) (default any), C(port) (dport,
        C(443), C(2379:2380) or C(2379-2380); default any), C(from), C(to) (address, CIDR or
        any; a list gives one rule per source), C(comment) (required, one of I(owners)).
        C(port) may be a list too.
    type: list
    elements: dict
    default: []
  owners:
    description: Comments (prefixes) marking the rules this call manages.
    type: list
    elements: str
    required: true
  legacy:
    description:
      - Unowned allow/limit rules to delete. Keys - C(port) (overlap with the rule's ports),
        C(proto) (the rule's protocol equal, or C(any) on either side), C(from) (C(any) means
        only rules from anywhere), C(within) (bool - the rule's ports must all lie within
        C(port); a rule that also opens other ports is not deleted but returned in
        C(legacy_partial)), C(any_owner) (bool - also rules tagged by another opsbook owner;
        without it such rules never match). Deny and reject rules (fail2ban's bans) never match.
    type: list
    elements: dict
    default: []
  adopt:
    description: Set the owner comment on unowned rules identical to a wanted one.
    type: bool
    default: true
  defaults:
    description: Default policies, C({incoming, outgoing, routed}) each allow|deny|reject.
    type: dict
  enabled:
    description: Enable (true) ufw after the rules are in place; null leaves it as it is.
    type: bool
  ipv6:
    description: Make sure ufw manages IPv6 (IPV6=yes in /etc/default/ufw).
    type: bool
  sysctl_file:
    description:
      - The kernel settings file ufw loads at each start (IPT_SYSCTL in /etc/default/ufw);
        an empty string for none. Null leaves the line as it is.
    type: str
  keep_open:
    description:
      - TCP ports (the SSH connection's) that must stay allowed. When ufw is or will be
        enabled and no allow rule would cover one of them after the change, nothing is changed
        and the task fails.
    type: list
    elements: int
    default: []
  guard:
    description:
      - C({prefix, max_remove_fraction, force, label}) - refuse to remove more than
        C(max_remove_fraction) of the distinct sources of the owned rules whose comment starts
        with C(prefix).
    type: dict
  state_file:
    description: JSON file recording I(state) (with C(applied_at)) when it or the rules change.
    type: path
  state:
    description: What to record in I(state_file) (for example the list's digest and etag).
    type: dict
  ufw_dir:
    description: ufw's rules directory.
    type: path
    default: /etc/ufw
  default_file:
    description: ufw's defaults file.
    type: path
    default: /etc/default/ufw
"""

RETURN = r"""
defaults_file:
  description: The /etc/default/ufw lines set (key to value), or would be in check mode.
  type: dict
  returned: always
added:
  description: Rules added (or adopted), as ufw arguments.
  type: list
  returned: always
deleted:
  description: Rules deleted, as ufw arguments.
  type: list
  returned: always
would_change:
  description: Whether anything differs (true in check mode when a real run would change).
  type: bool
  returned: always
commands:
  description: The ufw commands run (or that would run in check mode).
  type: list
  returned: always
legacy_partial:
  description:
    - Unowned rules that open a C(within) legacy port together with other ports, as ufw
      arguments; left in place.
  type: list
  returned: always
guard:
  description: Counts the guard computed (current, removed, refused).
  type: dict
  returned: when guard is set
"""

import datetime
import ipaddress
import json
import os
import re
import tempfile

try:
    from ansible.module_utils.basic import AnsibleModule
except ImportError:  # pragma: no cover - unit tests import the logic without ansible
    AnsibleModule = None

POLICY_FROM_FILE = {"DROP": "deny", "ACCEPT": "allow", "REJECT": "reject"}
POLICY_KEYS = {
    "incoming": "DEFAULT_INPUT_POLICY",
    "outgoing": "DEFAULT_OUTPUT_POLICY",
    "routed": "DEFAULT_FORWARD_POLICY",
}
ANY4 = "0.0.0.0/0"
ANY6 = "::/0"
TUPLE_RE = re.compile(r"^### tuple ###\s*(.*)$")


class PlanError(Exception):
    """The wanted rules are inconsistent, or the guard refuses the change."""


class Rule:
    """One ufw rule as ufw stores it (a `### tuple ###` line plus the file it is in)."""

    __slots__ = (
        "action",
        "comment",
        "dapp",
        "direction",
        "dport",
        "dst",
        "forward",
        "iface_in",
        "iface_out",
        "proto",
        "sapp",
        "sport",
        "src",
        "v6",
    )

    def __init__(self, **kw):
        self.action = kw.get("action", "allow")
        self.proto = kw.get("proto", "any")
        self.dport = kw.get("dport", "any")
        self.dst = kw["dst"]
        self.sport = kw.get("sport", "any")
        self.src = kw["src"]
        self.direction = kw.get("direction", "in")
        self.forward = bool(kw.get("forward", False))
        self.v6 = bool(kw["v6"])
        self.comment = kw.get("comment", "")
        self.iface_in = kw.get("iface_in", "")
        self.iface_out = kw.get("iface_out", "")
        self.dapp = kw.get("dapp", "")
        self.sapp = kw.get("sapp", "")

    def key(self):
        """Everything ufw compares to decide two rules are the same rule (not the comment)."""
        return (
            self.action,
            self.proto,
            self.dport,
            self.dst,
            self.sport,
            self.src,
            self.direction,
            self.forward,
            self.v6,
            self.iface_in,
            self.iface_out,
            self.dapp,
            self.sapp,
        )

    def __eq__(self, other):
        return (
            isinstance(other, Rule)
            and self.key() == other.key()
            and (self.comment == other.comment)
        )

    def __hash__(self):
        return hash((self.key(), self.comment))

    def __repr__(self):
        return f"Rule({self.describe()})"

    def describe(self):
        """One readable line, used in diffs and reports."""
        parts = ["route" if self.forward else self.direction, self.action.replace("_", " ")]
        if self.iface_in:
            parts.append(f"in on {self.iface_in}")
        if self.iface_out:
            parts.append(f"out on {self.iface_out}")
        parts.append(self.proto)
        parts.append(f"from {self.src}" + (f" port {self.sport}" if self.sport != "any" else ""))
        if self.sapp:
            parts.append(f"app {self.sapp}")
        parts.append(f"to {self.dst}" + (f" port {self.dport}" if self.dport != "any" else ""))
        if self.dapp:
            parts.append(f"app {self.dapp}")
        line = " ".join(parts) + (" (v6)" if self.v6 else "")
        return line + (f"  # {self.comment}" if self.comment else "")

    def ufw_args(self, delete=False):
        """ufw command line arguments that add (or delete) exactly this rule."""
        args = ["delete"] if delete else []
        if self.forward:
            args.append("route")
        action, _, log = self.action.partition("_")
        args.append(action)
        if log:
            args.append(log)
        if self.forward:
            if self.iface_in:
                args += ["in", "on", self.iface_in]
            if self.iface_out:
                args += ["out", "on", self.iface_out]
        else:
            args.append(self.direction)
            iface = self.iface_in or self.iface_out
            if iface:
                args += ["on", iface]
        if self.proto != "any" and not (self.dapp or self.sapp):
            args += ["proto", self.proto]
        args += ["from", self.src]
        if self.sapp:
            args += ["app", self.sapp]
        elif self.sport != "any":
            args += ["port", self.sport]
        args += ["to", self.dst]
        if self.dapp:
            args += ["app", self.dapp]
        elif self.dport != "any":
            args += ["port", self.dport]
        if self.comment and not delete:
            args += ["comment", self.comment]
        return args


def decode_comment(hexed):
    try:
        return bytes.fromhex(hexed).decode("utf-8")
    except ValueError:
        return hexed


def parse_rules_file(text, v6):
    """The rules of one ufw user rules file, in file order."""
    rules = []
    for line in text.splitlines():
        match = TUPLE_RE.match(line)
        if not match:
            continue
        body, _, hexed = match.group(1).partition(" comment=")
        fields = body.split()
        if len(fields) not in (7, 9):
            continue  # ufw itself skips these as malformed (old formats)
        action = fields[0]
        forward = action.startswith("route:")
        if forward:
            action = action.split(":", 1)[1]
        iface_field = fields[-1]
        direction = iface_field.split("_")[0] if "!" not in iface_field else "in"
        iface_in = iface_out = ""
        if "!" in iface_field:
            left, right = iface_field.split("!")
            iface_in, iface_out = left.partition("_")[2], right.partition("_")[2]
        elif iface_field.startswith("in_"):
            iface_in = iface_field.partition("_")[2]
        elif iface_field.startswith("out_"):
            iface_out = iface_field.partition("_")[2]
        dapp = sapp = ""
        if len(fields) == 9:
            dapp = "" if fields[6] == "-" else fields[6].replace("%20", " ")
            sapp = "" if fields[7] == "-" else fields[7].replace("%20", " ")
        rules.append(
            Rule(
                action=action,
                proto=fields[1],
                dport=fields[2],
                dst=fields[3],
                sport=fields[4],
                src=fields[5],
                direction=direction,
                forward=forward,
                v6=v6,
                comment=decode_comment(hexed.strip()) if hexed else "",
                iface_in=iface_in,
                iface_out=iface_out,
                dapp=dapp,
                sapp=sapp,
            )
        )
    return rules


def normalize_address(value):
    """(family or None, ufw's spelling). `any` -> (None, 'any'); host /32 -> plain address."""
    if value is None or str(value).strip().lower() in ("any", ""):
        return None, "any"
    try:
        net = ipaddress.ip_network(str(value).strip(), strict=False)
    except ValueError:
        raise PlanError(f"{value!r} is not an address or CIDR") from None
    if net.prefixlen == net.max_prefixlen:
        return net.version, str(net.network_address)
    return net.version, str(net)


def normalize_port(value):
    if value is None or str(value).strip().lower() in ("any", ""):
        return "any"
    text = str(value).strip().replace("-", ":")
    for part in text.split(","):
        bounds = part.split(":")
        if not all(b.isdigit() and 0 < int(b) < 65536 for b in bounds) or len(bounds) > 2:
            raise PlanError(f"{value!r} is not a port or port range")
    return text


def is_owned(comment, owner):
    return comment == owner or comment.startswith(owner + ":")


def owned_by_any(comment, owners):
    return any(is_owned(comment, o) for o in owners)


def wanted_rules(specs, owners, ipv6=True):
    """Expand rule specs into ufw rules (one per family for rules from/to anywhere; `from`
    may be a list: one rule per source)."""
    expanded = []
    for spec in specs:
        sources = spec.get("from")
        sources = list(sources) if isinstance(sources, (list, tuple)) else [sources]
        ports = spec.get("port")
        ports = list(ports) if isinstance(ports, (list, tuple)) else [ports]
        for source in sources:
            for port in ports:
                expanded.append(dict(spec, **{"from": source, "port": port}))
    out = []
    for spec in expanded:
        comment = spec.get("comment") or ""
        if not owned_by_any(comment, owners):
            raise PlanError(f"rule comment {comment!r} is not one of {owners!r}")
        src_v, src = normalize_address(spec.get("from"))
        dst_v, dst = normalize_address(spec.get("to"))
        if src_v and dst_v and src_v != dst_v:
            raise PlanError(f"rule {spec!r} mixes IPv4 and IPv6")
        version = src_v or dst_v
        versions = [version] if version else ([4, 6] if ipv6 else [4])
        if version == 6 and not ipv6:
            raise PlanError(f"rule {spec!r} is IPv6 but ufw IPv6 is off")
        proto = str(spec.get("proto") or "any").lower()
        port = normalize_port(spec.get("port"))
        if proto not in ("tcp", "udp", "any") and port != "any":
            raise PlanError(f"rule {spec!r}: protocol {proto} has no ports")
        if port != "any" and ("," in port or ":" in port) and proto == "any":
            raise PlanError(f"rule {spec!r}: a port range or list needs proto tcp or udp")
        for v in versions:
            out.append(
                Rule(
                    action=str(spec.get("action") or "allow"),
                    proto=proto,
                    dport=port,
                    dst=dst if dst != "any" else (ANY6 if v == 6 else ANY4),
                    src=src if src != "any" else (ANY6 if v == 6 else ANY4),
                    direction=str(spec.get("direction") or "in"),
                    forward=bool(spec.get("route", False)),
                    v6=v == 6,
                    comment=comment,
                )
            )
    unique = {}
    for rule in out:
        unique.setdefault(rule.key(), rule)
    return list(unique.values())


def _port_set(text):
    if text == "any":
        return None
    ports = set()
    for part in text.split(","):
        low, _, high = part.partition(":")
        ports.update(range(int(low), int(high or low) + 1))
    return ports


def matches_legacy(rule, spec, partial=False):
    """An unowned allow/limit input rule that the legacy spec describes. With partial, the
    rules a C(within) spec leaves alone because they also open ports outside it."""
    if rule.forward or rule.direction != "in":
        return False
    if rule.comment.startswith("opsbook:") and not spec.get("any_owner"):
        return False
    if rule.action.split("_")[0] not in ("allow", "limit"):
        return False
    proto = str(spec.get("proto") or "any").lower()
    if proto != "any" and rule.proto not in (proto, "any"):
        return False
    outside = False  # the rule also opens ports the (within) spec does not name
    if spec.get("port") not in (None, "any", ""):
        wanted = _port_set(normalize_port(spec["port"]))
        have = _port_set(rule.dport)
        if have is None or not (wanted & have):
            return False
        outside = bool(spec.get("within")) and not have <= wanted
    source = spec.get("from")
    if source not in (None, ""):
        if str(source).lower() == "any":
            if rule.src not in (ANY4, ANY6) or rule.sapp:
                return False
        elif normalize_address(source)[1] != rule.src:
            return False
    return outside == partial


def legacy_partial(current, legacy):
    """Unowned rules that a C(within) legacy spec overlaps without covering all their ports."""
    return [r for r in current if any(matches_legacy(r, s, partial=True) for s in legacy)]


def plan(current, wanted, owners, legacy=(), adopt=True):
    """(to_add, to_delete, satisfied_by_others): the diff between current and wanted rules."""
    by_key = {}
    for rule in current:
        by_key.setdefault(rule.key(), rule)
    to_add, kept_keys, foreign = [], set(), []
    for rule in wanted:
        have = by_key.get(rule.key())
        if have is None:
            to_add.append(rule)
        elif have.comment == rule.comment:
            kept_keys.add(rule.key())
        elif owned_by_any(have.comment, owners) or (
            adopt and not have.comment.startswith("opsbook:")
        ):
            to_add.append(rule)  # ufw updates the comment of the existing rule in place
            kept_keys.add(rule.key())
        else:
            foreign.append(have)  # identical rule owned by someone else: leave it alone
            kept_keys.add(rule.key())
    to_delete = []
    for rule in current:
        if rule.key() in kept_keys:
            continue
        if owned_by_any(rule.comment, owners) or any(matches_legacy(rule, s) for s in legacy):
            to_delete.append(rule)
    return to_add, to_delete, foreign


def check_guard(current, wanted, guard):
    """Counts for the guard; raise PlanError when it refuses."""
    prefix = guard["prefix"]
    label = guard.get("label") or prefix

    def sources(rules):
        return {r.src for r in rules if is_owned(r.comment, prefix)}

    have, want = sources(current), sources(wanted)
    removed = have - want
    fraction = float(guard.get("max_remove_fraction", 0.5))
    info = {"current": len(have), "wanted": len(want), "removed": len(removed), "refused": False}
    if have and len(removed) > fraction * len(have) and not guard.get("force"):
        info["refused"] = True
        raise PlanError(
            f"refusing to remove {len(removed)} of the {len(have)} {label} currently applied "
            f"(more than {fraction:.0%}); {guard.get('force_hint', 'set force to apply it')}"
        )
    return info


def allows_port(rule, port):
    """An incoming allow/limit rule that lets TCP `port` in (from some source)."""
    if rule.forward or rule.direction != "in" or rule.iface_in or rule.iface_out:
        return False
    if rule.action.split("_")[0] not in ("allow", "limit") or rule.proto not in ("tcp", "any"):
        return False
    ports = _port_set(rule.dport)
    return ports is None or port in ports


def check_keep_open(after, ports):
    missing = [p for p in ports if not any(allows_port(r, p) for r in after)]
    if missing:
        raise PlanError(
            f"refusing: no rule would allow TCP port(s) {missing} (the SSH connection) with ufw on"
        )


def read_defaults(text):
    values = {}
    for line in text.splitlines():
        match = re.match(r'^\s*([A-Z_0-9]+)\s*=\s*"?([^"#]*)"?', line)
        if match:
            values[match.group(1)] = match.group(2).strip()
    return values


def set_defaults(text, edits):
    """/etc/default/ufw text with each KEY=value of `edits` set: the KEY= line replaced where
    there is one, appended where there is none; every other line as it was."""
    for key, value in edits.items():
        line = f"{key}={value}"
        text, found = re.subn(rf"(?m)^{re.escape(key)}=.*$", lambda _m, line=line: line, text)
        if not found:
            text = text.rstrip("\n") + f"\n{line}\n"
    return text


def policy_changes(file_values, wanted):
    changes = []
    for direction, key in POLICY_KEYS.items():
        want = (wanted or {}).get(direction)
        if want is None:
            continue
        have = POLICY_FROM_FILE.get(file_values.get(key, ""), file_values.get(key, ""))
        if have != want:
            changes.append(["default", want, direction])
    return changes


def render(rules):
    return "".join(r.describe() + "\n" for r in rules)


def simulate(current, to_add, to_delete):
    """The rule list after the change, in ufw's order (adds append, adopts replace in place)."""
    after = list(current)
    index = {r.key(): i for i, r in enumerate(after)}
    for rule in to_add:
        if rule.key() in index:
            after[index[rule.key()]] = rule
        else:
            index[rule.key()] = len(after)
            after.append(rule)
    gone = {r.key() for r in to_delete}
    return [r for r in after if r.key() not in gone]


class Ufw:
    """The node's ufw: reads its files once; runs ufw commands."""

    def __init__(self, module, ufw_dir, default_file):
        self.module = module
        self.ufw_dir = ufw_dir
        self.default_file = default_file
        # Check mode on a node where the role has not installed ufw yet: plan against no rules.
        self.ufw = module.get_bin_path("ufw", required=not module.check_mode)

    def read(self):
        rules = []
        for name, v6 in (("user.rules", False), ("user6.rules", True)):
            path = os.path.join(self.ufw_dir, name)
            if os.path.exists(path):
                with open(path, encoding="utf-8") as handle:
                    rules += parse_rules_file(handle.read(), v6)
        defaults = {}
        if self.ufw or not self.module.check_mode:
            with open(self.default_file, encoding="utf-8") as handle:
                defaults = read_defaults(handle.read())
        conf = os.path.join(self.ufw_dir, "ufw.conf")
        enabled_conf = False
        if os.path.exists(conf):
            with open(conf, encoding="utf-8") as handle:
                enabled_conf = read_defaults(handle.read()).get("ENABLED", "no") == "yes"
        return rules, defaults, enabled_conf and self._chains_loaded()

    def _chains_loaded(self):
        iptables = self.module.get_bin_path("iptables")
        if not iptables:
            return True
        rc, _, _ = self.module.run_command([iptables, "-w", "-n", "-L", "ufw-user-input"])
        return rc == 0

    def run(self, args):
        rc, out, err = self.module.run_command([self.ufw, *args])
        if rc != 0 or "ERROR" in out:
            self.module.fail_json(
                msg=f"ufw {' '.join(args)} failed: {(err or out).strip()}",
                rc=rc,
                stdout=out,
                stderr=err,
            )
        return out


def write_state(path, state):
    """Write state (plus applied_at) atomically; return True when the content changed."""
    old = {}
    if os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as handle:
                old = json.load(handle)
        except (OSError, ValueError):
            old = {}
    comparable = {k: v for k, v in old.items() if k != "applied_at"}
    return comparable != state, old


def main():  # pragma: no cover - exercised through ansible in molecule and the lab tests
    module = AnsibleModule(
        argument_spec={
            "rules": {"type": "list", "elements": "dict", "default": []},
            "owners": {"type": "list", "elements": "str", "required": True},
            "legacy": {"type": "list", "elements": "dict", "default": []},
            "adopt": {"type": "bool", "default": True},
            "defaults": {"type": "dict"},
            "enabled": {"type": "bool"},
            "ipv6": {"type": "bool"},
            "keep_open": {"type": "list", "elements": "int", "default": []},
            "guard": {"type": "dict"},
            "state_file": {"type": "path"},
            "state": {"type": "dict"},
            "ufw_dir": {"type": "path", "default": "/etc/ufw"},
            "default_file": {"type": "path", "default": "/etc/default/ufw"},
            "sysctl_file": {"type": "str"},
        },
        supports_check_mode=True,
    )
    p = module.params
    ufw = Ufw(module, p["ufw_dir"], p["default_file"])
    current, file_defaults, enabled = ufw.read()
    ipv6_on = file_defaults.get("IPV6", "yes") == "yes"
    fix_ipv6 = bool(p["ipv6"]) and not ipv6_on
    # /etc/default/ufw lines to set (ufw reads them at its start and reload).
    default_edits = {"IPV6": "yes"} if fix_ipv6 else {}
    if p["sysctl_file"] is not None and file_defaults.get("IPT_SYSCTL", "") != p["sysctl_file"]:
        default_edits["IPT_SYSCTL"] = p["sysctl_file"]
    result = {"changed": False, "added": [], "deleted": [], "commands": [], "would_change": False}
    try:
        wanted = wanted_rules(p["rules"], p["owners"], ipv6=ipv6_on or bool(p["ipv6"]))
        if p["guard"]:
            result["guard"] = check_guard(current, wanted, p["guard"])
        to_add, to_delete, foreign = plan(current, wanted, p["owners"], p["legacy"], p["adopt"])
        if enabled or p["enabled"]:
            check_keep_open(simulate(current, to_add, to_delete), p["keep_open"])
    except PlanError as exc:
        module.fail_json(msg=f"no ufw rule was changed: {exc}", plan_ok=False, **result)
    policies = policy_changes(file_defaults, p["defaults"])
    enable = p["enabled"] is True and not enabled
    state_changed = False
    old_state = {}
    if p["state_file"] and p["state"] is not None:
        state_changed, old_state = write_state(p["state_file"], p["state"])
        prefixes = [p["guard"]["prefix"]] if p["guard"] else p["owners"]
        state_changed = state_changed or any(
            owned_by_any(r.comment, prefixes) for r in [*to_add, *to_delete]
        )
    commands = (
        [r.ufw_args() for r in to_add]
        + policies
        + ([["--force", "enable"]] if enable else [])
        + [r.ufw_args(delete=True) for r in to_delete]
    )
    would_change = bool(commands or default_edits or state_changed)
    result.update(
        added=[" ".join(r.ufw_args()) for r in to_add],
        deleted=[" ".join(r.ufw_args(delete=True)) for r in to_delete],
        satisfied_by_others=[r.describe() for r in foreign],
        legacy_partial=[" ".join(r.ufw_args()) for r in legacy_partial(current, p["legacy"])],
        commands=[" ".join(["ufw", *c]) for c in commands],
        defaults_file=default_edits,
        would_change=would_change,
        plan_ok=True,
        changed=would_change,
        previous_state=old_state,
    )
    if module._diff:
        after = simulate(current, to_add, to_delete)
        before_extra = "" if enabled else "# ufw inactive\n"
        after_extra = "" if (enabled or enable) else "# ufw inactive\n"
        result["diff"] = {
            "before_header": "ufw rules",
            "after_header": "ufw rules",
            "before": before_extra + render(current),
            "after": after_extra + render(after),
        }
    if module.check_mode or not would_change:
        module.exit_json(**result)
    if default_edits:
        with open(p["default_file"], encoding="utf-8") as handle:
            text = set_defaults(handle.read(), default_edits)
        module.atomic_move(_tmp_with(text, p["default_file"]), p["default_file"])
        if enabled:
            ufw.run(["reload"])
    for args in commands:
        ufw.run(args)
    if state_changed:
        state = dict(p["state"])
        state["applied_at"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        os.makedirs(os.path.dirname(p["state_file"]) or ".", exist_ok=True)
        module.atomic_move(
            _tmp_with(json.dumps(state, indent=2, sort_keys=True) + "\n", p["state_file"]),
            p["state_file"],
        )
        result["state"] = state
    module.exit_json(**result)


def _tmp_with(text, near):
    directory = os.path.dirname(near) or "."
    os.makedirs(directory, exist_ok=True)
    fd, path = tempfile.mkstemp(dir=directory, prefix=".opsbook-")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(path, 0o644)
    return path


if __name__ == "__main__":
    main()
