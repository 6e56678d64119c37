#!/usr/bin/python3
"""Fetch and validate Cloudflare's published IP ranges (runs once, on the controller)."""

from __future__ import annotations

# Ansible module layout: DOCUMENTATION/RETURN come before the imports (E402), and the module
# code is not type-annotated (it is shipped as is by AnsiballZ; the logic is covered
# by tests/firewall/ instead).
# ruff: noqa: E402, ANN001, ANN201, ANN202

DOCUMENTATION = r"""
---
module: firewall_cloudflare_ranges
short_description: Fetch and validate the Cloudflare IP ranges, or return the bundled list
description:
  - Tries each source in order (the JSON API, then the plain text lists) and returns the first
    list that passes every check; fails with one message naming each source's reason otherwise.
  - Checks, in this order, per source - HTTP status, redirects (no loops), timeout, body size,
    empty body, HTML instead of data, JSON C(success) true, every entry a CIDR network of the
    right family with no host bits, globally routable, not broader than the minimum prefix,
    duplicates removed, count within the bounds.
  - The bundled list is used only when I(source=bundled); it is never a silent fallback.
  - Read-only; runs the same in check mode.
options:
  source:
    description: C(fetch) the lists from I(sources), or use the C(bundled) list.
    type: str
    choices: [fetch, bundled]
    default: fetch
  sources:
    description:
      - Sources tried in order. C({type: json, url}) is the Cloudflare API
        (C(success), C(result.ipv4_cidrs), C(result.ipv6_cidrs), C(result.etag)).
        C({type: text, ipv4_url, ipv6_url}) are the one-range-per-line lists.
    type: list
    elements: dict
    default: []
  bundled:
    description: The bundled list, C({ipv4, ipv6, date}); used only when I(source=bundled).
    type: dict
    default: {}
  timeout:
    description: Seconds per HTTP request.
    type: int
    default: 10
  min_ipv4:
    description: Fewest IPv4 ranges accepted.
    type: int
    default: 10
  min_ipv6:
    description: Fewest IPv6 ranges accepted.
    type: int
    default: 5
  max_per_family:
    description: Most ranges accepted per family.
    type: int
    default: 1000
  min_prefix_ipv4:
    description: Broadest IPv4 prefix accepted (a /0 would open the port to everyone).
    type: int
    default: 8
  min_prefix_ipv6:
    description: Broadest IPv6 prefix accepted.
    type: int
    default: 16
  max_bytes:
    description: Largest response body read.
    type: int
    default: 1048576
  validate_certs:
    description: Verify TLS certificates.
    type: bool
    default: true
  lock_file:
    description:
      - Take this lock first (before fetching) and hold it until the ansible-playbook run
        exits; a second run waits I(lock_wait) seconds, then fails naming the holder.
    type: path
  lock_wait:
    description: Seconds to wait for the lock.
    type: int
    default: 10
  lock_label:
    description: What the lock protects, for the messages.
    type: str
    default: Cloudflare rules update
"""

RETURN = r"""
ipv4:
  description: Validated IPv4 ranges, sorted, no duplicates.
  type: list
  returned: success
ipv6:
  description: Validated IPv6 ranges, sorted, no duplicates.
  type: list
  returned: success
etag:
  description: The API's C(result.etag), else the HTTP ETag header(s), else empty.
  type: str
  returned: success
digest:
  description: sha256 of the sorted ranges (identifies the list whatever its order).
  type: str
  returned: success
origin:
  description: Where the list came from (URL, or C(bundled <date>)).
  type: str
  returned: success
attempts:
  description: Every source tried and why it was rejected.
  type: list
  returned: always
"""

import fcntl
import hashlib
import http.client
import ipaddress
import json
import os
import select
import socket
import ssl
import time
import urllib.error
import urllib.request

try:
    from ansible.module_utils.basic import AnsibleModule
except ImportError:  # pragma: no cover - imported by the unit tests without ansible
    AnsibleModule = None

FAMILIES = (("ipv4", 4), ("ipv6", 6))


class RangeError(Exception):
    """The list (or the response carrying it) is not acceptable; the message says why."""


DEFAULT_BOUNDS = {
    "min_ipv4": 10,
    "min_ipv6": 5,
    "max_per_family": 1000,
    "min_prefix_ipv4": 8,
    "min_prefix_ipv6": 16,
}


