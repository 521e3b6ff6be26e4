"""repo.py: the mirror, worktrees, the squashed snapshot, rebase, protected-path restore, and the atomic landing
push (invariant 4: main OLD->NEW and the landed ref created, both or neither)."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import pytest

from swarm import proc, repo
from swarm.errors import GitError
from swarm.repo import LANDED_PREFIX, LandResult, Mirror, matches
from tests.conftest import TOY_REPO, Project, wait_for


def git(cwd: Path, *args: str, env: dict[str, str] | None = None, check: bool = True) -> str:
    out = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=check, env={**os.environ, **(env or {})}
    )
    return out.stdout.strip()


def origin_ref(project: Project, ref: str) -> str | None:
    out = subprocess.run(["git", "rev-parse", "--verify", "--quiet", ref], cwd=project.origin, capture_output=True)
    return out.stdout.decode().strip() or None


SIGN = {"GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@x", "GIT_COMMITTER_NAME": "c", "GIT_COMMITTER_EMAIL": "c@x"}


def make_commit(mirror: Mirror, base: str, files: dict[str, str | None], message: str, author: str = "agent") -> str:
    """A commit on base in the mirror with files changed (None deletes), built with plumbing only."""
    index = mirror.path / "test-make-commit.index"
    env = {"GIT_INDEX_FILE": str(index)}
    try:
        git(mirror.path, "read-tree", base, env=env)
        for path, text in files.items():
            if text is None:  # mode 0 removes the entry; --force-remove would need a work tree
                subprocess.run(
                    ["git", "update-index", "--index-info"], cwd=mirror.path, input=f"0 {'0' * 40}\t{path}\n",
                    text=True, check=True, env={**os.environ, **env},
                )  # fmt: skip
                continue
            blob = subprocess.run(
                ["git", "hash-object", "-w", "--stdin"], cwd=mirror.path, input=text, capture_output=True, text=True,
                check=True,
            ).stdout.strip()  # fmt: skip
            git(mirror.path, "update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=env)
        tree = git(mirror.path, "write-tree", env=env)
    finally:
        index.unlink(missing_ok=True)
    ident = {"GIT_AUTHOR_NAME": author, "GIT_AUTHOR_EMAIL": f"{author}@x", "GIT_AUTHOR_DATE": "1700000000 +0100",
             "GIT_COMMITTER_NAME": "c", "GIT_COMMITTER_EMAIL": "c@x"}  # fmt: skip
    return git(mirror.path, "commit-tree", tree, "-p", base, "-m", message, env=ident)


def move_main(project: Project, files: dict[str, str], message: str = "Move main") -> str:
    """A human commit pushed to origin's main through the clone; returns the new main."""
    project.git("pull", "-q", "--rebase", "origin", "main", cwd=project.clone)
    for path, text in files.items():
        (project.clone / path).parent.mkdir(parents=True, exist_ok=True)
        (project.clone / path).write_text(text)
    project.commit_all(message)
    return project.git("rev-parse", "main")


def show(mirror: Mirror, commit: str, path: str) -> str | None:
    """A file's exact text at a commit (read with git itself, not through the code under test)."""
    out = subprocess.run(["git", "cat-file", "blob", f"{commit}:{path}"], cwd=mirror.path, capture_output=True)
    return out.stdout.decode() if out.returncode == 0 else None


@pytest.fixture
def mirror(project: Project, tmp_path: Path) -> Mirror:
    m = Mirror(str(project.origin), tmp_path / "mirror.git").ensure()
    m.fetch()
    return m


def test_the_mirror_follows_origin(project: Project, mirror: Mirror) -> None:
    assert mirror.main() == project.git("rev-parse", "main")
    assert mirror.landed() == {}
    assert show(mirror, mirror.main(), "src/base.txt") == (TOY_REPO / "src" / "base.txt").read_text()
    moved = move_main(project, {"tasks/one.md": "x"})
    assert mirror.main() != moved, "not before a fetch"
    assert mirror.fetch() == moved == mirror.main()
    assert set(mirror.read_folder(moved, "tasks")) == {"tasks/.keep", "tasks/one.md"}
    assert mirror.read(moved, "no/such/file") is None
    project.git("update-ref", f"{LANDED_PREFIX}done", moved)
    mirror.fetch()
    assert mirror.landed() == {"done": moved}


