"""An aggregate callback that writes the play recap (per-host counters) as JSON to a file.

tests/playbook_run.py enables it for every test's ansible-playbook run, so the tests read the
recap as data instead of parsing the text output. ansible calls v2_playbook_on_stats after the
plays have run, whether hosts failed or were unreachable; a playbook that never runs (a parse
error, --syntax-check stopping early) writes nothing.
"""

from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: recap_file
type: aggregate
short_description: write the play recap as JSON to a file (opsbook's tests)
description:
  - At the end of the run, writes the per-host counters (ok, changed, unreachable, failed,
    skipped, rescued, ignored) as a JSON object by host to the file the option names; without
    the option it does nothing.
options:
  path:
    description: The file to write.
    env:
      - name: OPSBOOK_RECAP_FILE
"""

# the recap's names for ansible's stats (its "failures" is the recap's "failed")
_NAMES = {
    "ok": "ok",
    "changed": "changed",
    "unreachable": "unreachable",
    "failures": "failed",
    "skipped": "skipped",
    "rescued": "rescued",
    "ignored": "ignored",
}


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "recap_file"
    CALLBACK_NEEDS_ENABLED = True

    def v2_playbook_on_stats(self, stats):
        path = self.get_option("path")
        if not path:
            return
        recap = {}
        for host in sorted(stats.processed):
            summary = stats.summarize(host)
            recap[host] = {name: int(summary[key]) for key, name in _NAMES.items()}
        tmp = f"{path}.tmp"
        with open(tmp, "w") as handle:
            json.dump(recap, handle)
        os.replace(tmp, path)
