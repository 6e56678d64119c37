"""The node-side module's logic: parsing ufw's rule files, expanding wanted rules the way ufw
spells them, and the diff (adds, deletes, adoption, legacy cleanup, guard, SSH safety)."""

from __future__ import annotations

import pytest

# Lines as ufw 0.36.2 writes them (captured from a Debian 12 lab node).
USER_RULES = """
*filter
:ufw-user-input - [0:0]
### RULES ###

### tuple ### allow tcp 22 0.0.0.0/0 any 0.0.0.0/0 in
-A ufw-user-input -p tcp --dport 22 -j ACCEPT

### tuple ### allow tcp 443 0.0.0.0/0 any 173.245.48.0/20 in comment=6f7073626f6f6b3a6669726577616c6c3a636c6f7564666c617265
### tuple ### route:allow any any 0.0.0.0/0 any 10.42.0.0/16 in
### tuple ### allow esp any 0.0.0.0/0 any 0.0.0.0/0 in
### tuple ### allow udp any 0.0.0.0/0 53 10.1.2.3 in
### tuple ### allow any 3000 0.0.0.0/0 any 0.0.0.0/0 in
### tuple ### allow tcp 80 0.0.0.0/0 any 0.0.0.0/0 in_eth0
### tuple ### allow tcp 80,443 0.0.0.0/0 any 0.0.0.0/0 Nginx%20Full - in
### tuple ### deny any any 0.0.0.0/0 any 192.0.2.7 in comment=663262
### tuple ### allow tcp 2222 0.0.0.0/0 any 0.0.0.0/0 in comment=6f7073626f6f6b3a737368
### END RULES ###
"""  # noqa: E501
USER6_RULES = """
### tuple ### allow tcp 22 ::/0 any ::/0 in
### tuple ### allow tcp 443 ::/0 any 2001:db8::1 in
"""

SSH = ["opsbook:firewall:ssh"]
OWNERS = ["opsbook:firewall:ssh", "opsbook:firewall:cloudflare", "opsbook:firewall:k3s"]


@pytest.fixture
def current(ufwmod):
    return ufwmod.parse_rules_file(USER_RULES, False) + ufwmod.parse_rules_file(USER6_RULES, True)


def test_parse_reads_every_tuple_with_comments(ufwmod, current):
    assert len(current) == 12
    cf = current[1]
    assert (cf.proto, cf.dport, cf.src, cf.comment) == (
        "tcp", "443", "173.245.48.0/20", "opsbook:firewall:cloudflare",
    )  # fmt: skip
    route = current[2]
    assert route.forward
    assert route.src == "10.42.0.0/16"
    assert route.action == "allow"
    assert current[6].iface_in == "eth0"
    assert current[7].dapp == "Nginx Full"
    assert current[7].dport == "80,443"
    assert current[8].comment == "f2b"
    assert current[8].action == "deny"
    assert current[10].v6
    assert current[10].src == "::/0"