def test_a_folder_is_read_from_its_tree_object_without_a_process(project: Project, mirror: Mirror) -> None:
    base = mirror.main()
    commit = make_commit(mirror, base, {"tasks/a.md": "a", "tasks/sub/b.md": "b", "tasks/x y.md": "c"}, "files")
    link = subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=mirror.path, input="a.md", text=True,
                          capture_output=True, check=True).stdout.strip()  # fmt: skip  # a link's target
    index = mirror.path / "t.index"
    env = {"GIT_INDEX_FILE": str(index)}
    git(mirror.path, "read-tree", commit, env=env)
    git(mirror.path, "update-index", "--add", "--cacheinfo", f"120000,{link},tasks/link.md", env=env)
    git(mirror.path, "update-index", "--add", "--cacheinfo", f"160000,{base},tasks/module", env=env)
    commit = git(mirror.path, "commit-tree", git(mirror.path, "write-tree", env=env), "-p", commit, "-m", "m",
                 env={**SIGN})  # fmt: skip
    listed = git(mirror.path, "ls-tree", commit, "tasks/").splitlines()
    expected = {ln.split("\t")[1]: ln.split()[2] for ln in listed if ln.split()[1] == "blob"}
    calls = repo.git_calls()
    tree, files = mirror.folder(commit, "tasks")
    assert repo.git_calls() == calls, "read through the batch: no process"
    assert tree == git(mirror.path, "rev-parse", f"{commit}:tasks")
    assert files == expected and "tasks/link.md" in files and "tasks/x y.md" in files
    assert "tasks/sub" not in files and "tasks/module" not in files, "folders and submodules are not files"
    assert mirror.folder(commit, "tasks/") == (tree, files)
    assert mirror.folder(commit, "nope") == ("", {}) and mirror.folder(commit, "tasks/a.md") == ("", {})
    assert mirror.folder("0" * 40, "tasks") == ("", {})
    assert mirror.read_folder(commit, "tasks")["tasks/a.md"] == b"a"
    assert mirror.folder(commit, "./tasks") == (tree, files) and mirror.folder(commit, "tasks/../tasks") == (
        tree,
        files,
    )
    assert mirror.folder(commit, "../tasks") == ("", {})
    assert mirror.read(commit, "./tasks/a.md") == b"a" and mirror.read(commit, "../a.md") is None
    assert mirror.read(commit, "tasks//a.md") == b"a", "the batch still answers after those names"
    calls = repo.git_calls()
    assert mirror.tree(commit) == git(mirror.path, "rev-parse", f"{commit}^{{tree}}")
    assert repo.git_calls() == calls, "a commit's tree is read from the commit object"
    git(mirror.path, "tag", "-a", "-m", "t", "v1", commit, env={**SIGN})
    assert mirror.tree("v1") == mirror.tree(commit), "a tag is peeled, as rev-parse does"
    with pytest.raises(GitError):
        mirror.tree("0" * 40)


def test_a_batch_that_exited_is_started_again(mirror: Mirror) -> None:
    main = mirror.main()
    text = (TOY_REPO / "src" / "base.txt").read_bytes()
    assert mirror.read(main, "src/base.txt") == text
    batch = mirror._g.cat_file_all
    assert batch is not None and batch.proc is not None
    batch.proc.kill()  # as the OOM killer would, or git exiting on a name it refuses
    batch.proc.wait()
    assert mirror.read(main, "src/base.txt") == text, "not answered as missing for ever"
    assert mirror.read(main, "no/such") is None and mirror.read(main, "src/base.txt") == text


def test_main_and_the_landed_refs_come_with_each_fetch(project: Project, mirror: Mirror) -> None:
    moved = move_main(project, {"src/x.txt": "x"})
    project.git("update-ref", f"{LANDED_PREFIX}done", moved)
    assert mirror.fetch() == moved
    calls = repo.git_calls()
    assert mirror.main() == moved and mirror.landed() == {"done": moved}
    assert repo.git_calls() == calls, "read with the fetch: no process per question"
    mirror.landed()["done"] = "changed"  # each caller gets its own copy
    assert mirror.landed() == {"done": moved}
    again = move_main(project, {"src/y.txt": "y"})
    project.git("update-ref", f"{LANDED_PREFIX}more", again)
    assert mirror.main() == moved and "more" not in mirror.landed(), "as of this mirror's last fetch"
    assert mirror.fetch() == again == mirror.main() and mirror.landed() == {"done": moved, "more": again}
    project.git("update-ref", "-d", f"{LANDED_PREFIX}more")
    assert mirror.fetch() == again and mirror.landed() == {"done": moved}, "a pruned ref is gone"


def test_a_fetch_packs_the_refs_that_many_tasks_leave_loose(project: Project, mirror: Mirror) -> None:
    """Each task leaves refs; loose, git reads each as a file in every fetch, push and listing, so an attempt's cost
    would grow with the tasks the swarm ever ran. A fetch that finds many loose packs them; what they say is kept."""
    main = mirror.main()
    old = 300  # more than LOOSE_REFS_TO_PACK
    lines = "".join(f"create {LANDED_PREFIX}old-{i} {main}\n" for i in range(old))
    subprocess.run(["git", "update-ref", "--stdin"], cwd=project.origin, input=lines, text=True, check=True)
    mirror.fetch()
    loose = sum(len(files) for _, _, files in os.walk(mirror.path / "refs"))
    assert loose < 10, f"{loose} refs left loose in the mirror after a fetch brought {old}"
    assert mirror.landed() == {f"old-{i}": main for i in range(old)}
    moved = move_main(project, {"src/x.txt": "x"})
    project.git("update-ref", "-d", f"{LANDED_PREFIX}old-0")
    project.git("update-ref", f"{LANDED_PREFIX}new", moved)
    assert mirror.fetch() == moved, "a packed mirror still follows origin"
    landed = mirror.landed()
    assert "old-0" not in landed and landed["new"] == moved and len(landed) == old
    calls = repo.git_calls()
    mirror.fetch()
    assert repo.git_calls() == calls + 2, "few loose refs: no packing (a fetch and the listing of its refs)"


def test_pins_are_dropped_together_with_one_process(mirror: Mirror) -> None:
    main = mirror.main()
    mirror.keep(main, "t-1")
    mirror.keep(main, "t-1-rebased")
    mirror.keep(main, "other")
    calls = repo.git_calls()
    mirror.unkeep("t-1", "t-1-rebased", "never-kept")
    assert repo.git_calls() == calls + 1
    assert git(mirror.path, "for-each-ref", "--format=%(refname)", repo.KEEP_PREFIX).split() == [
        f"{repo.KEEP_PREFIX}other"
    ]


