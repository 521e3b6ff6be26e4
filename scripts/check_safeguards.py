#!/usr/bin/env python3
"""Remove each safeguard in turn, in a copy of the code, and show that scenarios of the suite fail without it.

Usage: .venv/bin/python scripts/check_safeguards.py [--quick] [NAME...]   (all by default, ten minutes or more on
two cores; one line per safeguard; NAME picks safeguards by name, e.g. "structural refusal"). --quick checks that
every safeguard's code is still where this script removes it, and removes only the QUICK ones (the suite's short
run; `SAFEGUARDS_FULL=1 make test` runs the whole check in the suite).

A safeguard against tampering names, instead of tests, the strategy of tests/tampering/ (`lands`) that must
land with a gain once the safeguard is gone: the tampering suite then runs that one strategy through a real
worker (TAMPER_ONLY) and its clean room must report it. To add one: the code to remove (`edits`, exact text of
`file` and its replacement) and the strategy it stops, which the suite must refuse while the safeguard is there.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Safeguard:
    name: str
    file: str
    edits: list[tuple[str, str]]
    tests: list[str] = field(default_factory=list)
    lands: str = ""
    """A tampering strategy (tests/tampering/strategies.py) that lands with a gain without this safeguard."""


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
        [('leases = [f"--force-with-lease={main_ref}:{old}", f"--force-with-lease={landed_ref}:"]',
          'leases = [f"--force-with-lease={landed_ref}:"]'),
         ('updates = [f"{moved_to}:{main_ref}", ', 'updates = [f"+{moved_to}:{main_ref}", ')],
        ["tests/test_repo.py",
         "tests/faults/test_faults.py::test_two_swarms_on_one_origin_keep_main_green_one_landing_or_batch_at_a_time"],
    ),
    Safeguard(
        "landed-ref create",
        "swarm/repo.py",
        [('leases = [f"--force-with-lease={main_ref}:{old}", f"--force-with-lease={landed_ref}:"]',
          'leases = [f"--force-with-lease={main_ref}:{old}"]'),
         ('f"{new}:{landed_ref}"]', 'f"+{new}:{landed_ref}"]')],
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
        "agent's own network namespace",
        "swarm/sandbox.py",
        [('        if self.network == "host":\n', '        if self.network in ("host", "proxy"):\n')],
        ["tests/test_egress.py::test_an_agent_reaches_an_allowed_server_through_the_proxy_and_nothing_else"],
    ),
    Safeguard(
        "train car renewal",
        "swarm/train.py",
        [("                self.r.pexpire(keys.train_car(member), self.ttl_ms)\n", "                pass\n")],
        ["tests/test_train.py::test_a_car_stays_in_the_train_while_a_long_step_runs"],
    ),
    Safeguard(
        "a dead cat-file batch is started again",
        "swarm/repo.py",
        [("                    if again or batch is None or batch.proc is None or batch.proc.poll() is None:\n"
          "                        raise", "                    raise")],
        ["tests/test_repo.py -k batch_that_exited"],
    ),
    Safeguard(
        "backlog kept by content",
        "swarm/state.py",
        [("    key = (tree, folder.strip(\"/\"), tuple(sorted(src.settings.vendors)))",
          "    key = (\"\", folder.strip(\"/\"), tuple(sorted(src.settings.vendors)))"),
         ("        kept = _BACKLOGS.get(key) if tree else None", "        kept = _BACKLOGS.get(key)")],
        ["tests/test_repo.py -k backlog_is_parsed"],
    ),
    Safeguard(
        "mirror packs loose refs",
        "swarm/repo.py",
        [("            if loose >= LOOSE_REFS_TO_PACK:", "            if loose < 0:")],
        ["tests/test_repo.py -k packs_the_refs"],
    ),
    Safeguard(
        "a full disk is not the task's fault",
        "swarm/pipeline.py",
        [("        if full is not None:  # what failed", "        if False:  # what failed")],
        ["tests/test_pipeline.py -k fails_while_the_disk_is_full"],
    ),
    Safeguard(
        "a disk out of inodes is not the task's fault",
        "swarm/disk.py",
        [("        no_inodes = st.f_files > 0 and st.f_favail == 0", "        no_inodes = False")],
        ["tests/test_pipeline.py::test_an_agent_that_fails_while_the_disk_is_full_is_not_charged_for_it[inodes]"],
    ),
    Safeguard(
        "a disk the attempt filled is its fault",
        "swarm/disk.py",
        [("        return self.own * 2 > self.used", "        return False")],
        ["tests/test_pipeline.py -k fills_the_disk_itself"],
    ),
    Safeguard(
        "report of a CONNECT pending at the run's end",
        "swarm/egress.py",
        [("            self.unreachable += [target for target, _ in pending]\n", "")],
        ["tests/test_egress.py -k still_waiting_when_the_run_ends"],
    ),
    Safeguard(
        "carried cars: one line in git",
        "swarm/train.py",
        [("        if not self.mirror.is_line(car.spec, [c.spec for c in run]) or not hooks.current(",
          "        if not hooks.current(")],
        ["tests/test_train.py -k right_behind_the_head"],
    ),
    Safeguard(
        "carried cars: leases held",
        "swarm/train.py",
        [("or not hooks.current([c.member for c in run]):", ":")],
        ["tests/test_train.py -k right_behind_the_head"],
    ),
    Safeguard(
        "a carried line leaves at once",
        "swarm/train.py",
        [("                    pipe.lrem(keys.TRAIN, 0, car.member)\n", "                    pass\n")],
        ["tests/test_train.py -k keeps_its_build"],
    ),
    Safeguard(
        "red on the run ahead waits",
        "swarm/train.py",
        [("                elif front.result is not None and not oracle.judge(car.result, front.result):\n",
          "                elif front.result is not None:\n"
          "                    self._judge(car, front.result, hooks)\n")],
        ["tests/test_train.py -k red_on_the_run_ahead"],
    ),
    Safeguard(
        "lost-message requeue",
        "swarm/dispatch.py",
        [("    _requeue_lost(rt, snap, marker_ttl)\n", "")],
        ["tests/test_dispatch.py -k took_and_lost"],
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
        "jail server sweeps a call's processes",
        "swarm/jailserver.c",
        [("        kill(-1, SIGKILL); /* every process", "        if (0) kill(-1, SIGKILL); /* every process")],
        ["tests/test_jail.py::test_a_process_left_behind_is_dead_before_the_next_call"],
    ),
    Safeguard(
        "jail server empties /tmp after each call",
        "swarm/jailserver.c",
        [('    nftw("/tmp", remove_entry', '    if (0) nftw("/tmp", remove_entry')],
        ["tests/test_jail.py::test_each_call_has_an_empty_tmp_and_ipc_and_each_session_an_empty_folder"],
    ),
    Safeguard(
        "harness from main",
        "swarm/judge.py",
        [("        repo.export(self.mirror, main, judge_dir, only=harness)\n",
          "        repo.export(self.mirror, commit, judge_dir, only=harness)\n")],
        ["tests/test_judge.py::test_a_rewritten_harness_is_not_the_judge"],
    ),
    Safeguard(
        "kept work of a cut attempt",
        "swarm/pipeline.py",
        [("                att.record.wip = self._kept(att)\n", "                pass\n")],
        ["tests/test_wip.py::test_a_timed_out_attempt_keeps_its_work_and_the_next_attempt_goes_on_from_it_and_lands"],
    ),
    Safeguard(
        "kept work guarded like a candidate",
        "swarm/wip.py",
        [("    return mirror.restore(work, base, touched) if touched else work\n", "    return work\n")],
        ["tests/test_wip.py::test_kept_work_never_holds_changes_to_protected_paths"],
    ),
    Safeguard(
        "fence of kept work",
        "swarm/wip.py",
        [("        if current is not None and current.fence > wip.fence:\n", "        if False:\n")],
        ["tests/test_wip.py::test_a_stale_attempt_never_overwrites_the_work_a_later_one_kept"],
    ),
    # --- against tampering: each stops a strategy of tests/tampering/, which lands with a gain without it
    Safeguard(
        "protected-path restore",
        "swarm/pipeline.py",
        [("        touched = [c.path for c in changes if matches(c.path, protected)]\n",
          "        touched: list[str] = []\n")],
        lands="edit-oracle-runner",
    ),
    Safeguard(
        "numbered SELECT opening each variant",
        "engine_repo_template/oracle/variants.py",
        [('    return _marked("".join(out), digest)\n', '    return "".join(out)\n')],
        lands="replay-answers",
    ),
    # The agent sandbox is not here: without it an escaped rewriter still gains nothing, because the judge tests
    # trees exported from git in its own sandbox (defence in depth); the "agent sandbox" entry above shows the
    # escaped process outliving the attempt instead.
    Safeguard(
        "kept tree put back",
        "swarm/repo.py",
        [('        dirty = _nul(_run(g, "diff-files", "--name-only", "-z"))\n        if dirty:\n',
          '        dirty = _nul(_run(g, "diff-files", "--name-only", "-z"))\n        if False:\n')],
        ["tests/test_judge_tree.py",
         "tests/test_folders.py::test_sync_finds_an_edit_whose_size_and_times_were_put_back"],
    ),
]  # fmt: skip

QUICK = ("skipped may not rise", "structural refusal", "train car renewal", "agent's own network namespace",
         "lost-message requeue", "kept tree put back", "carried cars: one line in git", "carried cars: leases held",
         "red on the run ahead waits", "a carried line leaves at once", "backlog kept by content",
         "a dead cat-file batch is started again", "mirror packs loose refs",
         "a full disk is not the task's fault")  # fmt: skip
"""Safeguards whose tests take seconds: the suite removes these on every run, the rest with SAFEGUARDS_FULL=1."""

TAMPERING_SUMMARY = re.compile(r"tampering: (\d+) tried, (\d+) refused, (\d+) landed with a gain")


def run_tampering(copy: Path, strategy: str) -> tuple[bool, str]:
    """Run one tampering strategy in the copy; whether it landed with a gain, and the suite's summary line."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "RUSTUP_HOME", "CARGO_HOME", "LANG")}
    env.update(PYTHONPATH=str(copy), TAMPER_ONLY=strategy)
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--timeout=900",
            f"--basetemp={copy}-tmp", "tests/tampering/test_tampering.py"]  # fmt: skip
    out = subprocess.run(argv, cwd=copy, env=env, capture_output=True, text=True)
    found = TAMPERING_SUMMARY.search(out.stdout)
    if found is None:
        return False, f"{strategy}: no tampering summary ({(out.stdout.strip().splitlines() or ['no output'])[-1]})"
    return int(found.group(3)) >= 1, f"{strategy}: {found.group(0)}"


