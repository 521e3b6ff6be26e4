"""`swarm init --adopt`: make an existing repository a swarm project, through one commit on its own origin.

The commit adds `.swarm.toml` (with the oracle proposed for the test runner found in the tree), the backlog folder
and the prompt files; the same push creates `refs/swarm/adopted`, the point from which `swarm audit` holds the
history to the swarm's promises (what came before was not the swarm's work).
"""

from __future__ import annotations

import json
import logging
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from swarm import repo, runners
from swarm.errors import SwarmError
from swarm.settings import REPO_SETTINGS_FILE, parse_repo_settings

log = logging.getLogger(__name__)

JUNIT_FILE = ".swarm-junit.xml"
TRAILERS = "Swarm-Task: adopt\nSwarm-Agent: swarm-init\nSwarm-Adopted: yes\n"


@dataclass
class Proposal:
    """The oracle proposed for a repository: a command, the reader of its output, and why."""

    runner: str
    command: str
    why: str
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class Adopted:
    origin: str
    clone: Path
    branch: str
    head: str
    proposal: Proposal
    written: list[str]


def detect(tree: Path) -> Proposal | None:
    """The test runner a repository uses, from the files at its root; None when nothing is recognised."""
    if (tree / "Cargo.toml").is_file():
        return Proposal("cargo", "cargo test --no-fail-fast", "Cargo.toml", {"CARGO_TARGET_DIR": "{cache}/target"})
    if (tree / "go.mod").is_file():
        return Proposal("go", "go test -json ./...", "go.mod", {"GOFLAGS": "-mod=mod"})
    node = _node(tree)
    if node is not None:
        return node
    if _python(tree):
        command = f"python3 -m pytest -p no:cacheprovider --junitxml={JUNIT_FILE}"
        return Proposal("pytest", command, "a Python project with tests (pytest reads them)")
    return None


def _node(tree: Path) -> Proposal | None:
    package = tree / "package.json"
    if not package.is_file():
        return None
    try:
        script = str(json.loads(package.read_text()).get("scripts", {}).get("test", ""))
    except (ValueError, AttributeError):
        script = ""
    if "node --test" in script or not script:
        return Proposal("node", "node --test --test-reporter=tap", "package.json (Node's built-in test runner)")
    return Proposal("auto", "npm test", f"package.json's test script `{script}` (counts read from its output)")


def _python(tree: Path) -> bool:
    markers = ("pyproject.toml", "setup.py", "setup.cfg", "pytest.ini", "tox.ini", "conftest.py")
    if any((tree / name).is_file() for name in markers):
        return True
    return any(tree.glob("test*/test_*.py")) or any(tree.glob("test_*.py"))


def repo_settings(proposal: Proposal) -> str:
    """The `.swarm.toml` of an adopted repository."""
    env = "".join(f"{k} = {json.dumps(v)}\n" for k, v in proposal.env.items())
    return f"""# How the swarm works on this repository (see swarm's README: Configuration). Read from main only.
backlog = "tasks"
prompt = "AGENT_PROMPT.md"
coalesce_prompt = "COALESCE_PROMPT.md"
# Globs of paths agents may not change (the oracle's own harness and expected results), e.g. ["tests/golden/**"].
protected = []

[oracle]
# Proposed by `swarm init --adopt` from {proposal.why}. Both tiers must exit 0 on a green tree.
fast = {json.dumps(proposal.command)}
full = {json.dumps(proposal.command)}
runner = {json.dumps(proposal.runner)}
timeout = 900

[oracle.env]
{env}"""


AGENT_PROMPT = """# Working on this repository

You are one of several agents working on this repository in parallel; each of you has one task (below).
Work only on your task, in small coherent changes, and keep every existing test passing: your change lands on
`main` only if the repository's tests pass on it, with no fewer passing tests than before, in total or per area.

- Read the code around what you change first, and follow its style.
- Add tests for what you build; never weaken or delete an existing test to make it pass.
- If the task is too big, do a useful, tested part of it and add task files to `tasks/` for the rest
  (see `tasks/README.md` for the format).
- Do not commit build output, logs or lock/claim files; coordination is not done through git here.
"""

COALESCE_PROMPT = """# Clean-up pass

Several agents changed this repository in parallel and repeated each other. Merge duplicated code, helpers
and documents into one, remove dead code, and keep behaviour exactly the same: every test must still pass.
"""

BACKLOG_README = """# Backlog

One file per task, `tasks/<id>.md` (id: lowercase letters, digits and dashes), YAML front matter, then the
description. Add one with `swarm add` or by committing a file like this one:

```
---
title: What to build, in a few words
priority: 50              # higher first among ready tasks
depends_on: []            # ids of tasks that must land first
---
What to do, and how to tell it is done (which tests show it).
```

This README is not a task.
"""


def write_files(tree: Path, proposal: Proposal) -> list[str]:
    """Write the swarm's files into the tree, keeping any prompt the repository already has; returns their paths."""
    files = {
        REPO_SETTINGS_FILE: repo_settings(proposal),
        "AGENT_PROMPT.md": AGENT_PROMPT,
        "COALESCE_PROMPT.md": COALESCE_PROMPT,
        "tasks/README.md": BACKLOG_README,
    }
    parse_repo_settings(files[REPO_SETTINGS_FILE], f"the proposed {REPO_SETTINGS_FILE}")
    written = []
    for name, text in files.items():
        path = tree / name
        if path.exists() and name != REPO_SETTINGS_FILE:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(name)
    ignore = tree / ".gitignore"
    lines = ignore.read_text().splitlines() if ignore.is_file() else []
    if JUNIT_FILE not in lines:
        ignore.write_text("\n".join([*lines, JUNIT_FILE]) + "\n")
        written.append(".gitignore")
    return written


def adopt(source: str, directory: Path, runner: str | None = None, command: str | None = None) -> Adopted:
    """Clone `source`'s origin into directory/work and land the adoption commit on it."""
    origin = repo.origin_of(source, directory / "origin.git")
    clone = directory / "work"
    branch = repo.clone_default_branch(origin, clone)
    if (clone / REPO_SETTINGS_FILE).exists():
        raise SwarmError(f"{source} already has a {REPO_SETTINGS_FILE} on {branch}: it is a swarm project already")
    proposal = _proposal(clone, runner, command)
    written = write_files(clone, proposal)
    message = f"Adopt this repository as a swarm project (oracle: {proposal.command})\n\n{TRAILERS}"
    head = repo.commit_adoption(clone, branch, message)
    log.info("adopted %s at %s on %s", origin, head[:12], branch)
    return Adopted(origin, clone, branch, head, proposal, written)


def _proposal(tree: Path, runner: str | None, command: str | None) -> Proposal:
    found = detect(tree)
    if command:
        return Proposal(runner or (found.runner if found else "auto"), command, "--oracle", found.env if found else {})
    if found is None:
        raise SwarmError(
            f"no test runner recognised in {tree} (looked for Cargo.toml, go.mod, package.json, a Python project "
            "with tests): give the oracle with --oracle 'COMMAND' (and --runner NAME, see README)"
        )
    if runner:
        runners.check_name(runner)
        found.runner = runner
    return found


def describe(adopted: Adopted) -> str:
    p = adopted.proposal
    return (
        f"test runner: {p.runner} (from {p.why}); oracle: `{p.command}`\n"
        f"adoption commit {adopted.head[:12]} on {adopted.branch} of {adopted.origin} ({repo.ADOPTED_REF}), "
        f"adding {', '.join(adopted.written)}\n"
        f"check it: cd {shlex.quote(str(adopted.clone))} && {p.command}"
    )