def test_read_returns_the_exact_bytes(project: Project, mirror: Mirror) -> None:
    data = b"line one\n\x00binary\r\nlast line\n"
    commit = make_commit(mirror, mirror.main(), {}, "empty")
    blob = subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=mirror.path, input=data, capture_output=True,
                          check=True).stdout.decode().strip()  # fmt: skip
    index = mirror.path / "t.index"
    env = {"GIT_INDEX_FILE": str(index)}
    git(mirror.path, "read-tree", commit, env=env)
    git(mirror.path, "update-index", "--add", "--cacheinfo", f"100644,{blob},tasks/data.bin", env=env)
    tree = git(mirror.path, "write-tree", env=env)
    with_file = git(mirror.path, "commit-tree", tree, "-p", commit, "-m", "data", env={**SIGN})
    assert mirror.read(with_file, "tasks/data.bin") == data
    assert mirror.read_folder(with_file, "tasks")["tasks/data.bin"] == data
    assert mirror.read(with_file, "tasks") is None, "a folder is not a file"
    assert mirror.read("0" * 40, "tasks/data.bin") is None and mirror.read(with_file, "tasks/nope") is None
    assert mirror.read(with_file, "odd\nname") is None, "a name the batch protocol cannot carry still gets an answer"
    calls = repo.git_calls()
    for _ in range(5):
        assert mirror.read(with_file, "tasks/data.bin") == data
    assert repo.git_calls() == calls, "reads go through the one long-lived cat-file, not a process each"


