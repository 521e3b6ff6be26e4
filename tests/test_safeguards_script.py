"""Each safeguard, removed alone in a copy of the code, makes scenarios of the suite fail (check_safeguards.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.cluster import REPO_ROOT

# The run itself may take up to 900 s (its subprocess timeout): pytest's 300 s default would cut it.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(960)]


@pytest.mark.timeout(1800)
def test_removing_any_one_safeguard_fails_the_suite() -> None:
    out = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "check_safeguards.py")], capture_output=True,
                         text=True, timeout=1800)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 14 and all(line.startswith("caught") for line in lines), out.stdout
    # Without a safeguard against tampering, its strategy lands and the clean room says so.
    assert sum("1 landed with a gain" in line for line in lines) == 1, out.stdout
