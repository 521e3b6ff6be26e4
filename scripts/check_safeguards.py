#!/usr/bin/env python3
"""Remove each safeguard in turn, in a copy of the code, and show that scenarios of the suite fail without it.

Usage: .venv/bin/python scripts/check_safeguards.py   (about three minutes; prints one line per safeguard)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Safeguard:
    name: str
    file: str
    edits: list[tuple[str, str]]
    tests: list[str]


SAFEGUARDS = [
    Safeguard(
        "lease check before landing",
        "swarm/pipeline.py",
        [('        """The attempt may go on only while its lease is still the one in Redis."""\n',
          '        """The attempt may go on only while its lease is still the one in Redis."""\n        return\n')],
        ["tests/faults/test_safeguards.py::test_a_worker_stalled_after_its_full_oracle_cannot_land_once_its_lease_is_gone",
         "tests/test_pipeline.py::test_a_lease_lost_mid_attempt_cannot_land"],
    ),
    Safeguard(
        "compare-and-swap of main",
        "swarm/repo.py",
        [('                f"--force-with-lease={main_ref}:{old}",\n', ""),
         ('                f"{new}:{main_ref}",\n', '                f"+{new}:{main_ref}",\n')],
        ["tests/test_repo.py", "tests/faults/test_faults.py::test_two_swarms_on_one_origin_keep_main_linear_and_green"],
    ),
    Safeguard(
        "landed-ref create",
        "swarm/repo.py",
        [('                f"--force-with-lease={landed_ref}:",\n', ""),
         ('                f"{new}:{landed_ref}",\n', '                f"+{new}:{landed_ref}",\n')],
        ["tests/test_repo.py",
         "tests/test_pipeline.py::test_two_attempts_of_one_task_racing_to_land_exactly_one_lands"],
    ),
    Safeguard(
        "protected-path check",
        "swarm/pipeline.py",
        [("        touched = [c.path for c in changes if matches(c.path, protected)]\n",
          "        touched: list[str] = []\n")],
        ["tests/test_pipeline.py -k protected"],
    ),
    Safeguard(
        "heartbeat",
        "swarm/leases.py",
        [("        self._thread.start()\n", "")],
        ["tests/faults/test_safeguards.py::test_an_attempt_longer_than_the_lease_ttl_keeps_its_lease_and_lands",
         "tests/test_leases.py"],
    ),
    Safeguard(
        "agent sandbox",
        "swarm/workspace.py",
        [("        if self.settings.unsafe_no_sandbox:\n            return None\n",
          "        if True:\n            return None\n")],
        ["tests/test_pipeline.py::test_a_process_that_escaped_the_agents_group_cannot_change_what_the_oracle_tests"],
    ),
    Safeguard(
        "structural refusal",
        "swarm/guard.py",
        [("    found = []\n", "    found: list[str] = []\n    return found\n")],
        ["tests/test_guard.py -k link-to-etc"],
    ),
    Safeguard(
        "skipped may not rise",
        "swarm/counts.py",
        [("        if self.skipped > baseline.skipped:\n", "        if False:\n"),
         ('        return f"skipped count rose in area(s) {\', \'.join(rose)}" if rose else ""\n',
          '        return ""\n')],
        ["tests/test_oracle.py::test_judge_rejects_more_skipped_in_total_or_in_any_area"],
    ),
    Safeguard(
        "jail around the artifact",
        "swarm/judge.py",
        [('        if self.sandboxed:\n            env["SWARM_JAIL"]',
          '        if False:\n            env["SWARM_JAIL"]')],
        ["tests/test_judge.py::test_an_engine_that_hands_the_work_to_sqlite3_gains_nothing"],
    ),
    Safeguard(
        "harness from main",
        "swarm/judge.py",
        [("        repo.export(self.mirror, main, judge_dir, only=harness)\n",
          "        repo.export(self.mirror, commit, judge_dir, only=harness)\n")],
        ["tests/test_judge.py::test_a_rewritten_harness_is_not_the_judge"],
    ),
]  # fmt: skip


def run(copy: Path, tests: list[str]) -> tuple[int, str]:
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--timeout=300"]
    for t in tests:
        argv += t.split()
    # The toolchains the judge's tests build with (cargo) stay on PATH; nothing else of this shell leaks in.
    path = os.pathsep.join([str(Path.home() / ".cargo" / "bin"), "/usr/bin", "/bin"])
    out = subprocess.run(argv, cwd=copy, env={"PYTHONPATH": str(copy), "PATH": path, "HOME": str(Path.home())},
                         capture_output=True, text=True)  # fmt: skip
    return out.returncode, (out.stdout.strip().splitlines() or ["(no output)"])[-1]


def main() -> int:
    broken = 0
    with tempfile.TemporaryDirectory() as tmp:
        for guard in SAFEGUARDS:
            copy = Path(tmp) / guard.name.replace(" ", "-")
            shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(".venv", ".git", "target", "__pycache__"))
            path = copy / guard.file
            text = path.read_text()
            for old, new in guard.edits:
                if old not in text:
                    print(f"{guard.name}: the code to remove was not found in {guard.file}; update this script")
                    return 2
                text = text.replace(old, new)
            path.write_text(text)
            code, summary = run(copy, guard.tests)
            caught = code != 0
            broken += 0 if caught else 1
            print(f"{'caught' if caught else 'MISSED'}  without the {guard.name}: {summary}")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
