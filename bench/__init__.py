"""`make bench` (`python -m bench` from the checkout): converge, no-op, refresh, scaling,
driver-overhead and deploy timings on lab nodes.

Not part of the opsbook package (nothing a user runs in production): it lives beside the
tests, and runs its playbooks and its Cloudflare list server with the tests' own helpers
(tests/playbook_run.py, tests/cloudflare_server.py), so tests/ goes on the import path here.
"""

import sys
from pathlib import Path

_TESTS = str(Path(__file__).resolve().parents[1] / "tests")
if _TESTS not in sys.path:
    sys.path.append(_TESTS)