def parse_family(entries, version, min_prefix):
    """Parse one family's entries into sorted unique networks; RangeError on any bad entry."""
    family = f"IPv{version}"
    if not isinstance(entries, list):
        raise RangeError(f"the {family} list is not a list")
    seen = {}
    for raw in entries:
        if not isinstance(raw, str) or not raw.strip():
            raise RangeError(f"{family} entry {raw!r} is not a CIDR")
        text = raw.strip()
        try:
            net = ipaddress.ip_network(text, strict=True)
        except ValueError as exc:
            raise RangeError(f"{family} entry {text!r} is not a valid CIDR ({exc})") from None
        if net.version != version:
            raise RangeError(f"{family} list holds {text!r}, an IPv{net.version} range")
        if "/" not in text:
            raise RangeError(f"{family} entry {text!r} has no prefix length")
        if net.prefixlen < min_prefix:
            raise RangeError(
                f"{family} entry {text!r} is broader than /{min_prefix} (refusing to open the "
                "port that widely)"
            )
        if not net.is_global:
            raise RangeError(f"{family} entry {text!r} is not a public range")
        seen[str(net)] = net
    return [str(n) for n in sorted(seen.values())]


def validate_ranges(ipv4, ipv6, bounds=None):
    """Return (ipv4, ipv6) normalized, or raise RangeError naming the first problem."""
    b = dict(DEFAULT_BOUNDS, **(bounds or {}))
    v4 = parse_family(ipv4, 4, b["min_prefix_ipv4"])
    v6 = parse_family(ipv6, 6, b["min_prefix_ipv6"])
    for name, nets, low in (("IPv4", v4, b["min_ipv4"]), ("IPv6", v6, b["min_ipv6"])):
        if len(nets) < low:
            raise RangeError(
                f"only {len(nets)} {name} range(s), fewer than the minimum {low} "
                "(truncated or empty list?)"
            )
        if len(nets) > b["max_per_family"]:
            raise RangeError(
                f"{len(nets)} {name} ranges, more than the maximum {b['max_per_family']}"
            )
    return v4, v6


def digest(ipv4, ipv6):
    return hashlib.sha256("\n".join([*ipv4, *ipv6]).encode()).hexdigest()


def _looks_like_html(body, content_type):
    head = body.lstrip()[:200].lower()
    return "html" in (content_type or "").lower() or head.startswith((b"<", b"<!doctype"))


class _NoLoopRedirects(urllib.request.HTTPRedirectHandler):
    max_redirections = 5


def http_get(url, timeout, max_bytes, validate_certs=True):
    """GET url; return (body bytes, headers). RangeError with a short reason on failure."""
    if not url.startswith(("https://", "http://")):
        raise RangeError(f"{url}: only http(s) URLs are allowed")
    context = ssl.create_default_context()
    if not validate_certs:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    opener = urllib.request.build_opener(
        _NoLoopRedirects(), urllib.request.HTTPSHandler(context=context)
    )
    request = urllib.request.Request(
        url, headers={"User-Agent": "opsbook-firewall/1", "Accept": "*/*"}
    )
    try:
        with opener.open(request, timeout=timeout) as resp:
            body = resp.read(max_bytes + 1)
            headers = resp.headers
    except urllib.error.HTTPError as exc:
        if 300 <= exc.code < 400:
            raise RangeError(
                f"{url}: redirect loop or too many redirects (HTTP {exc.code})"
            ) from None
        raise RangeError(f"{url}: HTTP error {exc.code} {exc.reason}") from None
    except http.client.IncompleteRead as exc:
        raise RangeError(
            f"{url}: truncated response ({len(exc.partial)} bytes, connection closed early)"
        ) from None
    except TimeoutError:
        raise RangeError(f"{url}: timed out after {timeout}s") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, (TimeoutError, socket.timeout)):
            raise RangeError(f"{url}: timed out after {timeout}s") from None
        raise RangeError(f"{url}: cannot connect ({reason})") from None
    except (http.client.HTTPException, OSError) as exc:
        raise RangeError(f"{url}: request failed ({exc.__class__.__name__}: {exc})") from None
    if len(body) > max_bytes:
        raise RangeError(f"{url}: response larger than {max_bytes} bytes")
    declared = headers.get("Content-Length")
    if declared and declared.isdigit() and len(body) < int(declared):
        raise RangeError(
            f"{url}: truncated response ({len(body)} of {declared} bytes, connection closed early)"
        )
    if not body.strip():
        raise RangeError(f"{url}: empty response body")
    if _looks_like_html(body, headers.get("Content-Type")):
        raise RangeError(f"{url}: got an HTML page instead of a list")
    return body, headers


