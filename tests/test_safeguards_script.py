"""Each safeguard, removed alone in a copy of the code, makes scenarios of the suite fail (check_safeguards.py)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

from tests.cluster import REPO_ROOT

_spec = importlib.util.spec_from_file_location("check_safeguards", REPO_ROOT / "scripts" / "check_safeguards.py")
assert _spec is not None and _spec.loader is not None
check_safeguards = sys.modules["check_safeguards"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_safeguards)

# The run itself may take up to 900 s (its subprocess timeout): pytest's 300 s default would cut it.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(960)]


FULL = os.environ.get("SAFEGUARDS_FULL") == "1"
"""The whole check (every safeguard removed, a tampering run among them: ten minutes or more) instead of the
quick one (every safeguard's code still in place, the QUICK ones removed)."""


@pytest.mark.timeout(1800)
def test_removing_any_one_safeguard_fails_the_suite() -> None:
    argv = [sys.executable, str(REPO_ROOT / "scripts" / "check_safeguards.py"), *([] if FULL else ["--quick"])]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=1800)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == (len(check_safeguards.SAFEGUARDS) if FULL else len(check_safeguards.QUICK)), out.stdout
    assert all(line.startswith("caught") for line in lines), out.stdout
    if FULL:  # without a safeguard against tampering, its strategy lands and the clean room says so
        assert sum("1 landed with a gain" in line for line in lines) == 1, out.stdout
