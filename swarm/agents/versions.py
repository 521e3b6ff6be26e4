"""How an installed agent CLI's version compares with the versions its adapter was checked against.

The versions themselves are stated once, on each adapter (`CliAgent.checked_versions`); `.ci/run` and the
Dockerfile pin the newest of them (tests/test_deploy.py holds the three to one another).
"""

from __future__ import annotations

import logging
import re

log = logging.getLogger(__name__)

Version = tuple[int, ...]
_NUMBER = re.compile(r"(?<![\w.])(\d+(?:\.\d+)+)")


def parse(text: str) -> Version | None:
    """The first dotted version number in a `--version` line ("2.1.332 (Claude Code)", "codex-cli 0.171.0")."""
    match = _NUMBER.search(text)
    return tuple(int(part) for part in match.group(1).split(".")) if match else None


def compare(printed: str, checked: tuple[str, str], cli: str, package: str) -> tuple[bool | None, str]:
    """(True, why) inside the checked range (oldest, newest); (None, a warning and what to do) outside it or when
    no version can be read: a CLI of another version may still work, but its flags and output were not checked."""
    oldest, newest = checked
    span = oldest if oldest == newest else f"{oldest} to {newest}"
    installed = parse(printed)
    pin = f"npm install -g {package}@{newest}"
    if installed is None:
        return None, f"`{cli} --version` printed no version ({printed!r}); the adapter was checked against {span}"
    low, high = parse(oldest), parse(newest)
    version = ".".join(map(str, installed))
    if low is not None and installed < low:
        return None, (f"{cli} {version} is older than the versions the adapter was checked against ({span}): "
                      f"flags or output may differ; install a checked one: {pin}")  # fmt: skip
    if high is not None and installed > high:
        return None, (f"{cli} {version} is newer than the versions the adapter was checked against ({span}): "
                      f"flags or output may have changed; pin a checked one ({pin}), or check the adapter "
                      f"against {version} (help and recorded runs in tests/data/agent_outputs) and raise "
                      f"its checked_versions")  # fmt: skip
    return True, f"{cli} {version}: the adapter was checked against {span}"