def run(copy: Path, tests: list[str]) -> tuple[int, str]:
    # A temp folder of its own: pytest's numbered ones under /tmp would have it delete other sessions' old ones.
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--timeout=300", f"--basetemp={copy}-tmp"]
    for t in tests:
        argv += t.split()
    # The toolchains the judge's tests build with (cargo) stay on PATH; nothing else of this shell leaks in.
    path = os.pathsep.join([str(Path.home() / ".cargo" / "bin"), "/usr/bin", "/bin"])
    out = subprocess.run(argv, cwd=copy, env={"PYTHONPATH": str(copy), "PATH": path, "HOME": str(Path.home())},
                         capture_output=True, text=True)  # fmt: skip
    return out.returncode, (out.stdout.strip().splitlines() or ["(no output)"])[-1]


def removed(guard: Safeguard, root: Path) -> str:
    """The text of the guard's file under root with the safeguard taken out (LookupError if its code moved)."""
    text = (root / guard.file).read_text()
    for old, new in guard.edits:
        if old not in text:
            raise LookupError(f"{guard.name}: the code to remove was not found in {guard.file}; update this script")
        text = text.replace(old, new)
    return text


def check(guard: Safeguard, tmp: Path) -> tuple[bool, str]:
    """Remove one safeguard in a copy of the code; whether the suite notices, and its summary line."""
    copy = tmp / guard.name.replace(" ", "-").replace("'", "")
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(".venv", ".git", "target", "__pycache__"))
    (copy / guard.file).write_text(removed(guard, ROOT))
    if guard.lands:
        return run_tampering(copy, guard.lands)
    code, summary = run(copy, guard.tests)
    # Failed tests (1) or a run that broke (2, 3) catch it; a test id that names no test (4) or no test at all (5)
    # proves nothing.
    return code in (1, 2, 3), summary


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    names = [a for a in argv if a != "--quick"] or (list(QUICK) if quick else [])
    unknown = set(names) - {g.name for g in SAFEGUARDS}
    if unknown:
        print(f"no safeguard named {', '.join(sorted(unknown))}; known: {', '.join(g.name for g in SAFEGUARDS)}")
        return 2
    if quick:  # every safeguard's code must still be where the full check removes it
        try:
            for guard in SAFEGUARDS:
                removed(guard, ROOT)
        except LookupError as exc:
            print(exc)
            return 2
    guards = [g for g in SAFEGUARDS if not names or g.name in names]
    results: dict[str, tuple[bool, str]] = {}
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(max_workers=3) as pool:
        try:
            # Tampering runs are independent projects with workers of their own: they run alongside the rest.
            tampering = {g.name: pool.submit(check, g, Path(tmp)) for g in guards if g.lands}
            for guard in guards:
                if not guard.lands:
                    results[guard.name] = check(guard, Path(tmp))
            results.update({name: future.result() for name, future in tampering.items()})
        except LookupError as exc:
            print(exc)
            return 2
    for guard in guards:
        caught, summary = results[guard.name]
        print(f"{'caught' if caught else 'MISSED'}  without the {guard.name}: {summary}")
    return 0 if all(caught for caught, _ in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
