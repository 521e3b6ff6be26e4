"""A stand-in for the claude, codex and gemini CLIs: edits files as its task says, then prints a canned stream.

The ```agent block of the prompt (the task file's) drives it, one action per line:
    @N ACTION            (only on attempt N, from $SWARM_ATTEMPT)
    write PATH TEXT      stream NAME (tests/data/agent_outputs/<cli>_<NAME>.out/.err/.code; default success)
    resets-in SECONDS    (rewrite the canned reset time 4102444800 to now + SECONDS)
    print-key            (print the CLI's API key on stdout and stderr, as a leaky CLI might)
    sleep SECONDS        hang PIDFILE (start a child, write "pid child_pid" to PIDFILE, never exit)
    emit FILE            (print tests/data/agent_outputs/FILE on stdout now, e.g. a stream the CLI is stuck in)
    reach HOST:PORT PATH (write to PATH whether HOST:PORT answers directly, and through $HTTPS_PROXY's CONNECT)
--version and --help (codex: exec --help) print a version (or $FAKE_CLI_VERSION) and the recorded help (or the file
$FAKE_CLI_HELP).
$FAKE_CLI_STREAM names the stream of a prompt that names none (a probe's).
With $FAKE_CLI_RECORD set, argv, cwd and environment are appended to that file as one JSON line.
"""

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "data" / "agent_outputs"
VERSIONS = {"claude": "2.1.332 (Claude Code)", "codex": "codex-cli 0.171.0", "gemini": "0.61.0"}
KEYS = {"claude": "ANTHROPIC_API_KEY", "codex": "CODEX_API_KEY", "gemini": "GEMINI_API_KEY"}


def prompt_of(cli: str, argv: list[str]) -> str:
    if cli == "codex":
        return argv[argv.index("--") + 1]
    return argv[argv.index("-p") + 1]


def info(cli: str, argv: list[str]) -> bool:
    if argv[:1] in (["--version"], ["-v"], ["-V"]):
        print(os.environ.get("FAKE_CLI_VERSION") or VERSIONS[cli])
        return True
    if "--help" in argv:
        name = "codex_exec" if cli == "codex" and argv[0] == "exec" else cli
        print(Path(os.environ.get("FAKE_CLI_HELP") or DATA / "help" / f"{name}.txt").read_text())
        return True
    return False


def record(argv: list[str]) -> None:
    path = os.environ.get("FAKE_CLI_RECORD")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ)}) + "\n")


def act(cli: str, prompt: str) -> tuple[str, float | None]:
    match = re.search(r"```agent\n(.*?)```", prompt, re.DOTALL)
    stream, resets_in = os.environ.get("FAKE_CLI_STREAM", "success"), None
    attempt = os.environ.get("SWARM_ATTEMPT", "1")
    for line in match.group(1).strip().splitlines() if match else []:
        when = re.match(r"@(\d+)\s+(.*)", line.strip())
        if when and when.group(1) != attempt:
            continue
        verb, _, rest = (when.group(2) if when else line.strip()).partition(" ")
        if verb == "write":
            path, _, text = rest.partition(" ")
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text + "\n")
        elif verb == "stream":
            stream = rest
        elif verb == "resets-in":
            resets_in = float(rest)
        elif verb == "print-key":
            key = os.environ.get(KEYS[cli], "")
            print(f"debug: using key {key}", flush=True)
            print(f"debug: using key {key}", file=sys.stderr, flush=True)
        elif verb == "emit":
            sys.stdout.write((DATA / rest).read_text())
            sys.stdout.flush()
            transcript(cli, (DATA / rest).read_text())
        elif verb == "sleep":
            time.sleep(float(rest))
        elif verb == "reach":
            target, _, path = rest.partition(" ")
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(f"direct {direct(target)}; proxy {tunnel(target)}\n")
        elif verb == "hang":
            child = subprocess.Popen(["sleep", "600"])
            Path(rest).write_text(f"{os.getpid()} {child.pid}")
            while True:
                time.sleep(1)
    return stream, resets_in


def direct(target: str) -> str:
    host, _, port = target.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
        return "connected"
    except OSError:
        return "failed"


def tunnel(target: str) -> str:
    """The proxy's answer to CONNECT target, as a CLI honouring HTTPS_PROXY would ask it."""
    proxy = os.environ.get("HTTPS_PROXY", "")
    if not proxy:
        return "none"
    host, _, port = proxy.removeprefix("http://").rstrip("/").rpartition(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        return s.recv(4096).split(b"\r\n")[0].decode()


def transcript(cli: str, stream: str) -> None:
    """Keep a claude session's transcript where claude does: its config folder, under the project (cwd) folder."""
    home = os.environ.get("CLAUDE_CONFIG_DIR")
    if cli != "claude" or not home:
        return
    for line in stream.splitlines():
        session = json.loads(line).get("session_id") if line.startswith("{") else None
        if session:
            folder = Path(home, "projects", re.sub(r"[^A-Za-z0-9]", "-", os.getcwd()))
            folder.mkdir(parents=True, exist_ok=True)
            with open(folder / f"{session}.jsonl", "a") as f:
                f.write(line + "\n")


def emit(cli: str, stream: str, resets_in: float | None) -> int:
    base = DATA / f"{cli}_{stream}"
    out = base.with_suffix(".out").read_text() if base.with_suffix(".out").exists() else ""
    if resets_in is not None:
        out = out.replace("4102444800", str(int(time.time() + resets_in)))
    sys.stdout.write(out)
    err = base.with_suffix(".err")
    if err.exists():
        sys.stderr.write(err.read_text())
    code = base.with_suffix(".code")
    return int(code.read_text()) if code.exists() else 0


def main(cli: str) -> int:
    argv = sys.argv[1:]
    if info(cli, argv):
        return 0
    record(argv)
    if "-C" in argv:
        os.chdir(argv[argv.index("-C") + 1])
    stream, resets_in = act(cli, prompt_of(cli, argv))
    return emit(cli, stream, resets_in)
