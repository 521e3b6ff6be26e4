"""All git: the per-host mirror of origin, worktrees, the squashed commit with trailers, rebase, and landing.

A task is done exactly when `refs/swarm/landed/<task>` exists on origin. Landing is one atomic push that moves
`main` from OLD to NEW only if it is still OLD and creates the landed ref only if it does not exist yet.
"""

from __future__ import annotations

import fcntl
import functools
import logging
import os
import posixpath
import random
import re
import shutil
import stat
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import git

from swarm.errors import GitError

log = logging.getLogger(__name__)

LANDED_PREFIX = "refs/swarm/landed/"
BATCH_AGENT = "swarm-train"
"""The Swarm-Agent of a batch's merge commit (its Swarm-Batch trailer names the tasks it lands)."""
ADOPTED_REF = "refs/swarm/adopted"
"""The commit through which `swarm init --adopt` made an existing repository a swarm project."""
RECORDS_PREFIX = "refs/swarm/attempts/"
"""One commit chain per task on origin: the ledger of its attempts (see ledger.py)."""
WIP_PREFIX = "refs/swarm/wip/"
"""The work so far of a task's attempt that was cut (timeout, lost lease, vendor failure): see wip.py."""
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
MODE_LINK, MODE_GITLINK, MODE_EXEC, MODE_FILE, MODE_TREE = "120000", "160000", "100755", "100644", "040000"
CAS_LOST = ("stale info", "fetch first", "non-fast-forward", "cannot lock ref", "failed to update ref")
"""What git says when another push changed the ref first (client-side lease check or origin's ref lock)."""
KEEP_PREFIX = "refs/keep/"
"""Local refs of attempts in flight; outside refs/swarm/, which mirrors origin and is pruned on fetch."""
FETCH_REFSPECS = ("+refs/heads/*:refs/remotes/origin/*", "+refs/swarm/*:refs/swarm/*")
SUBTREES_KEPT = 32
_OBJECT_ID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
LOOSE_REFS_TO_PACK = 256
"""Loose refs in the mirror from which a fetch packs them (0: never). Each task leaves refs (landed, attempts), and
git reads every loose ref as a file of its own in each fetch, push and listing: with 3,000 tasks run, a fetch
took 0.18 s where it takes 0.04 s packed, so the swarm's cost would grow with the tasks it ever ran."""
SWARM_IDENTITY = {"GIT_COMMITTER_NAME": "swarm", "GIT_COMMITTER_EMAIL": "swarm@swarm.invalid"}
SWARM_AUTHOR = {"GIT_AUTHOR_NAME": "swarm", "GIT_AUTHOR_EMAIL": "swarm@swarm.invalid"}
"""The author of the commits the swarm writes itself (records, batch merges): a worker whose HOME has no git
identity must still write them (git will not guess one on a host without a domain name)."""


class LandResult(Enum):
    LANDED = "landed"
    MAIN_MOVED = "main moved"
    ALREADY_LANDED = "already landed"
    CARRIED_LANDED = "a carried task landed already"
    """Only from a push that carries other tasks (`land_recorded`'s `carried`): one of them has its landed ref."""


@dataclass(frozen=True)
class Rebased:
    commit: str | None
    conflicts: tuple[str, ...] = ()


# Agents share the mirror's git directory through their worktrees and may change its config: whatever they set,
# the swarm's own git commands run no hooks and no fsmonitor.
GIT = ("git", "-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false")


DEFAULT_GIT_TIMEOUT = 120.0
"""Seconds any one git command may take (setting `git_timeout`): a stalled fetch or push must not hold a lock."""


class _Git(git.Git):
    """A git.Git whose commands are killed after `timeout` seconds."""

    def __init__(self, cwd: Path, timeout: float) -> None:
        super().__init__(str(cwd))
        self.timeout = timeout


def _git(cwd: Path, timeout: float = DEFAULT_GIT_TIMEOUT) -> _Git:
    g = _Git(cwd, timeout)
    g.update_environment(GIT_TERMINAL_PROMPT="0", **SWARM_IDENTITY)
    return g


_calls = [0]
_calls_lock = threading.Lock()


def git_calls() -> int:
    """How many git processes this module has started in this process: a test holds attempts to a budget."""
    return _calls[0]


def _execute(g: git.Git, args: list[str], **kwargs: object) -> Any:
    """The one door to git: every command runs with the swarm's -c options and is killed at the timeout."""
    with _calls_lock:
        _calls[0] += 1
    timeout = getattr(g, "timeout", DEFAULT_GIT_TIMEOUT)
    try:
        result = g.execute([*GIT, *args], kill_after_timeout=timeout, **kwargs)  # type: ignore[call-overload]
    except git.GitCommandError as exc:
        if _timed_out(exc.stderr):
            raise _timeout_error(args, g, timeout) from None
        raise
    if isinstance(result, tuple) and _timed_out(result[2]):  # with_exceptions=False: the status says only -9
        raise _timeout_error(args, g, timeout)
    return result


def _timed_out(stderr: object) -> bool:
    return "Timeout: the command" in str(stderr or "")


def _timeout_error(args: list[str], g: git.Git, timeout: float) -> GitError:
    return GitError(
        f"git {' '.join(args[:3])} in {g.working_dir} did not finish within {timeout:g}s and was killed "
        "(setting 'git_timeout', SWARM_GIT_TIMEOUT)"
    )


def _run(g: git.Git, *args: str, **kwargs: object) -> str:
    try:
        return str(_execute(g, list(args), **kwargs))
    except git.GitCommandError as exc:
        stderr = (exc.stderr or "").strip().removeprefix("stderr: ").strip("'\n ")
        raise GitError(f"git {' '.join(args[:3])} in {g.working_dir} failed: {stderr or exc}") from None


def absolute_origin(origin: str) -> str:
    """A local origin path becomes absolute, so worktrees and child processes agree on it."""
    if "://" in origin or re.match(r"^[\w.-]+@[\w.-]+:", origin):
        return origin
    return str(Path(origin).expanduser().resolve())


def _tree_path(path: str) -> str | None:
    """A path from the root of a commit's tree, as `<commit>:<path>` names it, with `./` and `//` dropped; None for
    one that leaves the tree. A bare repository refuses a path relative to a working tree, and the one long-lived
    `git cat-file --batch` would exit on it."""
    name = posixpath.normpath(path).strip("/")
    return None if name == ".." or name.startswith("../") else "" if name == "." else name


def _landed(refs: dict[str, str]) -> dict[str, str]:
    """Task id -> landed commit, from ref name -> id (other refs left out)."""
    return {ref.removeprefix(LANDED_PREFIX): sha for ref, sha in refs.items() if ref.startswith(LANDED_PREFIX)}