def test_wanted_rules_spell_addresses_like_ufw(ufwmod):
    rules = ufwmod.wanted_rules(
        [
            {"port": [22, 2222], "proto": "tcp", "comment": "opsbook:firewall:ssh"},
            {"port": "2379-2380", "proto": "tcp", "from": ["10.0.0.5/32", "10.0.0.6"],
             "comment": "opsbook:firewall:k3s:etcd"},
            {"port": 443, "proto": "tcp", "from": ["2400:CB00::/32", "104.16.0.0/13"],
             "comment": "opsbook:firewall:cloudflare"},
            {"route": True, "to": "10.42.0.0/16", "comment": "opsbook:firewall:k3s:cidr"},
        ],
        OWNERS,
    )  # fmt: skip
    described = {r.describe() for r in rules}
    assert "in allow tcp from 0.0.0.0/0 to 0.0.0.0/0 port 22  # opsbook:firewall:ssh" in described
    assert "in allow tcp from ::/0 to ::/0 port 2222 (v6)  # opsbook:firewall:ssh" in described
    assert (
        "in allow tcp from 10.0.0.5 to 0.0.0.0/0 port 2379:2380  # opsbook:firewall:k3s:etcd"
        in described
    )
    assert (
        "in allow tcp from 2400:cb00::/32 to ::/0 port 443 (v6)  # opsbook:firewall:cloudflare"
        in described
    )
    assert (
        "route allow any from 0.0.0.0/0 to 10.42.0.0/16  # opsbook:firewall:k3s:cidr" in described
    )
    assert len(rules) == 4 + 2 + 2 + 1  # the route rule to a v4 CIDR is v4 only


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ({"port": 443, "comment": "opsbook:ssh"}, "is not one of"),
        ({"port": "99999", "proto": "tcp", "comment": "opsbook:firewall:ssh"}, "not a port"),
        ({"port": "1:2", "comment": "opsbook:firewall:ssh"}, "needs proto tcp or udp"),
        ({"from": "10.0.0.0/8", "to": "::1", "comment": "opsbook:firewall:ssh"}, "mixes"),
        ({"from": "nonsense", "comment": "opsbook:firewall:ssh"}, "not an address"),
    ],
)
def test_wanted_rules_refuse_bad_specs(ufwmod, spec, error):
    with pytest.raises(ufwmod.PlanError, match=error):
        ufwmod.wanted_rules([spec], OWNERS)


def test_ufw_args_round_trip(ufwmod, current):
    cf = current[1]
    assert cf.ufw_args() == [
        "allow", "in", "proto", "tcp", "from", "173.245.48.0/20", "to", "0.0.0.0/0",
        "port", "443", "comment", "opsbook:firewall:cloudflare",
    ]  # fmt: skip
    assert current[2].ufw_args(delete=True) == [
        "delete", "route", "allow", "from", "10.42.0.0/16", "to", "0.0.0.0/0",
    ]  # fmt: skip
    assert current[6].ufw_args(delete=True)[:5] == ["delete", "allow", "in", "on", "eth0"]
    assert current[7].ufw_args(delete=True) == [
        "delete", "allow", "in", "from", "0.0.0.0/0", "to", "0.0.0.0/0", "app", "Nginx Full",
    ]  # fmt: skip
    assert current[4].ufw_args(delete=True) == [
        "delete", "allow", "in", "proto", "udp", "from", "10.1.2.3", "port", "53", "to",
        "0.0.0.0/0",
    ]  # fmt: skip


def _cf(ufwmod, nets):
    return ufwmod.wanted_rules(
        [{"port": 443, "proto": "tcp", "from": nets, "comment": "opsbook:firewall:cloudflare"}],
        OWNERS,
    )


def test_no_op_plan_is_empty(ufwmod):
    wanted = _cf(ufwmod, ["173.245.48.0/20", "2400:cb00::/32"])
    add, delete, foreign = ufwmod.plan(wanted, list(reversed(wanted)), OWNERS)
    assert (add, delete, foreign) == ([], [], [])


def test_plan_adds_and_deletes_only_owned_rules(ufwmod, current):
    wanted = _cf(ufwmod, ["103.21.244.0/22"])
    add, delete, _ = ufwmod.plan(current, wanted, ["opsbook:firewall:cloudflare"])
    assert [r.src for r in add] == ["103.21.244.0/22"]
    assert [r.src for r in delete] == ["173.245.48.0/20"]  # not the untagged 2001:db8::1 rule


def test_untagged_identical_rule_is_adopted_not_duplicated(ufwmod, current):
    wanted = ufwmod.wanted_rules(
        [{"port": 22, "proto": "tcp", "comment": "opsbook:firewall:ssh"}], OWNERS
    )
    add, delete, _foreign = ufwmod.plan(current, wanted, SSH)
    assert {(r.src, r.comment) for r in add} == {
        ("0.0.0.0/0", "opsbook:firewall:ssh"),
        ("::/0", "opsbook:firewall:ssh"),
    }  # fmt: skip  (ufw updates the comment of the existing rules in place)
    after = ufwmod.simulate(current, add, delete)
    assert len(after) == len(current) - len(delete)
    add, delete, _ = ufwmod.plan(current, wanted, SSH, adopt=False)
    assert add == []
    assert delete == []


