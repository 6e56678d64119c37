"""Fetching and validating the Cloudflare ranges (the controller-side module's logic), against
a real HTTP server on 127.0.0.1: every good and bad input the issue lists."""

from __future__ import annotations

import json

import pytest
from firewall_helpers import CF_V4, CF_V6

from cloudflare_server import CfServer, Route

PARAMS = {
    "source": "fetch",
    "sources": [],
    "bundled": {},
    "timeout": 2,
    "min_ipv4": 10,
    "min_ipv6": 5,
    "max_per_family": 1000,
    "min_prefix_ipv4": 8,
    "min_prefix_ipv6": 16,
    "max_bytes": 1048576,
    "validate_certs": True,
}


def resolve(cfmod, server: CfServer, kinds=("json", "text"), **over):
    params = dict(PARAMS, sources=server.sources(kinds), **over)
    return cfmod.resolve(params)


def test_json_source_wins_and_is_normalized(cfmod, cf_server):
    cf_server.serve_lists([*list(reversed(CF_V4)), CF_V4[0]], [v.upper() for v in CF_V6], "abc")
    result, attempts = resolve(cfmod, cf_server)
    assert attempts == []
    assert result["origin"] == cf_server.url("/client/v4/ips")
    assert result["etag"] == "abc"
    assert len(result["ipv4"]) == 15
    assert len(result["ipv6"]) == 7
    assert result["ipv6"][0] == "2400:cb00::/32"  # lower-cased, sorted
    # the digest identifies the set, whatever the order the source used
    cf_server.serve_lists(CF_V4, CF_V6, "abc")
    again, _ = resolve(cfmod, cf_server)
    assert again["digest"] == result["digest"]


def test_text_lists_are_the_fallback(cfmod, cf_server):
    cf_server.serve_lists(CF_V4, CF_V6)
    cf_server.routes["/client/v4/ips"] = Route(status=503, body=b"down")
    result, attempts = resolve(cfmod, cf_server)
    assert result["origin"].startswith(cf_server.url("/ips-v4"))
    assert len(attempts) == 1
    assert "HTTP error 503" in attempts[0]
    assert result["etag"] == "e14+e16"


def _bad(cfmod, server, kinds=("json",)):
    with pytest.raises(cfmod.RangeError) as err:
        resolve(cfmod, server, kinds)
    return str(err.value)


def _json(server, doc):
    server.routes["/client/v4/ips"] = Route(
        body=json.dumps(doc).encode(), headers={"Content-Type": "application/json"}
    )


def _doc(v4=CF_V4, v6=CF_V6, success=True):
    return {"success": success, "result": {"ipv4_cidrs": v4, "ipv6_cidrs": v6, "etag": "x"}}


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        (lambda s: s.routes.update({"/client/v4/ips": Route(status=500)}), "HTTP error 500"),
        (lambda s: s.routes.update({"/client/v4/ips": Route(delay=3, body=b"{}")}), "timed out"),
        (
            lambda s: s.routes.update(
                {"/client/v4/ips": Route(status=302, headers={"Location": "/client/v4/ips"})}
            ),
            "redirect loop",
        ),
        (
            lambda s: s.routes.update(
                {
                    "/client/v4/ips": Route(
                        body=b"<!DOCTYPE html><html>Attention Required</html>",
                        headers={"Content-Type": "text/html"},
                    )
                }
            ),
            "HTML page instead of a list",
        ),
        (lambda s: s.routes.update({"/client/v4/ips": Route(body=b"")}), "empty response"),
        (
            lambda s: s.routes.update(
                {
                    "/client/v4/ips": Route(
                        body=json.dumps(_doc()).encode(), truncate_to=200
                    )
                }
            ),
            "truncated response",
        ),
        (lambda s: s.routes.update({"/client/v4/ips": Route(body=b'{"success": true, "res')}),
         "not valid JSON"),
        (lambda s: _json(s, _doc(success=False)), "success=false"),
        (lambda s: _json(s, _doc(v4=[*CF_V4, "104.16.0.0/33"])), "not a valid CIDR"),
        (lambda s: _json(s, _doc(v4=[*CF_V4, "banana"])), "not a valid CIDR"),
        (lambda s: _json(s, _doc(v4=[*CF_V4, "104.16.0.1/13"])), "host bits set"),
        (lambda s: _json(s, _doc(v4=[*CF_V4, "2400:cb00::/32"])), "an IPv6 range"),
        (lambda s: _json(s, _doc(v6=[*CF_V6, "104.16.0.0/13"])), "an IPv4 range"),
        (lambda s: _json(s, _doc(v4=[*CF_V4, "0.0.0.0/0"])), "broader than /8"),
        (lambda s: _json(s, _doc(v4=[*CF_V4, "10.0.0.0/8"])), "not a public range"),
        (lambda s: _json(s, _doc(v4=CF_V4[:9])), "only 9 IPv4 range(s)"),
        (lambda s: _json(s, _doc(v6=[])), "only 0 IPv6 range(s)"),
        (
            lambda s: _json(s, _doc(v4=[f"45.{i // 256}.{i % 256}.0/24" for i in range(1001)])),
            "1001 IPv4 ranges, more than the maximum 1000",
        ),
    ],
    ids=[
        "http-error", "timeout", "redirect-loop", "html", "empty", "truncated-body",
        "truncated-json", "success-false", "bad-prefix", "garbage", "host-bits", "v6-in-v4",
        "v4-in-v6", "whole-internet", "private", "too-few-v4", "no-v6", "absurd-size",
    ],
)  # fmt: skip
def test_every_bad_json_input_is_refused_with_its_reason(cfmod, cf_server, setup, reason):
    setup(cf_server)
    message = _bad(cfmod, cf_server)
    assert reason in message
    assert cf_server.url("/client/v4/ips") in message