def _canon_mode(raw: bytes) -> str:
    """A tree entry's mode as git reads it (its canon_mode): a tree object may spell one oddly ("040000", "100664"),
    and ls-tree, checkout and diff all read it as one of the five modes git knows."""
    try:
        mode = int(raw, 8)
    except ValueError:
        raise GitError(f"a tree entry has a malformed mode {raw!r}") from None
    kind = mode & 0o170000
    if kind == 0o100000:
        return MODE_EXEC if mode & 0o100 else MODE_FILE
    return {0o120000: MODE_LINK, 0o040000: MODE_TREE}.get(kind, MODE_GITLINK)


def _tree_entries(content: bytes, id_bytes: int) -> Iterator[tuple[str, bytes, str]]:
    """The (name, mode, id) of each entry of a raw tree object: `<mode> <name>\\0<id>` one after the other."""
    at = 0
    while at < len(content):
        space = content.index(b" ", at)
        nul = content.index(b"\0", space)
        name, oid = content[space + 1 : nul].decode("utf-8", "surrogateescape"), content[nul + 1 : nul + 1 + id_bytes]
        yield name, content[at:space], oid.hex()
        at = nul + 1 + id_bytes


class Mirror:
    """A bare per-host copy of origin that every worker process on the host shares, under a file lock."""

    def __init__(self, origin: str, path: Path, branch: str = "main", git_timeout: float = DEFAULT_GIT_TIMEOUT) -> None:
        self.origin = absolute_origin(origin)
        self.path = path
        self.branch = branch
        self.git_timeout = git_timeout
        self.g = _git(path, git_timeout) if path.exists() else None
        self._refs: tuple[str, dict[str, str]] | None = None
        """main and the landed refs as of this object's last fetch (None before it, or after a ref was refreshed)."""
        self._subtrees: OrderedDict[str, dict[str, tuple[str, str]]] = OrderedDict()
        """Listings of folders by tree id (see entries_under): a tree id names its content, so none is ever stale."""
        self._batch = threading.Lock()
        """The one long-lived `git cat-file --batch` speaks one request at a time: threads of a process take turns
        (a car's run and main's, measured beside it, read blobs at once)."""

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Serialise mirror-changing git commands between the worker processes of this host."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.parent / f"{self.path.name}.lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def ensure(self) -> Mirror:
        with self.locked():
            if not (self.path / "HEAD").exists():
                self.path.mkdir(parents=True, exist_ok=True)
                g = _git(self.path, self.git_timeout)
                _run(g, "init", "--bare", "--quiet")
                _run(g, "config", "gc.auto", "0")
            self.g = _git(self.path, self.git_timeout)
            self._refs = None
            # Agents work in worktrees of this mirror. It keeps no remote, so `git push` there has nowhere to go
            # and `git remote -v` does not tell an agent where origin is: only the swarm, by explicit URL, lands.
            if "origin" in _run(self.g, "remote").split():
                _run(self.g, "remote", "remove", "origin")
        return self

    def object_data(self, ref: str) -> tuple[str, bytes]:
        """An object's kind and content through the mirror's one `git cat-file --batch` (ValueError: missing)."""
        _, kind, content = self._object(ref)
        return kind, content

    def _object(self, ref: str) -> tuple[str, str, bytes]:
        """An object's id, kind and content through the one `git cat-file --batch` (ValueError: missing).

        Should that process have exited (killed, or a name git refused), it is started again once: a dead batch
        would otherwise answer every later read of this process as missing."""
        with self._batch:
            for again in (False, True):
                try:
                    sha, kind, _, content = self._g.get_object_data(ref)
                    break
                except (ValueError, OSError):
                    batch = self._g.cat_file_all
                    if again or batch is None or batch.proc is None or batch.proc.poll() is None:
                        raise
                    log.warning("git cat-file --batch of %s exited (%s): starting it again", self.path,
                                batch.proc.returncode)  # fmt: skip
                    self._g.clear_cache()
        text = [x.decode() if isinstance(x, bytes) else str(x) for x in (sha, kind)]
        return text[0], text[1], bytes(content)  # bytes, whatever stubs say

    @property
    def _g(self) -> git.Git:
        if self.g is None:
            raise GitError(f"mirror {self.path} is not set up; call ensure() first")
        return self.g

    def fetch(self) -> str:
        """Bring the mirror up to date with origin; returns main's commit."""
        with self.locked():
            try:
                # No FETCH_HEAD: it would tell an agent in a worktree where origin is.
                _run(self._g, "fetch", "--quiet", "--prune", "--no-write-fetch-head", self.origin, *FETCH_REFSPECS)
            except GitError as exc:
                raise GitError(
                    f"cannot fetch from origin {self.origin} (setting 'origin', SWARM_ORIGIN): {exc}"
                ) from None
            self._pack_loose_refs()
            self._refs = self._read_refs()
        return self._refs[0]

    def _pack_loose_refs(self) -> None:
        """Pack the mirror's refs once LOOSE_REFS_TO_PACK or more are loose files (under the mirror's lock).

        Counted by listing the folders alone (no file is opened); packing costs one process, about as much as the
        fetch, and leaves the refs git writes from then on loose until the next pack. Git locks each ref it
        packs, so another process's concurrent update is never lost; a pack that cannot run now (packed-refs
        locked for over a second, by a slow writer or one killed at its timeout) only warns: the fetch stands."""
        if LOOSE_REFS_TO_PACK <= 0:
            return
        loose = 0
        for _, _, files in os.walk(self.path / "refs"):
            loose += len(files)
            if loose >= LOOSE_REFS_TO_PACK:
                status, _, err = _execute(self._g, ["pack-refs", "--all"], with_extended_output=True,
                                          with_exceptions=False)  # fmt: skip
                if status != 0:
                    log.warning("could not pack the refs of %s (left loose): %s", self.path, str(err).strip())
                return

    def main(self) -> str:
        """main's commit as of this mirror's last fetch (read from the mirror before its first)."""
        refs = self._refs
        return refs[0] if refs is not None else self.rev(f"refs/remotes/origin/{self.branch}")

    def _read_refs(self) -> tuple[str, dict[str, str]]:
        """main and the landed refs, read with one process: an attempt asks for them several times per fetch."""
        head = f"refs/remotes/origin/{self.branch}"
        pairs = self._ref_values(head, LANDED_PREFIX)
        main = pairs.pop(head, None) or self.rev(head)  # none: rev names what is missing, as it always did
        return main, _landed(pairs)

    def _ref_values(self, *patterns: str) -> dict[str, str]:
        """Ref name -> object id of every ref matching `patterns` (for-each-ref's), with one process."""
        out = _run(self._g, "for-each-ref", "--format=%(refname) %(objectname)", *patterns)
        return dict(line.split() for line in out.splitlines() if line.strip())

    def rev(self, ref: str) -> str:
        return _run(self._g, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")

    def adopted(self) -> str | None:
        """The adoption commit (refs/swarm/adopted, as of the last fetch), or None for a project the swarm began."""
        return self._local_rev(ADOPTED_REF) or None

    def tree(self, commit: str) -> str:
        """A commit's tree, read from the commit object through the batch (no process); anything else (a tag, a
        name) through rev-parse. GitError when there is no such commit."""
        if _OBJECT_ID.fullmatch(commit):
            try:
                kind, content = self.object_data(commit)
            except ValueError:
                kind, content = "", b""
            if kind == "commit" and content.startswith(b"tree "):
                return content[5 : content.index(b"\n")].decode()
        return _run(self._g, "rev-parse", "--verify", "--quiet", f"{commit}^{{tree}}").strip()

    def landed(self) -> dict[str, str]:
        """Landed task ids and the commit each landed as, from this mirror's last fetch.

        Kept from that fetch, not read again: another process's fetch since may know more, but what each caller
        decides on it is as of a fetch either way, and the atomic landing push refuses a task landed twice."""
        refs = self._refs
        return dict(refs[1]) if refs is not None else _landed(self._ref_values(LANDED_PREFIX))

    def _by_id(self, rev: str) -> str:
        """`rev` as the batch may be asked for it: an object id as it is; any other name (a ref, `main~1`) resolved
        to its tree by a process first, since the batch keeps packed-refs read and could answer a ref's old value
        (see _local_rev). "" when it names nothing."""
        if _OBJECT_ID.fullmatch(rev):
            return rev
        return _run(self._g, "rev-parse", "--verify", "--quiet", f"{rev}^{{tree}}", with_exceptions=False).strip()

    def read(self, commit: str, path: str) -> bytes | None:
        """A file's content at a commit, or None when it is not there.

        Read through the mirror's one long-lived `git cat-file --batch` (no process per file; a commit's files never
        change, so nothing it caches can be stale); a name the batch protocol cannot carry takes a process, and so
        does a commit given by name rather than by id (see _by_id)."""
        inside, commit = _tree_path(path), self._by_id(commit)
        if inside is None or not commit:
            return None
        path = inside
        if "\n" not in path:
            try:
                kind, content = self.object_data(f"{commit}:{path}")
            except ValueError:  # "missing": no such commit or file
                return None
            return content if kind == "blob" else None
        try:
            data: bytes = _execute(
                self._g, ["cat-file", "blob", f"{commit}:{path}"], stdout_as_string=False, strip_newline_in_stdout=False
            )
            return data
        except git.GitCommandError:
            return None

    def read_folder(self, commit: str, folder: str) -> dict[str, bytes]:
        """Every file directly in a folder at a commit, by path, read through one `git cat-file --batch`."""
        return {path: self.object_data(sha)[1] for path, sha in self.folder(commit, folder)[1].items()}

    def folder(self, commit: str, folder: str) -> tuple[str, dict[str, str]]:
        """A folder at a commit: its tree's id ("" when there is no such folder) and the id of each file directly in
        it, by path; read from the tree object through the batch, so no process starts. The id names the folder's
        content: what is read from it can be kept by that id and is never stale."""
        name, commit = _tree_path(folder), self._by_id(commit)
        if name is None or not commit:
            return "", {}
        if "\n" in name:  # the batch protocol cannot carry this name
            out = _run(self._g, "ls-tree", "-z", f"{commit}", f"{name}/")
            entries = [entry.partition("\t") for entry in filter(None, out.split("\0"))]
            files = {path: meta.split()[2] for meta, _, path in entries if meta.split()[1] == "blob"}
            return _run(self._g, "rev-parse", "--verify", "--quiet", f"{commit}:{name}", with_exceptions=False), files
        try:
            tree, kind, content = self._object(f"{commit}:{name}")
        except ValueError:  # "missing": no such commit or folder
            return "", {}
        if kind != "tree":
            return "", {}
        prefix = f"{name}/" if name else ""
        return tree, {f"{prefix}{entry}": oid for entry, mode, oid in _tree_entries(content, len(tree) // 2)
                      if _canon_mode(mode) not in (MODE_TREE, MODE_GITLINK)}  # fmt: skip  # files and links, as ls-tree

    def entries_under(self, commit: str, roots: list[str]) -> dict[str, tuple[str, str]] | None:
        """Path -> (mode, id) of the files at or under each root (a path; "x/" names only a folder), as
        `ls-tree -r` lists them for those pathspecs, read from tree objects through the batch: no process, and a
        folder's listing is kept by its tree id (its content), so main's protected files cost nothing more until
        they change. None when the batch cannot carry a name (then ls it)."""
        names = [_tree_path(root) for root in roots]
        if any(name is None or name == "" or "\n" in commit + name for name in names):
            return None
        top = self.tree(commit)  # GitError when there is no such commit: never an empty listing
        found: dict[str, tuple[str, str]] = {}
        for root, name in zip(roots, names, strict=True):
            assert name
            parent, _, leaf = name.rpartition("/")
            try:
                tree, kind, content = self._object(f"{top}:{parent}" if parent else top)
            except ValueError:  # no such folder: nothing under it
                continue
            if kind != "tree":
                continue
            for entry, raw, oid in _tree_entries(content, len(tree) // 2):
                if entry != leaf:
                    continue
                mode = _canon_mode(raw)
                if mode == MODE_TREE:
                    found.update({f"{name}/{path}": e for path, e in self._subtree(oid).items()})
                elif not root.endswith("/") or mode == MODE_GITLINK:  # "x/" matches a folder or a submodule
                    found[name] = (mode, oid)
        return found

    def _subtree(self, tree: str) -> dict[str, tuple[str, str]]:
        """Every file under a tree object, by path within it (see entries_under); kept by the tree's id."""
        with self._batch:
            listed = self._subtrees.get(tree)
            if listed is not None:
                self._subtrees.move_to_end(tree)
                return listed
        listed, folders = {}, [("", tree)]
        while folders:
            prefix, oid = folders.pop()
            _, _, content = self._object(oid)
            for entry, raw, child in _tree_entries(content, len(oid) // 2):
                mode = _canon_mode(raw)
                if mode == MODE_TREE:
                    folders.append((f"{prefix}{entry}/", child))
                else:
                    listed[f"{prefix}{entry}"] = (mode, child)
        with self._batch:
            self._subtrees[tree] = listed
            while len(self._subtrees) > SUBTREES_KEPT:
                self._subtrees.popitem(last=False)
        return listed

    def log(self, rev_range: str, fmt: str = "%H", first_parent: bool = False) -> list[str]:
        """Commits of a range, newest first; with `first_parent`, only main's own steps (not a batch's merged line)."""
        flags = ["--first-parent"] if first_parent else []
        return _run(self._g, "log", *flags, f"--format={fmt}", rev_range).splitlines()

    def parents(self, commit: str) -> list[str]:
        return _run(self._g, "rev-list", "--parents", "-n", "1", commit).split()[1:]

    def is_line(self, base: str, commits: list[str]) -> bool:
        """Whether each of `commits` has exactly one parent, the one before it (the first, `base`): one line of
        commits on base, read with one process. A commit this mirror does not hold is no line."""
        out = _run(self._g, "rev-list", "--no-walk=unsorted", "--parents", *commits, with_exceptions=False)
        parents = {fields[0]: fields[1:] for fields in (line.split() for line in out.splitlines()) if fields}
        return all(parents.get(child) == [parent] for parent, child in zip([base, *commits], commits, strict=False))

    def message(self, commit: str) -> str:
        return _run(self._g, "log", "-1", "--format=%B", commit)

    def add_worktree(self, path: Path, commit: str) -> Worktree:
        """A fresh detached worktree at commit (any leftover at the path is removed first)."""
        with self.locked():
            if path.exists():
                self._remove_locked(path)
            _run(self._g, "worktree", "prune")
            _run(self._g, "worktree", "add", "--detach", "--force", "--quiet", str(path), commit)
        return Worktree(path, self)

    def remove_worktree(self, path: Path) -> None:
        with self.locked():
            self._remove_locked(path)

    def _remove_locked(self, path: Path) -> None:
        try:
            _run(self._g, "worktree", "remove", "--force", "--force", str(path))
        except GitError:
            shutil.rmtree(path, ignore_errors=True)
            _run(self._g, "worktree", "prune")

    def rebase(self, commit: str, base: str, onto: str) -> Rebased:
        """Replay commit (whose parent is base) onto `onto` without a worktree, keeping message and author."""
        if base == onto:
            return Rebased(commit)
        status, out, _ = _execute(
            self._g,
            # The candidate's only parent is `base`, an ancestor of `onto`: git finds that merge base itself
            # (and git 2.39 has no --merge-base).
            ["merge-tree", "--write-tree", "--name-only", onto, commit],
            with_extended_output=True,
            with_exceptions=False,
        )
        lines = out.splitlines()
        if status == 1:
            files = tuple(sorted({ln for ln in lines[1:] if ln and not ln.startswith(("Auto-merging", "CONFLICT"))}))
            return Rebased(None, files)
        if status != 0:
            raise GitError(f"git merge-tree of {commit[:12]} onto {onto[:12]} failed: {out.strip()}")
        return Rebased(self.commit_tree(lines[0], onto, self.message(commit), author_of=commit))

    def commit_tree(self, tree: str, parent: str, message: str, author_of: str | None = None, author: str = "") -> str:
        env = {**SWARM_AUTHOR, **SWARM_IDENTITY}
        if author_of:
            name, email, date = _run(self._g, "log", "-1", "--format=%an%x00%ae%x00%ad", author_of).split("\0")
            env.update(GIT_AUTHOR_NAME=name, GIT_AUTHOR_EMAIL=email, GIT_AUTHOR_DATE=date)
        elif author:
            env.update(GIT_AUTHOR_NAME=author, GIT_AUTHOR_EMAIL=f"{author.replace('/', '.')}@swarm.invalid")
        return _run(self._g, "commit-tree", tree, "-p", parent, "-m", message, env=env).strip()

    def commit_file(self, base: str, path: str, text: str, message: str, author: str) -> str:
        """A commit on `base` that adds or replaces one file (a task file from `swarm add`)."""
        index = self.path / f"swarm-file-{os.getpid()}.index"
        env = {"GIT_INDEX_FILE": str(index)}
        try:
            _run(self._g, "read-tree", base, env=env)
            sha = self._feed(self._g, ["hash-object", "-w", "--stdin"], text).strip()
            _run(self._g, "update-index", "--add", "--cacheinfo", f"100644,{sha},{path}", env=env)
            tree = _run(self._g, "write-tree", env=env).strip()
        finally:
            index.unlink(missing_ok=True)
        return self.commit_tree(tree, base, message, author=author)

    def push_main(self, old: str, new: str) -> bool:
        """Move main on origin from OLD to NEW by compare-and-swap; False when main had moved."""
        main_ref = f"refs/heads/{self.branch}"
        status, out, err = _execute(
            self._g,
            ["push", "--porcelain", "--no-verify", self.origin, f"--force-with-lease={main_ref}:{old}",
             f"{new}:{main_ref}"],
            with_extended_output=True,
            with_exceptions=False,
        )  # fmt: skip
        if status == 0:
            return True
        report = f"{out}\n{err}"
        if "stale info" in report or "fetch first" in report or "non-fast-forward" in report:
            return False
        raise GitError(f"push of {new[:12]} to {self.origin} {self.branch} failed: {err.strip() or out.strip()}")

    def keep(self, commit: str, name: str) -> None:
        """Pin a commit not yet on any ref (an attempt's candidate), so no `git gc` in the mirror prunes it."""
        _run(self._g, "update-ref", f"{KEEP_PREFIX}{name}", commit)

    def unkeep(self, *names: str) -> None:
        """Drop the pins of `names` (those that exist) with one process."""
        lines = "".join(f"delete {KEEP_PREFIX}{name}\n" for name in names if "\n" not in name)
        if lines:
            self._feed(self._g, ["update-ref", "--stdin"], lines)

    def touched_by(self, commit: str) -> list[str]:
        """Paths a commit changed against its first parent (all of them for a root commit)."""
        return _run(self._g, "diff-tree", "--root", "--no-commit-id", "--name-only", "-r", commit).splitlines()

    def changed(self, old: str, new: str) -> list[str]:
        return _run(self._g, "diff", "--name-only", "--no-renames", old, new).splitlines()

    def raw_changes(self, old: str, new: str) -> list[tuple[str, str, str, str]]:
        """(path, old mode, new mode, new blob) of every path that differs, modes included ("000000": absent)."""
        out = _run(self._g, "diff-tree", "-r", "-z", "--no-renames", old, new)
        fields = out.split("\0")
        found = []
        for meta, path in zip(fields[0::2], fields[1::2], strict=False):
            if not meta.startswith(":"):
                continue
            old_mode, new_mode, _, new_sha, _ = meta[1:].split()
            found.append((path, old_mode, new_mode, new_sha))
        return found

    def blob(self, sha: str) -> bytes:
        return self.object_data(sha)[1]

    def paths(self, commit: str, patterns: list[str] | None = None) -> set[str]:
        """The paths of a commit's files, or of those matching the globs `patterns`: then only the folders the globs
        can reach are listed, so the cost follows the matches rather than the repository."""
        if patterns is not None:
            return set(matching_entries(self, commit, patterns))
        return set(_nul(_run(self._g, "ls-tree", "-r", "-z", "--name-only", "--full-tree", commit)))

    def restore(self, commit: str, base: str, paths: list[str]) -> str:
        """A commit like `commit` but with `paths` as they are in `base` (deleted where base lacks them)."""
        index = self.path / f"swarm-restore-{os.getpid()}.index"
        env = {"GIT_INDEX_FILE": str(index)}
        try:
            _run(self._g, "read-tree", commit, env=env)
            for path in paths:
                entry = _run(self._g, "ls-tree", base, "--", path).strip()
                if entry:
                    mode_type_sha, _, _ = entry.partition("\t")
                    mode, _, sha = mode_type_sha.split()
                    _run(self._g, "update-index", "--add", "--cacheinfo", f"{mode},{sha},{path}", env=env)
                else:  # --force-remove insists on a work tree, which a bare mirror lacks; it never touches one
                    with tempfile.TemporaryDirectory() as empty:
                        _run(self._g, "update-index", "--force-remove", "--", path, env={**env, "GIT_WORK_TREE": empty})
            tree = _run(self._g, "write-tree", env=env).strip()
        finally:
            index.unlink(missing_ok=True)
        parent = _run(self._g, "rev-parse", f"{commit}^").strip()
        return self.commit_tree(tree, parent, self.message(commit), author_of=commit)

    def land(self, old: str, new: str, task_id: str) -> LandResult:
        """The atomic compare-and-swap: main OLD->NEW and the landed ref created, both or neither."""
        return self.land_recorded(old, new, task_id)[0]

    def land_recorded(self, old: str, new: str, task_id: str, record: tuple[str, str] | None = None,
                      carried: dict[str, str] | None = None) -> tuple[LandResult, bool]:  # fmt: skip
        """`land`, with `record` (a ref and a message, see `append_record`) appended to that ref in the same
        atomic push: the landing and its record reach origin together or not at all. Returns the result and
        whether the record went with it; when only the record's ref had moved (another writer appended), the
        landing is pushed again without it and the caller appends the record on its own.

        With `carried` (task -> commit, in line order: each the child of the one before, the first NEW's), the same
        push lands those tasks too: main moves from OLD to the last of them, and each task's landed ref is created
        on its own commit, all or nothing. The caller checked the line; one of them already landed is
        CARRIED_LANDED."""
        carried = carried or {}
        landed_ref = f"{LANDED_PREFIX}{task_id}"
        main_ref = f"refs/heads/{self.branch}"
        moved_to = list(carried.values())[-1] if carried else new  # main's new commit (`tip` is the record ref's)
        leases = [f"--force-with-lease={main_ref}:{old}", f"--force-with-lease={landed_ref}:"]
        leases += [f"--force-with-lease={LANDED_PREFIX}{task}:" for task in carried]
        updates = [f"{moved_to}:{main_ref}", f"{new}:{landed_ref}"]
        updates += [f"{commit}:{LANDED_PREFIX}{task}" for task, commit in carried.items()]
        if record is not None:
            ref, message = record
            try:
                tip, rec = self._record_commit(ref, message)
            except GitError as exc:  # the record never costs the landing: it is appended after it, or spooled
                log.warning("landing %s without its record (%s)", task_id, exc)
                return self.land_recorded(old, new, task_id, carried=carried)
            leases.append(f"--force-with-lease={ref}:{tip}")
            updates.append(f"{rec}:{ref}")
        status, out, err = _execute(
            self._g,
            ["push", "--atomic", "--porcelain", "--no-verify", self.origin, *leases, *updates],
            with_extended_output=True,
            with_exceptions=False,
        )  # fmt: skip
        if status == 0:
            also = f" with {' '.join(carried)} ({moved_to[:12]})" if carried else ""
            log.info("landed %s as %s on %s%s", task_id, new[:12], self.branch, also)
            if record is not None:
                with self.locked():
                    _run(self._g, "update-ref", record[0], rec, with_exceptions=False)
            return LandResult.LANDED, record is not None
        report = f"{out}\n{err}"
        # Porcelain lines "!<TAB>src:dst<TAB>[rejected] (why)": the ref that refused it, the rest "atomic push failed".
        lines = [line.split("\t") for line in report.splitlines() if line.startswith("!\t")]
        refused = {fields[1].rpartition(":")[2] for fields in lines if "atomic push failed" not in fields[-1]}
        if record is not None and record[0] in refused:
            self._refresh(record[0])  # the record's ref moved, not main: land without it
            return self.land_recorded(old, new, task_id, carried=carried)
        if landed_ref in refused:
            return LandResult.ALREADY_LANDED, False
        if refused & {f"{LANDED_PREFIX}{task}" for task in carried}:
            return LandResult.CARRIED_LANDED, False
        if "stale info" in report or "fetch first" in report or "non-fast-forward" in report:
            return LandResult.MAIN_MOVED, False
        raise GitError(f"landing push of {task_id} to {self.origin} failed: {err.strip() or out.strip()}")

    def land_batch(self, old: str, tip: str, members: dict[str, str]) -> tuple[LandResult, str]:
        """A batch's atomic landing: main OLD->M and every member's landed ref created, all or nothing.

        M is a merge commit (as bors makes) whose first parent is OLD and whose tree is exactly `tip`'s, the tree
        the full oracle passed; its second parent is `tip`, the last of the members' commits, one per task on the
        merged line, each with its own trailers. Returns the result and M. ALREADY_LANDED only when the task of
        `tip` (the last member) has landed; another member's existing ref is MAIN_MOVED (its car is stale)."""
        tasks = list(members)
        message = (
            f"Land a batch of {len(tasks)} tasks tested as one tree\n\n"
            f"Swarm-Batch: {' '.join(tasks)}\nSwarm-Agent: {BATCH_AGENT}\n"
        )
        merge = _run(self._g, "commit-tree", self.tree(tip), "-p", old, "-p", tip, "-m", message,
                     env={**SWARM_IDENTITY, **SWARM_AUTHOR}).strip()  # fmt: skip
        main_ref = f"refs/heads/{self.branch}"
        leases = [f"--force-with-lease={LANDED_PREFIX}{t}:" for t in tasks]
        refs = [f"{sha}:{LANDED_PREFIX}{t}" for t, sha in members.items()]
        status, out, err = _execute(
            self._g,
            ["push", "--atomic", "--porcelain", "--no-verify", self.origin, f"--force-with-lease={main_ref}:{old}",
             *leases, f"{merge}:{main_ref}", *refs],
            with_extended_output=True,
            with_exceptions=False,
        )  # fmt: skip
        if status == 0:
            log.info("landed a batch of %d (%s) as %s on %s", len(tasks), " ".join(tasks), merge[:12], self.branch)
            return LandResult.LANDED, merge
        report = f"{out}\n{err}"
        own = f"{LANDED_PREFIX}{tasks[-1]}"
        for line in report.splitlines():
            if line.startswith("!") and own in line and "atomic push failed" not in line:
                return LandResult.ALREADY_LANDED, merge
        if "stale info" in report or "fetch first" in report or "non-fast-forward" in report:
            return LandResult.MAIN_MOVED, merge
        why = err.strip() or out.strip()
        raise GitError(f"landing push of the batch {' '.join(tasks)} to {self.origin} failed: {why}")

    def append_record(self, ref: str, message: str, tries: int = 20) -> str:
        """Append a commit holding `message` to `ref` on origin by compare-and-swap; returns the new tip.

        A writer that lost the race fetches the ref's new tip and appends on top of it, so concurrent writers
        never drop each other's records.
        """
        for round_ in range(tries):
            if round_:  # writers that collided back off by different amounts, so one of them wins the next round
                time.sleep(random.uniform(0, 0.05 * 2 ** min(round_, 5)))
            old, new = self._record_commit(ref, message)
            status, out, err = _execute(
                self._g,
                ["push", "--porcelain", "--no-verify", self.origin, f"--force-with-lease={ref}:{old}", f"{new}:{ref}"],
                with_extended_output=True,
                with_exceptions=False,
            )  # fmt: skip
            if status == 0:  # origin has it; a local ref left behind only costs the next writer one more round
                with self.locked():
                    _run(self._g, "update-ref", ref, new, with_exceptions=False)
                return new
            report = f"{out}\n{err}"
            if not any(lost in report for lost in CAS_LOST):
                raise GitError(f"cannot append to {ref} on {self.origin}: {err.strip() or out.strip()}")
            self._refresh(ref)
        raise GitError(f"cannot append to {ref} on {self.origin}: lost the compare-and-swap {tries} times")

    def _record_commit(self, ref: str, message: str) -> tuple[str, str]:
        """A record commit (empty tree, `message`) on the mirror's tip of `ref`: (that tip or "", the new commit)."""
        tip = self._local_rev(ref)
        parent = ["-p", tip] if tip else []
        env = {**SWARM_AUTHOR, **SWARM_IDENTITY}
        return tip, _run(self._g, "commit-tree", EMPTY_TREE, *parent, "-m", message, env=env).strip()

    def set_ref(self, ref: str, new: str | None, old: str | None) -> bool:
        """Set (or with `new` None delete) a ref on origin by compare-and-swap from `old` (None: absent); False
        when origin's ref was not `old`. The mirror's copy follows."""
        source = f"{new}:{ref}" if new else f":{ref}"
        status, out, err = _execute(
            self._g,
            ["push", "--porcelain", "--no-verify", self.origin, f"--force-with-lease={ref}:{old or ''}", source],
            with_extended_output=True,
            with_exceptions=False,
        )  # fmt: skip
        report = f"{out}\n{err}"
        if status != 0 and not new and "remote ref does not exist" in report:
            status = 0  # deleting what is already gone
        if status == 0:
            with self.locked():
                args = ["update-ref", ref, new] if new else ["update-ref", "-d", ref]
                _run(self._g, *args, with_exceptions=False)
            return True
        if any(lost in report for lost in CAS_LOST):
            self._refresh(ref)
            return False
        raise GitError(f"cannot set {ref} on {self.origin}: {err.strip() or out.strip()}")

    def is_ancestor(self, old: str, new: str) -> bool:
        status, _, _ = _execute(self._g, ["merge-base", "--is-ancestor", old, new], with_extended_output=True,
                                with_exceptions=False)  # fmt: skip
        return bool(status == 0)

    def local_rev(self, ref: str) -> str | None:
        """A ref of the mirror (as of the last fetch), or None when it has none."""
        return self._local_rev(ref) or None

    def _local_rev(self, ref: str) -> str:
        # Not through the long-lived batch: it keeps packed-refs read and reloads it only when the file's stat data
        # change, to the second, so two rewrites within one second can leave it answering an old value.
        return _run(self._g, "rev-parse", "--verify", "--quiet", ref, with_exceptions=False).strip()

    def _refresh(self, ref: str) -> None:
        """Bring one ref of the mirror to origin's value (deleted when origin has none)."""
        self._refs = None  # read from the mirror again until the next fetch
        with self.locked():
            listed = _run(self._g, "ls-remote", self.origin, ref).split()
            if listed:
                _run(self._g, "fetch", "--quiet", "--no-write-fetch-head", self.origin, f"+{ref}:{ref}")
            else:
                _run(self._g, "update-ref", "-d", ref, with_exceptions=False)

    def records(self, ref: str) -> list[str]:
        """Messages of every commit on `ref`, or on every ref under it when it ends in "/", each chain oldest first
        (as of the last fetch)."""
        if not _run(self._g, "for-each-ref", "--count=1", "--format=%(refname)", ref).strip():
            return []
        revs = [f"--glob={ref}*"] if ref.endswith("/") else [ref]
        out = _run(self._g, "log", "--reverse", "--topo-order", "--format=%x1e%B", *revs, "--")
        return [m.strip() for m in out.split("\x1e") if m.strip()]

    def probe_push(self, commit: str) -> tuple[bool, str]:
        """Push a throw-away ref to origin and delete it: proves the swarm can land there."""
        ref = "refs/swarm/doctor/probe"
        status, _, err = _execute(
            self._g,
            ["push", "--quiet", self.origin, f"{commit}:{ref}"],
            with_extended_output=True,
            with_exceptions=False,
        )
        if status != 0:
            return False, f"cannot push to {self.origin}: {err.strip()}"
        _execute(self._g, ["push", "--quiet", self.origin, f":{ref}"], with_exceptions=False)
        return True, f"the swarm can push to {self.origin}"

    # --- folders kept in step with a commit: the oracle's tree and the agent's standalone workspace ---

    def sync(self, commit: str, dest: Path) -> None:
        """Make `dest` hold exactly `commit`'s files, with no `.git` of the mirror's: an export whose cost follows the
        change. The first sync writes every file; later ones rewrite only what changed since, and put back or remove
        whatever a run left there (edits, new files, build output), judged by the swarm's own index kept beside the
        folder, never inside it. (`export` below writes a fresh folder every time.)"""
        index = index_of(dest)
        if dest.is_symlink() or not dest.is_dir() or not index.is_file():
            _remove(dest)
            index.unlink(missing_ok=True)
            dest.mkdir(parents=True)
            _run(self._tree_git(dest), "read-tree", "--reset", "-u", commit)
            return
        g = self._tree_git(dest)
        for path in _nul(_run(g, "ls-files", "-z", "--others", "--directory")):
            _remove(dest / path)
        dirty = _nul(_run(g, "diff-files", "--name-only", "-z"))
        if dirty:
            self._feed(g, ["checkout-index", "-f", "-u", "-z", "--stdin"], "".join(f"{p}\0" for p in dirty))
        _run(g, "read-tree", "-m", "-u", commit)

    def workspace(self, commit: str, dest: Path, head: str | None = None) -> None:
        """An agent's standalone repository with the files of `commit` on branch `main` at `head` (`commit` when
        None; else the files' changes from `head` show as staged): its own config, refs and index, no hooks and no
        remote; objects borrowed read-only from the mirror through alternates. The swarm never runs git inside
        it: `collect` reads it from the outside."""
        self.sync(commit, dest)
        dot = dest / ".git"
        _remove(dot)
        branch = dot / "refs" / "heads" / self.branch
        branch.parent.mkdir(parents=True)
        (dot / "refs" / "tags").mkdir()
        (dot / "objects" / "info").mkdir(parents=True)
        (dot / "objects" / "info" / "alternates").write_text(f"{(self.path / 'objects').resolve()}\n")
        (dot / "config").write_text("[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n")
        (dot / "HEAD").write_text(f"ref: refs/heads/{self.branch}\n")
        branch.write_text(f"{head or commit}\n")
        # The swarm's index knows the stat data of every file it just wrote: `git status` there is instant.
        shutil.copyfile(index_of(dest), dot / "index")

    def collect(self, dest: Path, base: str, message: str, author: str) -> str | None:
        """The files of a folder made by `sync`/`workspace` at `base`, as one commit on `base` (None if unchanged).

        Only what changed is read: paths whose stat data differ from the swarm's index, and new files not ignored by
        a `.gitignore`. Git runs on the mirror with no hooks, and content is stored as it is on disk (`--no-filters`):
        nothing of the folder's own git config, hooks or attributes is run.
        """
        g = self._tree_git(dest)
        changed = _nul(_run(g, "diff-files", "--name-only", "-z"))
        new = _nul(_run(g, "ls-files", "-z", "--others", "--exclude-per-directory=.gitignore"))
        paths = sorted(set(changed) | {p for p in new if not p.endswith("/")})  # "x/": a nested repository
        if paths:
            self._stage(g, dest, paths)
        # The folder may have started from other files than base's (a resumed attempt's): compare whole trees.
        tree = _run(g, "write-tree").strip()
        if tree == self.tree(base):
            return None
        return self.commit_tree(tree, base, message, author=author)

    def _stage(self, g: git.Git, dest: Path, paths: list[str]) -> None:
        """Put the files of `paths` as they are on disk (or their removal) into the folder's index."""
        with tempfile.TemporaryDirectory() as tmp:
            gone, blobs = _blob_sources(dest, paths, Path(tmp))
            shas = self._feed(g, ["hash-object", "-w", "--no-filters", "--stdin-paths"], "".join(
                f"{source}\n" for _, _, source in blobs
            )).split()  # fmt: skip
        lines = [f"0 {'0' * 40}\t{path}\0" for path in gone]  # removals first: a file may become a folder
        lines += [f"{mode} {sha}\t{path}\0" for (path, mode, _), sha in zip(blobs, shas, strict=True)]
        self._feed(g, ["update-index", "-z", "--index-info"], "".join(lines))

    def _tree_git(self, dest: Path) -> git.Git:
        g = _git(dest, self.git_timeout)
        g.update_environment(GIT_DIR=str(self.path), GIT_WORK_TREE=str(dest), GIT_INDEX_FILE=str(index_of(dest)))
        return g

    def _feed(self, g: git.Git, args: list[str], data: str) -> str:
        """Run git with `data` on its standard input."""
        with tempfile.TemporaryFile() as fh:
            fh.write(data.encode("utf-8", "surrogateescape"))
            fh.seek(0)
            return _run(g, *args, istream=fh)


def index_of(dest: Path) -> Path:
    """The swarm's own index of a folder it keeps in step with a commit: beside the folder, out of a sandbox's reach."""
    return dest.parent / f".{dest.name}.swarm-index"


def _nul(out: str) -> list[str]:
    return [p for p in out.split("\0") if p]


def _remove(path: Path) -> None:
    """Remove a file, symlink (never what it points to) or folder; nothing if it is not there."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def _blob_sources(dest: Path, paths: list[str], tmp: Path) -> tuple[list[str], list[tuple[str, str, str]]]:
    """Paths gone from `dest`, and (path, mode, file to hash) for the rest: a symlink's target is hashed as its blob,
    and a file whose name git cannot take on a line is hashed through a copy."""
    gone: list[str] = []
    blobs: list[tuple[str, str, str]] = []
    for n, path in enumerate(paths):
        full = dest / path
        try:
            st = os.lstat(full)
        except (FileNotFoundError, NotADirectoryError):
            gone.append(path)
            continue
        if stat.S_ISLNK(st.st_mode):
            source = tmp / f"link-{n}"
            source.write_bytes(os.fsencode(os.readlink(full)))
            blobs.append((path, "120000", str(source)))
        elif stat.S_ISREG(st.st_mode):
            source = full
            if "\n" in str(full) or str(full).startswith('"'):
                source = tmp / f"file-{n}"
                shutil.copyfile(full, source)
            blobs.append((path, "100755" if st.st_mode & 0o111 else "100644", str(source)))
        else:  # a tracked file that became a folder (its files are listed on their own) or a special file
            gone.append(path)
    return gone, blobs


class Worktree:
    """One attempt's checkout; the agent changes it, the swarm turns its final state into one commit."""

    def __init__(self, path: Path, mirror: Mirror) -> None:
        self.path = path
        self.mirror = mirror
        self.g = _git(path, mirror.git_timeout)

    def snapshot(self, base: str, message: str, author: str) -> str | None:
        """One commit on `base` holding the worktree's files as they are (agent commits squashed); None if no change."""
        index = self.path / ".." / f".{self.path.name}.swarm-index"
        env = {"GIT_INDEX_FILE": str(index.resolve())}
        try:
            _run(self.g, "read-tree", base, env=env)
            _run(self.g, "add", "--all", ".", env=env)
            tree = _run(self.g, "write-tree", env=env).strip()
        finally:
            index.unlink(missing_ok=True)
        if tree == _run(self.g, "rev-parse", f"{base}^{{tree}}").strip():
            return None
        return self.mirror.commit_tree(tree, base, message, author=author)

    def checkout(self, commit: str) -> None:
        """Make the worktree exactly `commit`: untracked and ignored files too are gone, so nothing the agent
        left behind can sway the oracle (build caches live outside the worktree)."""
        _run(self.g, "checkout", "--detach", "--force", "--quiet", commit)
        _run(self.g, "clean", "-fdxq")


def matches(path: str, patterns: list[str]) -> bool:
    """Whether a repository path matches any glob; `**` crosses folders, `*` does not, `dir/**` is the folder."""
    return any(_glob(p).match(path) for p in patterns)


@functools.lru_cache(maxsize=256)
def _glob(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[" and "]" in pattern[i + 2 :]:
            end = pattern.index("]", i + 2)
            body = pattern[i + 1 : end]
            out, i = out + "[" + ("^" + body[1:] if body[0] in "!^" else body).replace("\\", "\\\\") + "]", end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(f"^{out}$")


def init_project(template: Path, origin: Path, clone: Path, branch: str = "main") -> str:
    """A new project: a bare origin holding the template as its first commit, and a working clone of it."""
    if origin.exists() and any(origin.iterdir()):
        raise GitError(f"{origin} already exists and is not empty; choose another folder")
    if clone.exists() and any(clone.iterdir()):
        raise GitError(f"{clone} already exists and is not empty; choose another folder")
    if not template.is_dir():
        raise GitError(f"template folder {template} does not exist")
    origin.mkdir(parents=True, exist_ok=True)
    _run(_git(origin), "init", "--bare", "--quiet", f"--initial-branch={branch}")
    shutil.copytree(template, clone, ignore=shutil.ignore_patterns("target", ".git", "__pycache__"), dirs_exist_ok=True)
    g = _git(clone)
    _run(g, "init", "--quiet", f"--initial-branch={branch}")
    _run(g, "add", "--all")
    env = {"GIT_AUTHOR_NAME": "swarm init", "GIT_AUTHOR_EMAIL": "init@swarm.invalid", **SWARM_IDENTITY}
    message = f"Start the project from {template.name}\n\nSwarm-Task: init\nSwarm-Agent: swarm-init\n"
    _run(g, "commit", "--quiet", "-m", message, env=env)
    _run(g, "remote", "add", "origin", str(origin.resolve()))
    _run(g, "push", "--quiet", "origin", f"HEAD:refs/heads/{branch}")
    _run(g, "branch", "--set-upstream-to", f"origin/{branch}")
    return _run(g, "rev-parse", "HEAD").strip()


# --- adopting an existing repository (`swarm init --adopt`) ---


def origin_of(source: str, bare_copy: Path) -> str:
    """Where the swarm lands for an existing repository: a URL or bare repository as given; a working clone's own
    `origin` remote; or, for a working clone without one, a bare copy of it made at `bare_copy`."""
    path = Path(source).expanduser()
    if not path.exists():
        _run(_git(Path.cwd()), "ls-remote", "--heads", source)  # reachable, or a GitError naming it
        return source
    g = _git(path)
    if _run(g, "rev-parse", "--is-bare-repository").strip() == "true":
        return str(path.resolve())
    remote = _run(g, "config", "--get", "remote.origin.url", with_exceptions=False).strip()
    if remote:
        return remote if "://" in remote or ":" in remote.split("/")[0] else str((path / remote).resolve())
    if bare_copy.exists() and any(bare_copy.iterdir()):
        raise GitError(f"{bare_copy} already exists and is not empty; choose another folder")
    _run(_git(Path.cwd()), "clone", "--quiet", "--bare", str(path.resolve()), str(bare_copy))
    return str(bare_copy.resolve())


def clone_default_branch(origin: str, clone: Path) -> str:
    """Clone origin into `clone`; returns origin's default branch, or a GitError for an empty repository."""
    if clone.exists() and any(clone.iterdir()):
        raise GitError(f"{clone} already exists and is not empty; choose another folder")
    _run(_git(Path.cwd()), "clone", "--quiet", "--no-recurse-submodules", origin, str(clone))
    g = _git(clone)
    if not _run(g, "rev-parse", "--verify", "--quiet", "HEAD", with_exceptions=False).strip():
        raise GitError(f"{origin} has no commits: adopt a repository with history, or use `swarm init`")
    return _run(g, "symbolic-ref", "--short", "HEAD").strip()


def commit_adoption(clone: Path, branch: str, message: str) -> str:
    """Commit every change of the clone as one commit and push it to origin's branch and to refs/swarm/adopted,
    atomically and only if the repository was never adopted before."""
    g = _git(clone)
    _run(g, "add", "--all")
    env = {"GIT_AUTHOR_NAME": "swarm init", "GIT_AUTHOR_EMAIL": "init@swarm.invalid", **SWARM_IDENTITY}
    _run(g, "commit", "--quiet", "--no-verify", "-m", message, env=env)
    head = _run(g, "rev-parse", "HEAD").strip()
    status, out, err = _execute(
        g,
        ["push", "--atomic", "--porcelain", "--no-verify", "origin", f"--force-with-lease={ADOPTED_REF}:",
         f"HEAD:refs/heads/{branch}", f"HEAD:{ADOPTED_REF}"],
        with_extended_output=True,
        with_exceptions=False,
    )  # fmt: skip
    if status != 0:
        raise GitError(f"cannot push the adoption commit to origin ({branch} and {ADOPTED_REF}): "
                       f"{err.strip() or out.strip()}")  # fmt: skip
    return head


def tree_entries(mirror: Mirror, commit: str, paths: list[str] | None = None) -> dict[str, tuple[str, str]]:
    """Every file of a commit (or of `paths` in it: files, or folders ending in `/`) as path -> (mode, blob id),
    read from the tree alone."""
    where = ["--", *paths] if paths else []
    out = _run(mirror._g, "--literal-pathspecs", "ls-tree", "-r", "-z", "--full-tree", commit, *where)
    entries = {}
    for entry in filter(None, out.split("\0")):
        meta, _, path = entry.partition("\t")
        mode, _, sha = meta.split()
        entries[path] = (mode, sha)
    return entries


def matching_entries(mirror: Mirror, commit: str, patterns: list[str]) -> dict[str, tuple[str, str]]:
    """The files of a commit that match the globs, listing only the folders the globs can reach (their literal
    leading folders), so the cost follows the matches rather than the repository; the globs still decide."""
    roots = sorted({_literal_folder(p) for p in patterns})
    listed = None if "" in roots else mirror.entries_under(commit, roots)
    if listed is None:
        listed = tree_entries(mirror, commit, None if "" in roots else roots)
    return {p: e for p, e in listed.items() if matches(p, patterns)}


def _literal_folder(pattern: str) -> str:
    """The folder every match of a glob lies in ("oracle/" for "oracle/**"; "" when it may be anywhere); a glob
    without wildcards is its own path."""
    wild = min((i for i, ch in enumerate(pattern) if ch in "*?["), default=None)
    if wild is None:
        return pattern
    return pattern[: pattern.rfind("/", 0, wild) + 1]


def export(mirror: Mirror, commit: str, dest: Path, *, only: list[str] | None = None) -> int:
    """Write a commit's files (or those matching the globs `only`) into dest, from the mirror's objects alone.

    No attributes, filters, hooks or config of anything an agent wrote take part: blobs are written as they are,
    symlinks as symlinks, submodule entries not at all.
    """
    entries = matching_entries(mirror, commit, only) if only is not None else tree_entries(mirror, commit)
    dest.mkdir(parents=True, exist_ok=True)
    count = 0
    for path, (mode, sha) in sorted(entries.items()):
        if mode == MODE_GITLINK or ".." in Path(path).parts or path.startswith("/"):
            continue
        target = dest / path
        target.parent.mkdir(parents=True, exist_ok=True)
        data = mirror.object_data(sha)[1]
        if mode == MODE_LINK:
            os.symlink(data, target)
            continue
        target.write_bytes(data)
        if mode == MODE_EXEC:
            target.chmod(0o755)
        count += 1
    return count
