"""`opsbook deploy`: print the plan (current and new image per Deployment) before acting.

The plan comes from the app_rollout role itself: the playbook runs once with only the
`app-rollout-plan` tags in check mode (it records the running images and works out the new
ones, changing nothing), and the message of its "Show the deploy plan" task is printed. Then
the real run starts; with `--check` that run changes nothing either.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from opsbook.driver import run_playbook
from opsbook.driver.cancel import CancelCallback
from opsbook.driver.events import Event
from opsbook.driver.output import make_output
from opsbook.driver.run import RunSpec

PLAN_TAG = "app-rollout-plan"
PLAN_TASK = "Show the deploy plan"


def plan_message(events: list[Event]) -> str | None:
    """The message of the plan task in a run's compact events (None if it did not run)."""
    for event in events:
        if event.get("event") == "runner_on_ok" and event.get("task", "").endswith(PLAN_TASK):
            return str(event.get("msg", ""))
    return None


def print_plan(args: argparse.Namespace, spec: RunSpec, cancel: CancelCallback) -> int | None:
    """before_run hook of `deploy`: None to go on with the deploy, an exit code to stop."""
    plan_spec = dataclasses.replace(spec, tags=[PLAN_TAG], skip_tags=[], check=True, diff=False)
    events: list[Event] = []
    result = run_playbook(plan_spec, on_event=events.append, cancel=cancel)
    message = plan_message(events)
    if int(result.exit_code) != 0 or message is None:
        out = make_output(json_lines=args.json, verbosity=args.verbose)
        with out:
            pass
        if not args.json:
            print("opsbook deploy: could not work out the plan; nothing was changed", flush=True)
        out.result(result)
        return int(result.exit_code) or 1
    if args.json:
        print(json.dumps({"event": "plan", "msg": message}), flush=True)
    else:
        print("DEPLOY PLAN\n" + "\n".join("  " + line for line in message.splitlines()))
        sys.stdout.flush()
    return None
