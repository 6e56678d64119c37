#!/usr/bin/python3
"""Documentation of the probed_template action (plugins/action/probed_template.py): the action
does the work on the controller, or hands over to ansible.builtin.template."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: probed_template
short_description: ansible.builtin.template, trusting the role's probe for a file as wanted
description:
  - Takes every option of M(ansible.builtin.template), plus I(probe).
  - When I(probe) (a file state from node_probe or ssh_node_state) shows C(dest) as a regular
    file whose SHA-1 is that of the rendered template, with the wanted C(owner), C(group) and
    C(mode), reports C(ok) without contacting the node. Otherwise it is
    M(ansible.builtin.template), with its check mode, diff, validation and idempotence.
options:
  probe:
    description: What the probe read about C(dest) (C(exists), C(isreg), C(checksum), C(owner),
      C(group), C(mode)). Empty or omitted - always the template module.
    type: dict
extends_documentation_fragment:
  - ansible.builtin.template_common
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
"""

RETURN = r"""
probe_matched:
  description: True when the probe showed the file as wanted and the node was not contacted.
  type: bool
  returned: when the probe matched
"""
