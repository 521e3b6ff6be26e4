#!/usr/bin/env python3
"""A scripted stand-in for an agent's intelligence: it does what the ```agent block of its task says.

One action per line, run in the worktree (its cwd); `@N` runs a line on attempt N only, `@N+` from attempt N on:
    write PATH TEXT      (TEXT may hold \\n)      append PATH TEXT      delete PATH
    sleep SECONDS        exit CODE                commit MESSAGE        sh COMMAND...
    wait-file PATH SECONDS   (block until PATH exists: lets a test order events without sleeping)
    say TEXT             (the final message)
"""

import os
import re
import subprocess
import sys
import time
from pathlib import Path


def script(prompt: str) -> list[str]:
    match = re.search(r"```agent\n(.*?)```", prompt, re.DOTALL)
    return match.group(1).strip().splitlines() if match else []


def applies(line: str, attempt: int) -> tuple[bool, str]:
    m = re.match(r"@(\d+)(\+?)\s+(.*)", line)
    if not m:
        return True, line
    n, plus, rest = int(m.group(1)), m.group(2), m.group(3)
    return (attempt >= n if plus else attempt == n), rest


def main() -> int:
    prompt_file = Path(sys.argv[1] if len(sys.argv) > 1 else os.environ["SWARM_PROMPT_FILE"])
    attempt = int(os.environ.get("SWARM_ATTEMPT", "1"))
    message = "done"
    for raw in script(prompt_file.read_text()):
        ok, line = applies(raw.strip(), attempt)
        if not ok or not line:
            continue
        verb, _, rest = line.partition(" ")
        if verb in ("write", "append"):
            path, _, text = rest.partition(" ")
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a" if verb == "append" else "w") as f:
                f.write(text.replace("\\n", "\n") + "\n")
        elif verb == "delete":
            Path(rest).unlink()
        elif verb == "sleep":
            time.sleep(float(rest))
        elif verb == "exit":
            print(message, flush=True)
            return int(rest)
        elif verb == "commit":
            subprocess.run(["git", "add", "-A"], check=True)
            subprocess.run(["git", "-c", "user.name=agent", "-c", "user.email=a@b", "commit", "-qm", rest], check=True)
        elif verb == "sh":
            subprocess.run(["bash", "-c", rest])
        elif verb == "wait-file":
            path, _, secs = rest.partition(" ")
            deadline = time.monotonic() + float(secs or 30)
            while not Path(path).exists() and time.monotonic() < deadline:
                time.sleep(0.02)
        elif verb == "say":
            message = rest
        else:
            print(f"scripted agent: unknown action {verb!r}", file=sys.stderr)
            return 3
    print(message, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
