"""ansible.builtin.template, told what the node's probe already read about `dest`.

A role's probe (node_probe, ssh_node_state) reads every file the role writes in one module
run. Given that answer as `probe`, this action renders the template on the controller (the
template lookup, the same rendering the module does) and, when the probed file is a regular
file with that content (Ansible's SHA-1) and the wanted owner, group and mode, reports `ok`
without contacting the node again. Anything else - no probe answer, a difference, a link, a
symbolic mode - is the template action itself, with its check mode, --diff, validation and
idempotence. It is the one guard mechanism of opsbook's roles.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from ansible.plugins.action.template import ActionModule as TemplateAction

OCTAL_MODE = re.compile(r"^0?[0-7]{3,4}$")
PLAIN_EXCLUDED = ("newline_sequence", "output_encoding", "follow", "trim_blocks", "lstrip_blocks")


def _mode(value: object) -> str | None:
    """A mode as the probe reports it (0644), or None when it cannot be compared."""
    if isinstance(value, int):
        return f"{value:04o}"
    text = str(value)
    return f"{int(text, 8):04o}" if OCTAL_MODE.match(text) else None


def matches(probe: dict[str, Any], content: str, args: dict[str, Any]) -> bool:
    """The probed file is a regular file with this content, owner, group and mode."""
    if not probe.get("exists") or not probe.get("isreg") or "checksum" not in probe:
        return False
    if hashlib.sha1(content.encode("utf-8")).hexdigest() != probe["checksum"]:
        return False
    for key in ("owner", "group"):
        if args.get(key) is not None and str(args[key]) != probe.get(key):
            return False
    if args.get("mode") is not None:
        wanted = _mode(args["mode"])
        if wanted is None or wanted != probe.get("mode"):
            return False
    return True


class ActionModule(TemplateAction):
    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        args = dict(self._task.args)
        probe = args.pop("probe", None) or {}
        self._task.args = args
        plain = not any(
            k in args for k in ("newline_sequence", "output_encoding", "follow")
        ) and all(
            not k.endswith("_string") and k not in ("trim_blocks", "lstrip_blocks") for k in args
        )
        if probe and plain and "src" in args and "dest" in args:
            lookup = self._shared_loader_obj.lookup_loader.get(
                "ansible.builtin.template", loader=self._loader, templar=self._templar
            )
            content = lookup.run([args["src"]], variables=task_vars)[0]
            if matches(probe, str(content), args):
                return {
                    "changed": False,
                    "dest": args["dest"],
                    "checksum": probe["checksum"],
                    "probe_matched": True,
                    "msg": "the probe found the file as wanted",
                }
        return super().run(tmp, task_vars)
