"""Structural rules for a candidate's tree: changes no restore can make safe are refused with a reason.

A protected path turned into a symlink, a protected file turned into a folder or the reverse, a symlink that points
outside the repository (a source file borrowed from anywhere on the machine), and a submodule entry (a tree the
swarm does not hold) are refused outright, before any protected path is put back.
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Callable
from dataclasses import dataclass

from swarm.repo import MODE_GITLINK, MODE_LINK, matches

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Change:
    """One path's entry before (on main) and after (in the candidate); mode "000000" where it is absent."""

    path: str
    old_mode: str
    new_mode: str
    new_sha: str

    @property
    def added_or_changed(self) -> bool:
        return self.new_mode != "000000"


def problems(
    changes: list[Change], protected: list[str], main_paths: set[str], read: Callable[[str], bytes]
) -> list[str]:
    """Why the candidate must be refused as it is, one reason per offending path ([] when none).

    `main_paths`: main's files that match `protected` (only those decide; all of main's files will do too)."""
    found = []
    for ch in changes:
        if not ch.added_or_changed:
            continue
        if ch.new_mode == MODE_GITLINK:
            found.append(f"{ch.path} is a submodule entry: the swarm lands only files it holds")
        elif ch.new_mode == MODE_LINK:
            found += _link_problems(ch, protected, read)
        if _swaps_protected_folder(ch.path, protected, main_paths):
            found.append(f"{ch.path} replaces a protected folder of main with a file or link")
        parent = _protected_file_above(ch.path, protected, main_paths)
        if parent:
            found.append(f"{ch.path} turns the protected file {parent} of main into a folder")
    return found


def _link_problems(ch: Change, protected: list[str], read: Callable[[str], bytes]) -> list[str]:
    out = []
    if matches(ch.path, protected):
        out.append(f"protected path {ch.path} was replaced by a symlink")
    target = read(ch.new_sha).decode(errors="replace")
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(ch.path), target))
    if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
        out.append(f"{ch.path} is a symlink to {target!r}, outside the repository")
    return out


def _swaps_protected_folder(path: str, protected: list[str], main_paths: set[str]) -> bool:
    """A file where main has a folder of protected files (e.g. `oracle` where main has `oracle/run.py`)."""
    prefix = path + "/"
    return any(p.startswith(prefix) and matches(p, protected) for p in main_paths)


def _protected_file_above(path: str, protected: list[str], main_paths: set[str]) -> str:
    """The protected file of main that `path` would need to be a folder (e.g. `test.sh/x` where main has `test.sh`)."""
    parts = path.split("/")
    for i in range(1, len(parts)):
        above = "/".join(parts[:i])
        if above in main_paths and matches(above, protected):
            return above
    return ""