def test_rule_of_another_opsbook_owner_satisfies_and_is_never_touched(ufwmod, current):
    # the ssh role's 2222 rule: the firewall wants 2222 too, but must not steal or delete it
    wanted = ufwmod.wanted_rules(
        [{"port": 2222, "proto": "tcp", "comment": "opsbook:firewall:ssh"}], OWNERS
    )
    add, delete, foreign = ufwmod.plan(current, wanted, OWNERS)
    assert [r.comment for r in foreign] == ["opsbook:ssh"]
    assert all(r.comment != "opsbook:ssh" for r in add + delete)
    assert [r.v6 for r in add] == [True]  # only the missing IPv6 twin is added


def test_legacy_cleanup(ufwmod, current):
    legacy = [
        {"proto": "esp"},
        {"port": "3000", "proto": "tcp"},
        {"port": "80", "proto": "tcp", "from": "any"},
        {"port": "443", "proto": "tcp", "from": "any"},
        {"port": "53", "proto": "udp"},  # the 53 rule is a *source* port: not matched
    ]
    _add, delete, _ = ufwmod.plan(current, [], ["opsbook:firewall:k3s"], legacy=legacy)
    gone = {r.describe() for r in delete}
    assert gone == {
        "in allow esp from 0.0.0.0/0 to 0.0.0.0/0",
        "in allow any from 0.0.0.0/0 to 0.0.0.0/0 port 3000",
        "in allow in on eth0 tcp from 0.0.0.0/0 to 0.0.0.0/0 port 80",
        "in allow tcp from 0.0.0.0/0 to 0.0.0.0/0 port 80,443 app Nginx Full",
    }
    # never: the fail2ban deny, the ssh role's rule, a 443 rule from one address
    assert all(r.action == "allow" and not r.comment for r in delete)


def test_legacy_within_deletes_only_rules_wholly_inside_its_ports(ufwmod):
    """The ssh role's retired port: 22/tcp (any source, any interface, the OpenSSH profile)
    goes; 22,80/tcp would also close 80, so it stays and is reported; other ports stay."""
    rules = ufwmod.parse_rules_file(
        "### tuple ### allow tcp 22 0.0.0.0/0 any 0.0.0.0/0 in\n"
        "### tuple ### limit tcp 22 0.0.0.0/0 any 10.0.0.0/8 in_eth0\n"
        "### tuple ### allow tcp 22 0.0.0.0/0 any 0.0.0.0/0 OpenSSH - in\n"
        "### tuple ### allow tcp 22,80 0.0.0.0/0 any 0.0.0.0/0 in\n"
        "### tuple ### allow tcp 2222 0.0.0.0/0 any 0.0.0.0/0 in\n"
        "### tuple ### allow udp 22 0.0.0.0/0 any 0.0.0.0/0 in\n"
        "### tuple ### deny tcp 22 0.0.0.0/0 any 192.0.2.7 in\n",
        False,
    )
    legacy = [{"port": "22", "proto": "tcp", "within": True}]
    _add, delete, _ = ufwmod.plan(rules, [], ["opsbook:firewall:ssh"], legacy=legacy)
    assert [r.describe() for r in delete] == [
        "in allow tcp from 0.0.0.0/0 to 0.0.0.0/0 port 22",
        "in limit in on eth0 tcp from 10.0.0.0/8 to 0.0.0.0/0 port 22",
        "in allow tcp from 0.0.0.0/0 to 0.0.0.0/0 port 22 app OpenSSH",
    ]
    partial = ufwmod.legacy_partial(rules, legacy)
    assert [r.dport for r in partial] == ["22,80"]
    # Another opsbook owner's rule for the port stays, unless any_owner says so.
    tagged = ufwmod.parse_rules_file(
        "### tuple ### allow tcp 22 0.0.0.0/0 any 10.0.0.0/8 in"
        " comment=6f7073626f6f6b3a6669726577616c6c2d737368\n",  # opsbook:firewall-ssh
        False,
    )
    assert ufwmod.plan(tagged, [], [], legacy=legacy)[1] == []
    legacy_any = [dict(legacy[0], any_owner=True)]
    assert [r.comment for r in ufwmod.plan(tagged, [], [], legacy=legacy_any)[1]] == [
        "opsbook:firewall-ssh"
    ]
    # Without within, the old behaviour: any overlap matches, and nothing is partial.
    _add, delete, _ = ufwmod.plan(rules, [], [], legacy=[{"port": "22", "proto": "tcp"}])
    assert "22,80" in [r.dport for r in delete]
    assert ufwmod.legacy_partial(rules, [{"port": "22", "proto": "tcp"}]) == []


