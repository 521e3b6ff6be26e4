"""Where main is, seen from an agent's tree: the mirror its objects come from, and the branch heads the swarm
last fetched there. Read from files only (no git process, nothing written), for the replay demo agent."""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

REMOTE_HEADS = "refs/remotes/origin/"


def locate(tree: Path) -> tuple[Path | None, str | None]:
    """(the mirror's git directory, the commit the tree started from), for a worktree of the mirror or a standalone
    repository that borrows the mirror's objects; None where it cannot be told."""
    dot = tree / ".git"
    try:
        if dot.is_file():  # a worktree: .git names its folder in the mirror, which names the common dir
            gitdir = (tree / dot.read_text().strip().removeprefix("gitdir:").strip()).resolve()
            common = (gitdir / (gitdir / "commondir").read_text().strip()).resolve()
            return common, _resolve(gitdir, (gitdir / "HEAD").read_text().strip())
        alternates = (dot / "objects" / "info" / "alternates").read_text().split()
        return Path(alternates[0]).resolve().parent, _resolve(dot, (dot / "HEAD").read_text().strip())
    except (OSError, IndexError):
        return None, None


def _resolve(gitdir: Path, head: str) -> str | None:
    if not head.startswith("ref:"):
        return head or None
    ref = head.removeprefix("ref:").strip()
    loose = gitdir / ref
    return loose.read_text().strip() if loose.is_file() else _packed(gitdir).get(ref)


def heads(mirror: Path) -> dict[str, str]:
    """Every branch head of origin as the mirror last fetched it (loose refs win over packed ones)."""
    found = {ref: sha for ref, sha in _packed(mirror).items() if ref.startswith(REMOTE_HEADS)}
    folder = mirror / REMOTE_HEADS
    if folder.is_dir():
        for path in folder.rglob("*"):
            if path.is_file() and not path.name.endswith(".lock"):
                try:
                    found[f"{REMOTE_HEADS}{path.relative_to(folder).as_posix()}"] = path.read_text().strip()
                except OSError:
                    continue
    return found


def _packed(gitdir: Path) -> dict[str, str]:
    try:
        lines = (gitdir / "packed-refs").read_text().splitlines()
    except OSError:
        return {}
    pairs = (line.split(" ", 1) for line in lines if line and line[0] not in "#^")
    return {ref.strip(): sha for sha, ref in pairs}