def test_threads_of_one_process_read_blobs_at_once_each_getting_its_own(project: Project, mirror: Mirror) -> None:
    """The mirror's one `git cat-file --batch` answers one request at a time: a car's full run and main's run,
    measured beside it, export their trees from two threads at once, and neither may read the other's answer."""
    blobs = {}
    for i in range(40):
        data = f"blob {i}\n".encode() * (i + 1) * 50
        blobs[subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=mirror.path, input=data,
                             capture_output=True, check=True).stdout.decode().strip()] = data  # fmt: skip
    wrong: list[str] = []

    def reader() -> None:
        for _ in range(10):
            for sha, data in blobs.items():
                try:
                    if mirror.blob(sha) != data:
                        wrong.append(sha)
                except Exception as exc:  # noqa: BLE001 - a garbled header is one way of reading another's answer
                    wrong.append(f"{sha}: {exc}")

    threads = [threading.Thread(target=reader, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)  # seconds at most; a hang guard (a garbled stream can block a reader)
    assert not any(t.is_alive() for t in threads), "a reader hung on a garbled stream"
    assert not wrong, wrong[:3]


def test_ensure_is_idempotent_and_follows_a_moved_origin(project: Project, mirror: Mirror, tmp_path: Path) -> None:
    again = Mirror(str(project.origin), mirror.path).ensure()
    assert again.main() == mirror.main()
    moved = tmp_path / "moved-origin.git"
    os.rename(project.origin, moved)
    follower = Mirror(str(moved), mirror.path).ensure()
    assert follower.fetch() == mirror.main()
    head = git(moved, "rev-parse", "main")
    new = make_commit(follower, head, {"src/alpha.txt": "alpha\n"}, "Alpha")
    assert follower.land(head, new, "alpha") == LandResult.LANDED
    assert git(moved, "rev-parse", "main") == new, "landing goes to the origin given, not a stale one"


def test_the_mirror_does_not_tell_an_agent_where_origin_is(project: Project, mirror: Mirror, tmp_path: Path) -> None:
    wt = mirror.add_worktree(tmp_path / "wt", mirror.main())
    assert git(wt.path, "remote", "-v") == ""
    assert str(project.origin) not in (mirror.path / "config").read_text()


def test_land_moves_main_and_creates_the_landed_ref(project: Project, mirror: Mirror) -> None:
    old = mirror.main()
    new = make_commit(mirror, old, {"src/alpha.txt": "alpha\n"}, "Alpha")
    assert mirror.land(old, new, "alpha") == LandResult.LANDED
    assert origin_ref(project, "refs/heads/main") == new
    assert origin_ref(project, f"{LANDED_PREFIX}alpha") == new


def test_a_record_rides_the_landing_push_both_or_neither(project: Project, mirror: Mirror) -> None:
    record = ("refs/swarm/attempts/alpha", "the end record\n")
    old = mirror.main()
    first = make_commit(mirror, old, {"src/alpha.txt": "alpha\n"}, "Alpha")
    move_main(project, {"tasks/x.md": "someone else landed"})
    assert mirror.land_recorded(old, first, "alpha", record) == (LandResult.MAIN_MOVED, False)
    assert not origin_ref(project, record[0]), "a landing that did not happen leaves no record of one"
    old = mirror.fetch()
    new = make_commit(mirror, old, {"src/alpha.txt": "alpha\n"}, "Alpha")
    assert mirror.land_recorded(old, new, "alpha", record) == (LandResult.LANDED, True)
    tip = origin_ref(project, record[0])
    assert project.git("log", "-1", "--format=%B", str(tip), cwd=project.origin).strip() == "the end record"
    assert origin_ref(project, "refs/heads/main") == new and mirror.local_rev(record[0]) == tip


def test_a_landing_goes_on_alone_when_only_its_records_ref_moved(project: Project, mirror: Mirror,
                                                                   tmp_path: Path) -> None:  # fmt: skip
    ref = "refs/swarm/attempts/alpha"
    other = Mirror(str(project.origin), tmp_path / "other.git").ensure()
    other.append_record(ref, "another writer's record\n")  # after this mirror last looked
    old = mirror.main()
    new = make_commit(mirror, old, {"src/alpha.txt": "alpha\n"}, "Alpha")
    assert mirror.land_recorded(old, new, "alpha", (ref, "the end record\n")) == (LandResult.LANDED, False)
    assert origin_ref(project, "refs/heads/main") == new, "a record's race never costs the landing"
    assert project.git("log", "--format=%B", ref, cwd=project.origin).split() == ["another", "writer's", "record"]


@pytest.mark.parametrize("beta_landed", [False, True])
def test_a_landing_carries_the_line_behind_it_in_one_push_all_or_nothing(
    project: Project, mirror: Mirror, beta_landed: bool
) -> None:
    """Main moves past every carried commit to the last, each task's landed ref on its own commit and the lander's
    record with them; one carried task landed already (a stale car) and nothing moves."""
    record = ("refs/swarm/attempts/alpha", "the end record\n")
    old = mirror.main()
    alpha = make_commit(mirror, old, {"src/alpha.txt": "alpha\n"}, "Alpha")
    beta = make_commit(mirror, alpha, {"src/beta.txt": "beta\n"}, "Beta")
    gamma = make_commit(mirror, beta, {"src/gamma.txt": "gamma\n"}, "Gamma")
    assert mirror.is_line(alpha, [beta, gamma]) and not mirror.is_line(old, [beta, gamma])
    if beta_landed:
        project.git("update-ref", f"{LANDED_PREFIX}beta", old)
    result = mirror.land_recorded(old, alpha, "alpha", record, {"beta": beta, "gamma": gamma})
    if beta_landed:
        assert result == (LandResult.CARRIED_LANDED, False)
        assert origin_ref(project, "refs/heads/main") == old and origin_ref(project, record[0]) is None
        assert all(origin_ref(project, f"{LANDED_PREFIX}{task}") is None for task in ("alpha", "gamma"))
        return
    assert result == (LandResult.LANDED, True)
    assert origin_ref(project, "refs/heads/main") == gamma
    landed = {task: origin_ref(project, f"{LANDED_PREFIX}{task}") for task in ("alpha", "beta", "gamma")}
    assert landed == {"alpha": alpha, "beta": beta, "gamma": gamma}
    assert origin_ref(project, record[0]) is not None


def test_land_with_a_stale_old_changes_nothing(project: Project, mirror: Mirror) -> None:
    old = mirror.main()
    new = make_commit(mirror, old, {"src/alpha.txt": "alpha\n"}, "Alpha")
    moved = move_main(project, {"tasks/x.md": "someone else landed"})
    assert mirror.land(old, new, "alpha") == LandResult.MAIN_MOVED
    assert origin_ref(project, "refs/heads/main") == moved, "main is not moved"
    assert origin_ref(project, f"{LANDED_PREFIX}alpha") is None, "atomic: the landed ref is not created either"


def test_land_with_a_stale_old_that_is_an_ancestor_of_new_still_changes_nothing(
    project: Project, mirror: Mirror
) -> None:
    # NEW is a fast-forward of OLD, but main is no longer OLD: --force-with-lease must still refuse.
    old = mirror.main()
    moved = move_main(project, {"tasks/x.md": "x"})
    new = make_commit(mirror, old, {"src/alpha.txt": "alpha\n"}, "Alpha")
    assert mirror.land(old, new, "alpha") == LandResult.MAIN_MOVED
    assert origin_ref(project, "refs/heads/main") == moved


def test_land_of_an_already_landed_task_does_not_move_main(project: Project, mirror: Mirror) -> None:
    old = mirror.main()
    first = make_commit(mirror, old, {"src/alpha.txt": "alpha\n"}, "Alpha")
    assert mirror.land(old, first, "alpha") == LandResult.LANDED
    second = make_commit(mirror, first, {"src/alpha.txt": "alpha again\n"}, "Alpha again")
    assert mirror.land(first, second, "alpha") == LandResult.ALREADY_LANDED
    assert origin_ref(project, "refs/heads/main") == first
    assert origin_ref(project, f"{LANDED_PREFIX}alpha") == first


def test_a_landed_ref_pushed_by_hand_blocks_landing(project: Project, mirror: Mirror) -> None:
    old = mirror.main()
    project.git("update-ref", f"{LANDED_PREFIX}alpha", old)
    new = make_commit(mirror, old, {"src/alpha.txt": "alpha\n"}, "Alpha")
    assert mirror.land(old, new, "alpha") == LandResult.ALREADY_LANDED
    assert origin_ref(project, "refs/heads/main") == old
    assert origin_ref(project, f"{LANDED_PREFIX}alpha") == old


def test_stale_and_already_landed_at_once_changes_nothing(project: Project, mirror: Mirror) -> None:
    old = mirror.main()
    moved = move_main(project, {"tasks/x.md": "x"})
    project.git("update-ref", f"{LANDED_PREFIX}alpha", moved)
    new = make_commit(mirror, old, {"src/alpha.txt": "alpha\n"}, "Alpha")
    assert mirror.land(old, new, "alpha") in (LandResult.ALREADY_LANDED, LandResult.MAIN_MOVED)
    assert origin_ref(project, "refs/heads/main") == moved
    assert origin_ref(project, f"{LANDED_PREFIX}alpha") == moved


def test_land_to_an_unreachable_origin_raises_git_error(project: Project, mirror: Mirror, tmp_path: Path) -> None:
    old = mirror.main()
    new = make_commit(mirror, old, {"src/alpha.txt": "alpha\n"}, "Alpha")
    broken = Mirror(str(tmp_path / "no-origin.git"), mirror.path)
    broken.g = mirror.g
    with pytest.raises(GitError, match="alpha"):
        broken.land(old, new, "alpha")


@pytest.mark.parametrize("same_task", [True, False], ids=["same task", "two tasks"])
def test_two_mirrors_racing_to_land_from_the_same_old_exactly_one_lands(
    project: Project, tmp_path: Path, same_task: bool
) -> None:
    mirrors = [Mirror(str(project.origin), tmp_path / f"mirror{i}.git").ensure() for i in range(2)]
    for round_no in range(8):
        old = mirrors[0].fetch()
        mirrors[1].fetch()
        tasks = [f"t{round_no}"] * 2 if same_task else [f"t{round_no}a", f"t{round_no}b"]
        news = [
            make_commit(m, old, {f"src/r{round_no}-{i}.txt": f"{i}\n"}, f"R{round_no} by {i}")
            for i, m in enumerate(mirrors)
        ]
        barrier = threading.Barrier(2)
        results: list[LandResult | None] = [None, None]

        def go(i: int, old: str = old, news: list[str] = news, tasks: list[str] = tasks,
               barrier: threading.Barrier = barrier, results: list[LandResult | None] = results) -> None:  # fmt: skip
            barrier.wait()
            results[i] = mirrors[i].land(old, news[i], tasks[i])

        threads = [threading.Thread(target=go, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        winners = [i for i, res in enumerate(results) if res == LandResult.LANDED]
        assert len(winners) == 1, f"round {round_no}: {results}"
        w, lose = winners[0], 1 - winners[0]
        assert results[lose] in (LandResult.MAIN_MOVED, LandResult.ALREADY_LANDED)
        assert origin_ref(project, "refs/heads/main") == news[w]
        assert origin_ref(project, f"{LANDED_PREFIX}{tasks[w]}") == news[w]
        if not same_task:
            assert origin_ref(project, f"{LANDED_PREFIX}{tasks[lose]}") is None


def test_rebase_onto_a_moved_main_keeps_message_and_author(project: Project, mirror: Mirror) -> None:
    base = mirror.main()
    message = "Write alpha\n\nSwarm-Task: alpha\nSwarm-Agent: claude\n"
    candidate = make_commit(mirror, base, {"src/alpha.txt": "alpha\n"}, message, author="claude")
    onto = move_main(project, {"src/beta.txt": "beta\n"})
    mirror.fetch()
    rebased = mirror.rebase(candidate, base, onto)
    assert rebased.conflicts == () and rebased.commit is not None and rebased.commit != candidate
    new = rebased.commit
    assert (
        git(mirror.path, "rev-parse", f"{new}^") == onto
        and git(mirror.path, "rev-list", "--count", f"{onto}..{new}") == "1"
    )
    assert mirror.message(new) == mirror.message(candidate)
    fmt = "--format=%an|%ae|%ad"
    assert git(mirror.path, "log", "-1", fmt, new) == git(mirror.path, "log", "-1", fmt, candidate)
    assert show(mirror, new, "src/alpha.txt") == "alpha\n" and show(mirror, new, "src/beta.txt") == "beta\n"
    assert mirror.changed(onto, new) == ["src/alpha.txt"]


def test_rebase_onto_the_same_base_is_the_same_commit(mirror: Mirror) -> None:
    base = mirror.main()
    candidate = make_commit(mirror, base, {"src/alpha.txt": "alpha\n"}, "A")
    assert mirror.rebase(candidate, base, base).commit == candidate


def test_rebase_with_a_real_conflict_names_the_file(project: Project, mirror: Mirror) -> None:
    base = mirror.main()
    candidate = make_commit(mirror, base, {"src/base.txt": "agent's base\n", "src/alpha.txt": "alpha\n"}, "A")
    onto = move_main(project, {"src/base.txt": "human's base\n"})
    mirror.fetch()
    rebased = mirror.rebase(candidate, base, onto)
    assert rebased.commit is None
    assert rebased.conflicts == ("src/base.txt",)


def test_snapshot_squashes_commits_and_uncommitted_changes_into_one_commit(mirror: Mirror, tmp_path: Path) -> None:
    base = mirror.main()
    wt = mirror.add_worktree(tmp_path / "wt", base)
    ident = ["-c", "user.name=agent", "-c", "user.email=a@b"]
    (wt.path / "src" / "one.txt").write_text("one\n")
    git(wt.path, "add", "-A")
    git(wt.path, *ident, "commit", "-qm", "agent wip 1")
    (wt.path / "src" / "two.txt").write_text("two\n")
    git(wt.path, "add", "-A")
    git(wt.path, *ident, "commit", "-qm", "agent wip 2")
    (wt.path / "src" / "three.txt").write_text("three\n")  # untracked
    (wt.path / "src" / "one.txt").write_text("one, edited\n")  # uncommitted edit
    (wt.path / "src" / "base.txt").unlink()  # uncommitted delete
    commit = wt.snapshot(base, "Task work\n\nSwarm-Task: t\n", author="claude")
    assert commit is not None
    assert git(mirror.path, "rev-list", "--parents", "-n", "1", commit).split() == [commit, base], "one parent: base"
    assert sorted(mirror.changed(base, commit)) == ["src/base.txt", "src/one.txt", "src/three.txt", "src/two.txt"]
    assert show(mirror, commit, "src/one.txt") == "one, edited\n" and show(mirror, commit, "src/base.txt") is None
    assert git(mirror.path, "log", "-1", "--format=%B", commit) == "Task work\n\nSwarm-Task: t"
    assert git(mirror.path, "log", "-1", "--format=%an|%cn", commit) == "claude|swarm"
    assert "agent wip" not in git(mirror.path, "log", "--format=%s", commit)


def test_snapshot_is_none_when_nothing_changed(mirror: Mirror, tmp_path: Path) -> None:
    base = mirror.main()
    wt = mirror.add_worktree(tmp_path / "wt", base)
    assert wt.snapshot(base, "m", "claude") is None
    # Commits that undo themselves are no change either.
    ident = ["-c", "user.name=agent", "-c", "user.email=a@b"]
    (wt.path / "src" / "tmp.txt").write_text("tmp\n")
    git(wt.path, "add", "-A")
    git(wt.path, *ident, "commit", "-qm", "add")
    git(wt.path, "rm", "-q", "src/tmp.txt")
    git(wt.path, *ident, "commit", "-qm", "remove")
    assert wt.snapshot(base, "m", "claude") is None


def test_checkout_removes_what_the_agent_left_behind(mirror: Mirror, tmp_path: Path) -> None:
    base = mirror.main()
    wt = mirror.add_worktree(tmp_path / "wt", base)
    (wt.path / "stray.txt").write_text("x")
    (wt.path / "src" / "base.txt").write_text("changed")
    wt.checkout(base)
    assert not (wt.path / "stray.txt").exists()
    assert (wt.path / "src" / "base.txt").read_text() == (TOY_REPO / "src" / "base.txt").read_text()


def test_add_worktree_replaces_a_leftover_and_remove_cleans_up(mirror: Mirror, tmp_path: Path) -> None:
    path = tmp_path / "wt"
    first = mirror.add_worktree(path, mirror.main())
    (first.path / "leftover.txt").write_text("x")
    second = mirror.add_worktree(path, mirror.main())
    assert not (second.path / "leftover.txt").exists()
    mirror.remove_worktree(path)
    assert not path.exists()
    assert str(path) not in git(mirror.path, "worktree", "list")


def test_restore_puts_changed_and_deleted_protected_paths_back(project: Project, mirror: Mirror) -> None:
    base = mirror.main()
    protected = ["oracle.py", "checks/**"]
    candidate = make_commit(
        mirror,
        base,
        {
            "checks/base.check": "path=src/base.txt\nexpect=anything\n",  # changed
            "oracle.py": None,  # deleted
            "src/alpha.txt": "alpha\n",  # honest work
        },
        "Cheat a bit\n\nSwarm-Task: cheat\n",
        author="claude",
    )
    touched = [p for p in mirror.changed(base, candidate) if matches(p, protected)]
    assert sorted(touched) == ["checks/base.check", "oracle.py"]
    fixed = mirror.restore(candidate, base, touched)
    assert mirror.changed(base, fixed) == ["src/alpha.txt"], "only the honest change is left"
    assert show(mirror, fixed, "checks/base.check") == show(mirror, base, "checks/base.check")
    assert show(mirror, fixed, "oracle.py") == show(mirror, base, "oracle.py")
    assert git(mirror.path, "rev-parse", f"{fixed}^") == base
    assert mirror.message(fixed) == mirror.message(candidate)
    assert git(mirror.path, "log", "-1", "--format=%an", fixed) == "claude"


def test_restore_deletes_a_file_the_agent_added_under_a_protected_glob(project: Project, mirror: Mirror) -> None:
    base = mirror.main()
    candidate = make_commit(
        mirror, base, {"checks/new.check": "path=src/x\nexpect=x\n", "src/alpha.txt": "alpha\n"}, "Add a check"
    )
    touched = [p for p in mirror.changed(base, candidate) if matches(p, ["checks/**"])]
    assert touched == ["checks/new.check"]
    fixed = mirror.restore(candidate, base, touched)
    assert show(mirror, fixed, "checks/new.check") is None, "a file added under a protected glob is deleted"
    assert mirror.changed(base, fixed) == ["src/alpha.txt"]


def test_restore_of_nothing_keeps_the_tree(mirror: Mirror) -> None:
    base = mirror.main()
    candidate = make_commit(mirror, base, {"src/alpha.txt": "alpha\n"}, "A")
    fixed = mirror.restore(candidate, base, [])
    assert git(mirror.path, "rev-parse", f"{fixed}^{{tree}}") == git(mirror.path, "rev-parse", f"{candidate}^{{tree}}")


@pytest.mark.parametrize(
    ("path", "patterns", "expected"),
    [
        ("oracle/run.py", ["oracle/**"], True),
        ("oracle/deep/er/x.sql", ["oracle/**"], True),
        ("oracle", ["oracle/**"], False),
        ("oracles/x.py", ["oracle/**"], False),
        ("src/oracle/x.py", ["oracle/**"], False),
        ("tests/sql/a.sql", ["tests/sql/**"], True),
        ("tests/sql/sub/b.expected", ["tests/sql/**"], True),
        ("tests/sqlite/a.sql", ["tests/sql/**"], False),
        ("tests/a.sql", ["tests/sql/**"], False),
        ("Cargo.toml", ["*.toml"], True),
        (".swarm.toml", ["*.toml"], True),
        ("crates/x/Cargo.toml", ["*.toml"], False),
        ("crates/x/Cargo.toml", ["**/*.toml"], True),
        ("Cargo.toml", ["**/*.toml"], True),
        ("a.toml.bak", ["*.toml"], False),
        ("oracle.py", ["oracle.py"], True),
        ("src/oracle.py", ["oracle.py"], False),
        ("oracle_py", ["oracle.py"], False),
        ("oracle.pyc", ["oracle.py"], False),
        ("checks/a.check", ["oracle.py", "checks/**"], True),
        ("src/a.rs", ["oracle.py", "checks/**"], False),
        ("x.txt", [], False),
        ("src/a1.rs", ["src/a?.rs"], True),
        pytest.param(
            "src/a/.rs",
            ["src/a?.rs"],
            False,
        ),
        pytest.param(
            "src/main.rs",
            ["src/[mx]ain.rs"],
            True,
        ),
    ],
)
def test_matches(path: str, patterns: list[str], expected: bool) -> None:
    assert matches(path, patterns) is expected


def test_an_agent_cannot_push_from_its_worktree(project: Project, mirror: Mirror, tmp_path: Path) -> None:
    before = origin_ref(project, "refs/heads/main")
    wt = mirror.add_worktree(tmp_path / "wt", mirror.main())
    (wt.path / "src" / "evil.txt").write_text("evil\n")
    git(wt.path, "add", "-A")
    git(wt.path, "-c", "user.name=a", "-c", "user.email=a@b", "commit", "-qm", "evil")
    for refspec in ("HEAD:main", "HEAD:refs/heads/main", "HEAD:refs/swarm/landed/evil", "--all"):
        args = ["push", "origin", refspec] if not refspec.startswith("--") else ["push", refspec, "origin"]
        pushed = subprocess.run(["git", *args], cwd=wt.path, capture_output=True, text=True,
                                env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})  # fmt: skip
        assert pushed.returncode != 0, f"git {' '.join(args)} succeeded"
    assert origin_ref(project, "refs/heads/main") == before
    assert project.landed() == {}
    assert origin_ref(project, "refs/heads/evil") is None


def test_probe_push_leaves_no_ref_behind(project: Project, mirror: Mirror, tmp_path: Path) -> None:
    ok, detail = mirror.probe_push(mirror.main())
    assert ok and str(project.origin) in detail
    assert project.git("for-each-ref", "refs/swarm/") == ""


def test_init_project_makes_an_origin_and_a_clone(tmp_path: Path) -> None:
    head = repo.init_project(TOY_REPO, tmp_path / "o.git", tmp_path / "w")
    assert git(tmp_path / "o.git", "rev-parse", "main") == head
    assert git(tmp_path / "w", "rev-parse", "HEAD") == head
    assert git(tmp_path / "w", "status", "--porcelain") == ""
    body = git(tmp_path / "w", "log", "-1", "--format=%B")
    assert "Swarm-Task: init" in body and "Swarm-Agent: swarm-init" in body
    assert (tmp_path / "w" / ".swarm.toml").is_file()


@pytest.mark.parametrize("which", ["origin", "clone"])
def test_init_project_refuses_a_non_empty_folder(tmp_path: Path, which: str) -> None:
    origin, clone = tmp_path / "o.git", tmp_path / "w"
    target = origin if which == "origin" else clone
    target.mkdir()
    (target / "precious.txt").write_text("keep me")
    with pytest.raises(GitError, match=str(target)):
        repo.init_project(TOY_REPO, origin, clone)
    assert (target / "precious.txt").read_text() == "keep me"
    assert sorted(p.name for p in target.iterdir()) == ["precious.txt"]


def test_init_project_accepts_empty_folders_and_refuses_a_missing_template(tmp_path: Path) -> None:
    (tmp_path / "o.git").mkdir()
    (tmp_path / "w").mkdir()
    repo.init_project(TOY_REPO, tmp_path / "o.git", tmp_path / "w")
    with pytest.raises(GitError, match="template"):
        repo.init_project(tmp_path / "nope", tmp_path / "o2.git", tmp_path / "w2")


def test_absolute_origin() -> None:
    assert repo.absolute_origin("https://github.com/a/b.git") == "https://github.com/a/b.git"
    assert repo.absolute_origin("git@github.com:a/b.git") == "git@github.com:a/b.git"
    assert repo.absolute_origin("ssh://git@host/x") == "ssh://git@host/x"
    assert repo.absolute_origin("rel/origin.git") == str(Path.cwd() / "rel" / "origin.git")


def test_a_git_command_that_hangs_is_killed_at_the_timeout_with_an_error_naming_it(tmp_path: Path) -> None:
    """A stalled fetch must not hold the mirror lock and the worker's slot forever (setting git_timeout)."""
    pid_file = tmp_path / "transport.pid"
    hang = tmp_path / "hang.sh"  # stands in for an ssh transport whose link was cut: it never answers
    hang.write_text(f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 300\n")
    hang.chmod(0o755)
    stalled = Mirror("git@unreachable.invalid:repo.git", tmp_path / "mirror.git", git_timeout=2).ensure()
    git(stalled.path, "config", "core.sshCommand", str(hang))
    with pytest.raises(GitError) as info:
        stalled.fetch()
    message = str(info.value)
    assert "git fetch" in message and "within 2s" in message and "git_timeout" in message
    pid = int(pid_file.read_text())
    wait_for(lambda: not proc.alive(pid), 10, "the hung transport to be killed")
    with stalled.locked():  # the lock was released: this would block forever otherwise
        pass


@pytest.mark.parametrize(
    "patterns",
    [["checks/**"], ["src/*.txt", ".swarm.toml"], ["**/*.py"], ["src/base.txt"], ["s?c/**", "tasks/"], ["nothing/**"],
     ["checks/deep/**/*.check", "src/sub/z.py"], ["checks/deep"], ["src/base.txt/"], ["./src/**"]],
)  # fmt: skip
def test_files_matching_globs_are_listed_from_the_folders_the_globs_reach(
    project: Project, mirror: Mirror, patterns: list[str]
) -> None:
    """The harness is found without listing the whole repository; the globs still decide, exactly as on a full
    listing."""
    nested = {"checks/deep/er/x.check": "x", "checks/deep/y.check": "y", "src/sub/z.py": "z", "src/sub/w/v.txt": "v"}
    main = move_main(project, nested)
    assert mirror.fetch() == main
    every = repo.tree_entries(mirror, main)
    found = repo.matching_entries(mirror, main, patterns)
    assert found == {p: e for p, e in every.items() if repo.matches(p, patterns)}
    empty = (["nothing/**"], ["checks/deep"], ["src/base.txt/"], ["./src/**"])  # a glob matches paths, not folders
    assert bool(found) == (patterns not in empty), found
    calls = repo.git_calls()
    assert repo.matching_entries(mirror, main, patterns) == found
    if all(repo._literal_folder(p) for p in patterns):  # the globs reach only some folders
        assert repo.git_calls() == calls, "read from the tree objects through the batch"
    assert mirror.paths(main, patterns) == {p for p in mirror.paths(main) if repo.matches(p, patterns)}


def test_files_under_a_folder_read_through_the_batch_are_what_ls_tree_lists(mirror: Mirror) -> None:
    """Odd spellings of modes in a tree object (as `hash-object --literally` or another tool may write them) are
    read as git reads them; a root "x/" names a submodule too; a commit that is not there is an error, never an
    empty listing (the structural check would find no protected file)."""

    def blob(data: bytes) -> str:
        return subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=mirror.path, input=data,
                              capture_output=True, check=True).stdout.decode().strip()  # fmt: skip

    def tree(entries: list[tuple[bytes, bytes, str]]) -> str:
        raw = b"".join(mode + b" " + name + b"\0" + bytes.fromhex(oid) for mode, name, oid in entries)
        return subprocess.run(["git", "hash-object", "-w", "-t", "tree", "--literally", "--stdin"], cwd=mirror.path,
                              input=raw, capture_output=True, check=True).stdout.decode().strip()  # fmt: skip

    inner = tree([(b"100644", b"f", blob(b"f"))])
    top = tree([(b"100664", b"grp", blob(b"g")), (b"100775", b"odd-exe", blob(b"x")), (b"160000", b"sub", "ab" * 20),
                (b"040000", b"zdir", inner)])  # fmt: skip
    commit = git(mirror.path, "commit-tree", top, "-m", "odd modes", env=SIGN)
    roots = ["grp", "odd-exe", "sub/", "sub", "zdir", "zdir/", "missing/", "zdir/f"]
    for root in roots:
        assert mirror.entries_under(commit, [root]) == repo.tree_entries(mirror, commit, [root]), root
    assert mirror.entries_under(commit, roots) == repo.tree_entries(mirror, commit, roots)
    assert mirror.entries_under(commit, ["odd-exe"])["odd-exe"][0] == repo.MODE_EXEC, "exported executable"
    assert set(mirror.folder(commit, "")[1]) == {"grp", "odd-exe"}, "files only, as ls-tree lists them"
    with pytest.raises(GitError):
        mirror.entries_under("0" * 40, ["checks/"])


def test_the_backlog_is_parsed_once_per_content_and_never_stale(
    project: Project, mirror: Mirror, monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    from swarm import backlog as backlog_mod
    from swarm import state

    parsed: list[int] = []
    load = backlog_mod.load
    monkeypatch.setattr(backlog_mod, "load", lambda files, vendors=None: parsed.append(1) or load(files, vendors))
    src = SimpleNamespace(mirror=mirror, settings=SimpleNamespace(vendors={"claude": None}))
    main = move_main(
        project, {"tasks/one.md": "---\ntitle: One\n---\nDo it.\n", "tasks/two.md": "---\ntitle: Two\n---\n"}
    )
    mirror.fetch()
    first = state.read_backlog(src, main, None)  # type: ignore[arg-type]
    assert first.tasks and parsed == [1]
    name = sorted(first.tasks)[0]
    first.tasks.pop(name)  # a caller's own copy: what it changes is not kept
    landed = move_main(project, {"src/other.txt": "x"})  # a landing that touches no task file
    mirror.fetch()
    again = state.read_backlog(src, landed, None)  # type: ignore[arg-type]
    assert name in again.tasks and parsed == [1], "the same folder content is not parsed again"
    path = again.tasks[name].path
    edited = move_main(project, {path: "---\ntitle: Renamed\n---\nDo it.\n"})
    mirror.fetch()
    assert state.read_backlog(src, edited, None).tasks[name].title == "Renamed"  # type: ignore[arg-type]
    assert parsed == [1, 1], "a changed task file is read again"


def test_a_commit_named_by_a_ref_is_read_as_the_ref_is_now(project: Project, mirror: Mirror) -> None:
    """The batch keeps packed-refs read and may answer a ref's old value when the file was rewritten twice within a
    second: a name that is not an object id is resolved by a process before the batch reads through it."""
    ref = f"{repo.KEEP_PREFIX}probe"  # not under refs/swarm/, which a fetch prunes
    first = move_main(project, {"src/x.txt": "one"})
    mirror.fetch()
    git(mirror.path, "update-ref", ref, first)
    git(mirror.path, "pack-refs", "--all")
    assert mirror.read(ref, "src/x.txt") == b"one" and mirror.tree(ref) == mirror.tree(first)
    second = move_main(project, {"src/x.txt": "two"})
    mirror.fetch()
    calls = repo.git_calls()
    git(mirror.path, "update-ref", ref, second)
    git(mirror.path, "pack-refs", "--all")
    assert mirror.read(ref, "src/x.txt") == b"two"
    assert mirror.folder(ref, "src")[1]["src/x.txt"] == git(mirror.path, "rev-parse", f"{second}:src/x.txt")
    assert mirror.tree(ref) == mirror.tree(second)
    assert repo.git_calls() == calls + 3, "one process per name resolved"
    assert mirror.read("refs/swarm/landed/none", "src/x.txt") is None and mirror.folder("nothing", "src") == ("", {})