@pytest.mark.parametrize(
    ("v4_body", "reason"),
    [
        ("\n".join(CF_V4)[:-6], "not a valid CIDR"),  # cut mid-line: 131.0.72.0/22 -> 131.0.7
        ("\n".join(CF_V4[:4]), "only 4 IPv4"),  # cut at a line boundary
        ("<html><body>Just a moment...</body></html>", "HTML page"),
        ("\n\n\n", "empty response"),
    ],
    ids=["cut-mid-line", "cut-at-line", "html", "blank"],
)
def test_bad_text_lists_are_refused(cfmod, cf_server, v4_body, reason):
    cf_server.serve_lists(CF_V4, CF_V6)
    cf_server.routes["/ips-v4"] = Route(body=v4_body.encode())
    message = _bad(cfmod, cf_server, kinds=("text",))
    assert reason in message


def test_all_sources_failing_names_each_reason(cfmod, cf_server):
    _json(cf_server, _doc(success=False))
    message = _bad(cfmod, cf_server, kinds=("json", "text"))
    assert "success=false" in message
    assert "HTTP error 404" in message  # the text lists are not served


def test_bundled_list_only_when_asked(cfmod, cf_server):
    bundled = {"date": "2026-11-27", "ipv4": CF_V4, "ipv6": CF_V6}
    cf_server.routes.clear()
    # fetching fails: the bundled list is not used silently
    with pytest.raises(cfmod.RangeError):
        resolve(cfmod, cf_server, bundled=bundled)
    result, _ = resolve(cfmod, cf_server, source="bundled", bundled=bundled)
    assert result["origin"] == "bundled 2026-11-27"
    assert len(result["ipv4"]) == 15
    assert len(result["ipv6"]) == 7
    with pytest.raises(cfmod.RangeError, match="bundled list is invalid"):
        resolve(cfmod, cf_server, source="bundled", bundled={"ipv4": CF_V4[:3], "ipv6": CF_V6})


def test_no_sources_is_an_error(cfmod):
    with pytest.raises(cfmod.RangeError, match="no sources configured"):
        cfmod.resolve(dict(PARAMS))


def test_role_bundled_default_is_the_lead_list(cfmod):
    import yaml
    from firewall_helpers import ROOT

    defaults = yaml.safe_load((ROOT / "roles/firewall/defaults/main.yml").read_text())
    bundled = defaults["firewall_cloudflare_bundled"]
    assert bundled["ipv4"] == CF_V4
    assert bundled["ipv6"] == CF_V6
    assert bundled["date"]
    v4, v6 = cfmod.validate_ranges(bundled["ipv4"], bundled["ipv6"])
    assert (len(v4), len(v6)) == (15, 7)
