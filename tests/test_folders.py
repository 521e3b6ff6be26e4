"""Folders kept in step with a commit (sync, workspace) and an agent's changes read back from the outside (collect),
on real git repositories: exact trees, work that follows the change, nothing of the workspace's own git run."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from swarm import repo
from swarm.repo import Mirror
from tests.conftest import GIT_IDENTITY

FILLER = 300


def sh(*args: str, cwd: Path) -> str:
    env = {**os.environ, **GIT_IDENTITY}
    return subprocess.run(args, cwd=cwd, check=True, capture_output=True, text=True, env=env).stdout


@pytest.fixture
def mirror(tmp_path: Path) -> Mirror:
    template = tmp_path / "template"
    (template / "src").mkdir(parents=True)
    (template / "src" / "a.txt").write_text("a\n")
    (template / "src" / "b.txt").write_text("b\n")
    (template / "run.sh").write_text("#!/bin/sh\n")
    (template / "run.sh").chmod(0o755)
    (template / "link").symlink_to("src/a.txt")
    for i in range(FILLER):
        (template / "filler").mkdir(exist_ok=True)
        (template / "filler" / f"f{i}.txt").write_text(f"{i}\n")
    repo.init_project(template, tmp_path / "origin.git", tmp_path / "clone")
    m = Mirror(str(tmp_path / "origin.git"), tmp_path / "mirror.git").ensure()
    m.fetch()
    return m


def tree_of(m: Mirror, commit: str) -> dict[str, tuple[str, str]]:
    out = sh("git", "--git-dir", str(m.path), "ls-tree", "-r", "-z", commit, cwd=m.path)
    entries = {}
    for entry in filter(None, out.split("\0")):
        meta, _, path = entry.partition("\t")
        mode, _, sha = meta.split()
        entries[path] = (mode, sha)
    return entries


def tree_on_disk(m: Mirror, folder: Path) -> dict[str, tuple[str, str]]:
    """Every file under folder (but .git) as git would store it, hashed without filters."""
    entries = {}
    for dirpath, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not (dirpath == str(folder) and d == ".git")]
        for name in files + [d for d in dirs if os.path.islink(os.path.join(dirpath, d))]:
            full = Path(dirpath) / name
            rel = str(full.relative_to(folder))
            if full.is_symlink():
                entries[rel] = ("120000", _hash_bytes(m, os.readlink(full)))
            else:
                sha = sh("git", "--git-dir", str(m.path), "hash-object", "--no-filters", str(full), cwd=m.path).strip()
                entries[rel] = ("100755" if os.access(full, os.X_OK) else "100644", sha)
    return entries


def _hash_bytes(m: Mirror, text: str) -> str:
    return (
        subprocess.run(
            ["git", "--git-dir", str(m.path), "hash-object", "--stdin"],
            input=text.encode(),
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .strip()
    )


def commit_with(m: Mirror, base: str, folder: Path, edit: dict[str, str | None]) -> str:
    """A commit on base with some files changed, made through a sync of base."""
    m.sync(base, folder)
    for path, text in edit.items():
        if text is None:
            (folder / path).unlink()
        else:
            (folder / path).parent.mkdir(parents=True, exist_ok=True)
            (folder / path).write_text(text)
    commit = m.collect(folder, base, "edit\n", author="t")
    assert commit is not None
    return commit


def test_sync_writes_exactly_the_tree_and_a_later_one_rewrites_only_what_changed(
    mirror: Mirror, tmp_path: Path
) -> None:
    main = mirror.main()
    other = commit_with(
        mirror, main, tmp_path / "scratch", {"src/a.txt": "A\n", "src/new.txt": "new\n", "src/b.txt": None}
    )
    dest = tmp_path / "slot" / "oracle"
    mirror.sync(main, dest)
    assert tree_on_disk(mirror, dest) == tree_of(mirror, main)
    assert not (dest / ".git").exists()
    # What a run leaves behind: edits, new files and folders, a deleted file, a file turned folder, a symlink out.
    (dest / "filler" / "f1.txt").write_text("tampered\n")
    (dest / "filler" / "f2.txt").unlink()
    (dest / "target" / "debug").mkdir(parents=True)
    (dest / "target" / "debug" / "cache").write_text("x")
    (dest / "run.sh").chmod(0o644)
    (dest / "link").unlink()
    (dest / "link").mkdir()
    (dest / "escape").symlink_to(tmp_path)
    untouched = dest / "filler" / "f9.txt"
    before = os.stat(untouched)
    mirror.sync(other, dest)
    assert tree_on_disk(mirror, dest) == tree_of(mirror, other)
    assert sorted(os.listdir(tmp_path / "slot")) == [".oracle.swarm-index", "oracle"], "the index lives beside it"
    after = os.stat(untouched)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns), (
        "an unchanged file is not rewritten"
    )
    mirror.sync(main, dest)
    assert tree_on_disk(mirror, dest) == tree_of(mirror, main)


def test_sync_finds_an_edit_whose_size_and_times_were_put_back(mirror: Mirror, tmp_path: Path) -> None:
    """A judge's tree and an agent's folder are reused: what a run edits in place and disguises (same size, old
    times put back) must still be rewritten, or one run's files would reach the next. Git's index compares the
    change time too, which no unprivileged process can set."""
    main = mirror.main()
    dest = tmp_path / "slot" / "tree"
    mirror.sync(main, dest)
    time.sleep(1.1)  # past the index's own time: no entry is left racily clean
    mirror.sync(main, dest)
    for name in ("f1.txt", "f2.txt"):
        target = dest / "filler" / name
        before = os.stat(target)
        target.write_text(target.read_text().replace("1", "7").replace("2", "8"))
        os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert os.stat(target).st_size == before.st_size and os.stat(target).st_mtime_ns == before.st_mtime_ns
    mirror.sync(main, dest)
    assert tree_on_disk(mirror, dest) == tree_of(mirror, main)


def test_a_workspace_is_a_standalone_repository_with_nothing_of_the_mirror_or_of_the_last_agent(
    mirror: Mirror, tmp_path: Path
) -> None:
    main = mirror.main()
    ws = tmp_path / "slot" / "ws"
    mirror.workspace(main, ws)
    assert sh("git", "status", "--porcelain", cwd=ws) == ""
    assert sh("git", "rev-parse", "HEAD", cwd=ws).strip() == main
    assert sh("git", "symbolic-ref", "HEAD", cwd=ws).strip() == "refs/heads/main"
    assert sh("git", "remote", cwd=ws) == "", "no remote: a push has nowhere to go"
    assert sh("git", "rev-parse", "--absolute-git-dir", cwd=ws).strip() == str(ws / ".git")
    # An agent plants a hook and a config, commits, and leaves a nested repository and junk.
    (ws / ".git" / "hooks").mkdir()
    (ws / ".git" / "hooks" / "pre-commit").write_text("#!/bin/sh\nexit 0\n")
    sh("git", "config", "core.hooksPath", "/tmp/evil", cwd=ws)
    (ws / "src" / "a.txt").write_text("agent\n")
    sh("git", "commit", "-qam", "agent work", cwd=ws)
    sh("git", "init", "-q", "nested", cwd=ws)
    mirror.workspace(main, ws)
    assert not (ws / ".git" / "hooks").exists() and "evil" not in (ws / ".git" / "config").read_text()
    assert sh("git", "rev-parse", "HEAD", cwd=ws).strip() == main
    assert sh("git", "status", "--porcelain", "--ignored", cwd=ws) == ""
    assert tree_on_disk(mirror, ws) == tree_of(mirror, main)
    refs = sh("git", "--git-dir", str(mirror.path), "for-each-ref", "--format=%(refname)", cwd=tmp_path).split()
    assert refs == ["refs/remotes/origin/main"], "the agent's commit made no ref in the mirror"


def test_collect_reads_the_agents_files_as_they_are_without_running_anything_of_the_workspace(
    mirror: Mirror, tmp_path: Path
) -> None:
    main = mirror.main()
    ws = tmp_path / "slot" / "ws"
    mirror.workspace(main, ws)
    marker = tmp_path / "ran"
    sh("git", "config", "filter.evil.clean", f"touch {marker}; cat", cwd=ws)
    sh("git", "config", "core.hooksPath", str(tmp_path / "hooks"), cwd=ws)
    (ws / ".gitattributes").write_text("* filter=evil text eol=lf\n")
    (ws / ".gitignore").write_text("build/\n")
    (ws / "build").mkdir()
    (ws / "build" / "out.bin").write_text("artifact")
    (ws / "src" / "crlf.txt").write_bytes(b"one\r\ntwo\r\n")
    (ws / "src" / "b.txt").unlink()
    (ws / "src" / "a.txt").write_text("changed\n")
    (ws / "run.sh").chmod(0o644)
    (ws / "link").unlink()
    (ws / "link").symlink_to("src/crlf.txt")
    (ws / "deep" / "er").mkdir(parents=True)
    (ws / "deep" / "er" / "x.txt").write_text("x\n")
    sh("git", "add", "-A", cwd=ws)
    sh("git", "commit", "-qm", "agent commit", cwd=ws)  # squashed: collect reads files, not commits
    marker.unlink(missing_ok=True)
    commit = mirror.collect(ws, main, "Task\n\nSwarm-Task: t\n", author="claude-agent")
    assert commit is not None and not marker.exists(), "no filter, hook or attribute of the workspace ran"
    assert mirror.parents(commit) == [main]
    tree = tree_of(mirror, commit)
    expected = {p: e for p, e in tree_on_disk(mirror, ws).items() if not p.startswith("build/")}
    assert tree == expected
    assert mirror.read(commit, "src/crlf.txt") == b"one\r\ntwo\r\n", "bytes as on disk, no eol conversion"
    assert tree["run.sh"][0] == "100644" and tree["link"][0] == "120000" and "src/b.txt" not in tree
    assert mirror.read(commit, "link") == b"src/crlf.txt"


def test_collect_finds_no_change_after_a_touch_or_an_edit_undone(mirror: Mirror, tmp_path: Path) -> None:
    main = mirror.main()
    ws = tmp_path / "ws"
    mirror.workspace(main, ws)
    assert mirror.collect(ws, main, "m", author="a") is None
    (ws / "src" / "a.txt").write_text("a\n")  # same content, new stat data
    (ws / "src" / "b.txt").write_text("gone soon\n")
    (ws / "src" / "b.txt").write_text("b\n")
    assert mirror.collect(ws, main, "m", author="a") is None


def test_a_file_turned_folder_and_back(mirror: Mirror, tmp_path: Path) -> None:
    main = mirror.main()
    ws = tmp_path / "ws"
    mirror.workspace(main, ws)
    (ws / "src" / "a.txt").unlink()
    (ws / "src" / "a.txt").mkdir()
    (ws / "src" / "a.txt" / "inner").write_text("in\n")
    commit = mirror.collect(ws, main, "m", author="a")
    assert commit is not None and mirror.read(commit, "src/a.txt/inner") == b"in\n"
    mirror.workspace(main, ws)
    assert (ws / "src" / "a.txt").read_text() == "a\n"


def test_git_processes_per_step_stay_within_a_budget_whatever_the_repository_size(
    mirror: Mirror, tmp_path: Path
) -> None:
    """The budget of one attempt's git work on these folders (the counter counts every git repo.py starts)."""
    main = mirror.main()
    ws, oracle_dir = tmp_path / "slot" / "ws", tmp_path / "slot" / "oracle"
    mirror.workspace(main, ws)
    mirror.sync(main, oracle_dir)
    start = repo.git_calls()
    mirror.workspace(main, ws)  # a warm slot: the common case
    assert repo.git_calls() - start <= 4
    (ws / "src" / "a.txt").write_text("work\n")
    start = repo.git_calls()
    commit = mirror.collect(ws, main, "m", author="a")
    assert commit is not None and repo.git_calls() - start <= 7
    start = repo.git_calls()
    mirror.sync(commit, oracle_dir)
    assert repo.git_calls() - start <= 4