def test_guard_refuses_a_large_shrink_unless_forced(ufwmod):
    nets = [f"104.{i}.0.0/16" for i in range(10)]
    current = _cf(ufwmod, nets)
    guard = {"prefix": "opsbook:firewall:cloudflare", "max_remove_fraction": 0.5}
    info = ufwmod.check_guard(current, _cf(ufwmod, nets[:5]), guard)  # exactly half: fine
    assert info == {"current": 10, "wanted": 5, "removed": 5, "refused": False}
    with pytest.raises(ufwmod.PlanError, match="refusing to remove 6 of the 10"):
        ufwmod.check_guard(current, _cf(ufwmod, nets[:4]), guard)
    forced = ufwmod.check_guard(current, _cf(ufwmod, nets[:4]), dict(guard, force=True))
    assert forced["removed"] == 6
    # a first run (nothing applied yet) is never refused
    assert ufwmod.check_guard([], _cf(ufwmod, nets), guard)["current"] == 0


def test_keep_open_protects_the_ssh_connection(ufwmod, current):
    ufwmod.check_keep_open(current, [22])
    without_22 = [r for r in current if r.dport != "22"]
    with pytest.raises(ufwmod.PlanError, match=r"TCP port\(s\) \[22\]"):
        ufwmod.check_keep_open(without_22, [22])
    ufwmod.check_keep_open(without_22, [2222])


def test_policy_changes(ufwmod):
    values = ufwmod.read_defaults(
        'IPV6=yes\nDEFAULT_INPUT_POLICY="ACCEPT"\nDEFAULT_OUTPUT_POLICY="ACCEPT"\n'
        'DEFAULT_FORWARD_POLICY="DROP"\n'
    )
    wanted = {"incoming": "deny", "outgoing": "allow", "routed": "deny"}
    assert ufwmod.policy_changes(values, wanted) == [["default", "deny", "incoming"]]


def test_write_state_ignores_the_timestamp(ufwmod, tmp_path):
    path = tmp_path / "state.json"
    state = {"digest": "d1", "etag": "e"}
    assert ufwmod.write_state(str(path), state)[0] is True
    path.write_text('{"digest": "d1", "etag": "e", "applied_at": "2026-01-01T00:00:00+00:00"}')
    assert ufwmod.write_state(str(path), state)[0] is False
    assert ufwmod.write_state(str(path), {"digest": "d2", "etag": "e"})[0] is True


def test_set_defaults_replaces_or_appends_only_the_given_keys(ufwmod):
    comment = "# IPT_SYSCTL=/etc/ufw/sysctl.conf in a comment\n"
    text = f'IPV6=no\n{comment}IPT_SYSCTL=/etc/ufw/sysctl.conf\nX="1"\n'
    out = ufwmod.set_defaults(text, {"IPV6": "yes", "IPT_SYSCTL": ""})
    assert out == f'IPV6=yes\n{comment}IPT_SYSCTL=\nX="1"\n'
    assert ufwmod.read_defaults(out)["IPT_SYSCTL"] == ""
    # a key the file lacks is appended
    assert ufwmod.set_defaults("IPV6=yes", {"IPT_SYSCTL": ""}) == "IPV6=yes\nIPT_SYSCTL=\n"