def parse_json_body(body):
    """The API document -> (ipv4 entries, ipv6 entries, etag)."""
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise RangeError(f"response is not valid JSON (truncated?): {exc}") from None
    if not isinstance(doc, dict):
        raise RangeError("JSON response is not an object")
    if doc.get("success") is not True:
        errors = doc.get("errors") or []
        detail = f" (errors: {json.dumps(errors)[:200]})" if errors else ""
        raise RangeError(f"JSON response has success={json.dumps(doc.get('success'))}{detail}")
    result = doc.get("result")
    if not isinstance(result, dict):
        raise RangeError("JSON response has no result object")
    for key in ("ipv4_cidrs", "ipv6_cidrs"):
        if not isinstance(result.get(key), list):
            raise RangeError(f"JSON response has no result.{key} list")
    etag = result.get("etag")
    return result["ipv4_cidrs"], result["ipv6_cidrs"], etag if isinstance(etag, str) else ""


def parse_text_body(body):
    """One range per line; blank lines ignored; anything else must be a CIDR (checked later)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise RangeError("response is not UTF-8 text") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def fetch_source(source, timeout, max_bytes, bounds, validate_certs=True, get=http_get):
    """Fetch one source and validate it. Returns a result dict or raises RangeError."""
    kind = source.get("type")
    if kind == "json":
        url = source.get("url")
        if not url:
            raise RangeError("json source without url")
        body, _ = get(url, timeout, max_bytes, validate_certs)
        try:
            v4_raw, v6_raw, etag = parse_json_body(body)
            v4, v6 = validate_ranges(v4_raw, v6_raw, bounds)
        except RangeError as exc:
            raise RangeError(f"{url}: {exc}") from None
        return {"ipv4": v4, "ipv6": v6, "etag": etag, "origin": url}
    if kind == "text":
        urls = (source.get("ipv4_url"), source.get("ipv6_url"))
        if not all(urls):
            raise RangeError("text source needs ipv4_url and ipv6_url")
        entries, etags = [], []
        for url in urls:
            body, headers = get(url, timeout, max_bytes, validate_certs)
            entries.append(parse_text_body(body))
            etags.append(headers.get("ETag") or "")
        try:
            v4, v6 = validate_ranges(entries[0], entries[1], bounds)
        except RangeError as exc:
            raise RangeError(f"{urls[0]} + {urls[1]}: {exc}") from None
        etag = "+".join(etags) if all(etags) else ""
        return {"ipv4": v4, "ipv6": v6, "etag": etag, "origin": " + ".join(urls)}
    raise RangeError(f"unknown source type {kind!r} (json or text)")


def resolve(params, get=http_get):
    """The whole decision: returns (result dict, attempts); raises RangeError on failure."""
    bounds = {k: params[k] for k in DEFAULT_BOUNDS}
    attempts = []
    if params["source"] == "bundled":
        bundled = params.get("bundled") or {}
        try:
            v4, v6 = validate_ranges(bundled.get("ipv4"), bundled.get("ipv6"), bounds)
        except RangeError as exc:
            raise RangeError(f"the bundled list is invalid: {exc}") from None
        result = {
            "ipv4": v4,
            "ipv6": v6,
            "etag": "",
            "origin": f"bundled {bundled.get('date', '(undated)')}",
        }
    else:
        if not params["sources"]:
            raise RangeError("no sources configured (firewall_cloudflare_sources is empty)")
        result = None
        for source in params["sources"]:
            try:
                result = fetch_source(
                    source,
                    params["timeout"],
                    params["max_bytes"],
                    bounds,
                    params.get("validate_certs", True),
                    get,
                )
                break
            except RangeError as exc:
                attempts.append(str(exc))
        if result is None:
            raise RangeError("; ".join(attempts))
    result["digest"] = digest(result["ipv4"], result["ipv6"])
    return result, attempts


# --- The lock: one run at a time per inventory -------------------------------------------
# A detached holder process takes flock on the lock file and keeps it until the
# ansible-playbook process that ran this task exits; the kernel drops the lock even when
# the run is killed, so it is never left stale.


def _ppid(pid):
    with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
        stat = handle.read()
    return int(stat.rsplit(")", 1)[1].split()[1])


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return [a.decode("utf-8", "replace") for a in handle.read().split(b"\0") if a]
    except OSError:
        return []


def find_playbook_pid(start=None):
    """The outermost ancestor running ansible-playbook (workers are forks of it)."""
    pid, found = start or os.getpid(), None
    while pid > 1:
        argv = _cmdline(pid)
        if any(os.path.basename(a) == "ansible-playbook" for a in argv[:2]):
            found = pid
        try:
            pid = _ppid(pid)
        except (OSError, ValueError, IndexError):
            break
    return found


def _alive(pid):
    """True while pid runs (a zombie waiting to be reaped counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def describe_holder(path):
    try:
        with open(path, encoding="utf-8") as handle:
            info = json.load(handle)
        return f"pid {info.get('owner_pid')}, since {info.get('since')}"
    except (OSError, ValueError):
        return "holder unknown"


def _hold(path, wait, owner_pid, label, report_fd):
    """In the detached holder: lock, report, then wait for the owner to exit."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.write(report_fd, ("busy " + describe_holder(path)).encode())
                os._exit(0)
            time.sleep(0.2)
    info = {
        "label": label,
        "owner_pid": owner_pid,
        "holder_pid": os.getpid(),
        "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(info).encode() + b"\n", 0)
    os.write(report_fd, f"ok {os.getpid()}".encode())
    os.close(report_fd)
    while _alive(owner_pid):
        time.sleep(0.2)
    os._exit(0)


def acquire(path, wait, owner_pid, label):
    """Start the holder; return ('ok', holder_pid) or ('busy', description)."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # first child: detach completely, so ansible does not wait for it
        try:
            os.setsid()
            if os.fork() != 0:
                os._exit(0)
            os.close(read_fd)
            null = os.open(os.devnull, os.O_RDWR)
            for target in (0, 1, 2):
                os.dup2(null, target)
            os.closerange(3, write_fd)
            os.closerange(write_fd + 1, 1024)
            _hold(path, wait, owner_pid, label, write_fd)
        finally:
            os._exit(1)
    os.close(write_fd)
    os.waitpid(pid, 0)
    chunks, deadline = [], time.monotonic() + wait + 10
    while time.monotonic() < deadline:
        ready, _, _ = select.select([read_fd], [], [], 0.5)
        if ready:
            data = os.read(read_fd, 4096)
            if not data:
                break
            chunks.append(data)
            if b" " in b"".join(chunks):
                break
    os.close(read_fd)
    message = b"".join(chunks).decode()
    status, _, detail = message.partition(" ")
    if status == "ok":
        return "ok", int(detail)
    if status == "busy":
        return "busy", detail
    return "error", message or "the lock holder process did not answer"


def main():  # pragma: no cover - exercised through ansible in the lab tests
    module = AnsibleModule(
        argument_spec={
            "source": {"type": "str", "choices": ["fetch", "bundled"], "default": "fetch"},
            "sources": {"type": "list", "elements": "dict", "default": []},
            "bundled": {"type": "dict", "default": {}},
            "timeout": {"type": "int", "default": 10},
            "min_ipv4": {"type": "int", "default": 10},
            "min_ipv6": {"type": "int", "default": 5},
            "max_per_family": {"type": "int", "default": 1000},
            "min_prefix_ipv4": {"type": "int", "default": 8},
            "min_prefix_ipv6": {"type": "int", "default": 16},
            "max_bytes": {"type": "int", "default": 1048576},
            "validate_certs": {"type": "bool", "default": True},
            "lock_file": {"type": "path"},
            "lock_wait": {"type": "int", "default": 10},
            "lock_label": {"type": "str", "default": "Cloudflare rules update"},
        },
        supports_check_mode=True,
    )
    p = module.params
    lock = {}
    if p["lock_file"]:
        owner = find_playbook_pid()
        if not owner:
            module.fail_json(msg="cannot find the ansible-playbook process to tie the lock to")
        status, detail = acquire(p["lock_file"], p["lock_wait"], owner, p["lock_label"])
        if status == "busy":
            module.fail_json(
                msg=(
                    f"another {p['lock_label']} is running ({detail}; lock {p['lock_file']}); "
                    f"waited {p['lock_wait']}s, giving up - nothing was changed"
                )
            )
        if status != "ok":
            module.fail_json(msg=f"could not take the lock {p['lock_file']}: {detail}")
        lock = {"lock_holder_pid": detail, "lock_owner_pid": owner}
    try:
        result, attempts = resolve(module.params)
    except RangeError as exc:
        module.fail_json(
            msg=f"Cloudflare ranges rejected, no node was changed: {exc}", attempts=[str(exc)]
        )
    module.exit_json(changed=False, attempts=attempts, **lock, **result)


if __name__ == "__main__":
    main()
