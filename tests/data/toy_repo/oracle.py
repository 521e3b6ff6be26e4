"""The toy repository's oracle: each checks/<name>.check names a file and the text it must hold.

Exits 1 (red) when any file under src/ holds the word BREAK, as a failing build would. Appends what it
tested (tier, commit, verdict, passed) to $ORACLE_RUNS so tests can prove the tested commit is the landed one.
"""

import json
import os
import pathlib
import subprocess
import sys

tier = "fast" if "--fast" in sys.argv else "full"
passed = failed = 0
for check in sorted(pathlib.Path("checks").glob("*.check")):
    fields = dict(line.split("=", 1) for line in check.read_text().splitlines() if "=" in line)
    target = pathlib.Path(fields["path"])
    if target.is_file() and target.read_text().strip() == fields["expect"].strip():
        passed += 1
    else:
        failed += 1
broken = any("BREAK" in p.read_text(errors="replace") for p in pathlib.Path("src").rglob("*") if p.is_file())
# The swarm's judge names the commit it judges; run by hand in a clone, git does.
head = (
    os.environ.get("SWARM_COMMIT")
    or subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
)
runs = os.environ.get("ORACLE_RUNS")
if runs:
    with open(runs, "a") as log:
        log.write(f"{tier} {head} {'red' if broken else 'green'} {passed}\n")
# Test hook: after the full run of a candidate holding src/alpha.txt (not main's baseline run), stop the process
# named in $STOP_AFTER_FULL (the worker), as if it stalled between its last check and its landing push.
stop = os.environ.get("STOP_AFTER_FULL")
if tier == "full" and stop and os.path.exists(stop) and os.path.exists("src/alpha.txt"):
    import signal

    os.kill(int(pathlib.Path(stop).read_text()), signal.SIGSTOP)
print(f"checked {passed + failed} cases")
print(json.dumps({"passed": passed, "failed": failed, "skipped": 0}))
sys.exit(1 if broken else 0)
