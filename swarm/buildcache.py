"""Build folders in the oracle's environment: one folder shared by concurrent oracle runs tests stale code.

`oracle.env` values may name `{cache}`, a folder of each worker slot. A build folder given as a fixed path
(`CARGO_TARGET_DIR = "/var/cache/target"`) is one folder for every worker of the host: two oracle runs then
build into it at once, and one of them can test what the other built (seen: an attempt landed with the previous
commit's test count). Doctor and every worker at start-up warn about such settings.
"""

from __future__ import annotations

import logging
import re

from swarm.settings import RepoSettings

log = logging.getLogger(__name__)

BUILD_NAME = re.compile(r"(TARGET|BUILD|CACHE|OUT|DIST|OBJ|TMP|TEMP)", re.IGNORECASE)
"""Names of variables that point tools at a folder they write build products or temporary files to."""


def shared_folders(repo: RepoSettings) -> list[str]:
    """One line per `oracle.env` entry that sends every worker's builds to the same folder."""
    found = []
    for name, value in sorted(repo.oracle.env.items()):
        if "{cache}" in value or not BUILD_NAME.search(name):
            continue
        if value.startswith(("/", "~", "$")):  # a relative path is inside the run's own fresh worktree
            found.append(
                f"oracle.env {name} = {value!r} is one folder for every worker on a host: concurrent oracle runs "
                f"share it and may test each other's builds; use a folder under {{cache}} "
                f'(e.g. {name} = "{{cache}}/{name.lower()}")'
            )
    return found


def warn(repo: RepoSettings, where: str) -> list[str]:
    """Log each shared build folder as a warning; returns them."""
    found = shared_folders(repo)
    for line in found:
        log.warning("%s: %s", where, line)
    return found
