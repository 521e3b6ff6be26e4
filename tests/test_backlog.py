"""The backlog: valid task files load with their fields; every malformed one is reported with its path and
reason while every other task is still loaded (invariant 7: bad input gets a clear error and loses nothing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from swarm import backlog
from swarm.backlog import MAX_TASK_FILE_BYTES, Backlog
from swarm.errors import TaskFileError


def md(*front: str, body: str = "Do it.\n") -> bytes:
    return ("---\n" + "\n".join(front) + "\n---\n" + body).encode()


GOOD = {
    "tasks/good-one.md": md("title: Good one", "priority: 1"),
    "tasks/good-two.md": md("title: Good two", "depends_on: [good-one]"),
}


def test_a_valid_task_has_its_fields_and_body() -> None:
    text = (
        "---\ntitle: '  Parse the WHERE clause  '\npriority: 7\ndepends_on: [lexer, ast]\nvendor: codex\n---\n"
        "# Body\nline\n"
    )
    task = backlog.parse_task("tasks/where-clause.md", text.encode())
    assert task.id == "where-clause"
    assert task.path == "tasks/where-clause.md"
    assert task.title == "Parse the WHERE clause"
    assert task.priority == 7
    assert task.depends_on == ("lexer", "ast")
    assert task.vendor == "codex"
    assert task.body == "# Body\nline\n"
    assert task.text == text


def test_defaults_when_fields_are_left_out() -> None:
    task = backlog.parse_task("tasks/t1.md", md("title: Only a title"))
    assert (task.priority, task.depends_on, task.vendor) == (0, (), None)


def test_tasks_are_ordered_by_priority_then_id() -> None:
    files = {
        "tasks/b.md": md("title: B", "priority: 5"),
        "tasks/a.md": md("title: A", "priority: 5"),
        "tasks/low.md": md("title: Low", "priority: -3"),
        "tasks/zero.md": md("title: Zero"),
        "tasks/high.md": md("title: High", "priority: 100"),
    }
    assert [t.id for t in backlog.load(files).ordered()] == ["high", "a", "b", "zero", "low"]


def test_readiness_follows_landed_dependencies() -> None:
    files = {
        "tasks/base.md": md("title: Base"),
        "tasks/mid.md": md("title: Mid", "depends_on: [base]", "priority: 9"),
        "tasks/top.md": md("title: Top", "depends_on: [mid, base]"),
        "tasks/free.md": md("title: Free", "priority: 1"),
    }
    bl = backlog.load(files)
    assert not bl.invalid
    assert [t.id for t in bl.ready([])] == ["free", "base"]
    assert [t.id for t in bl.ready(["base"])] == ["mid", "free"], "landed tasks are not ready again"
    assert [t.id for t in bl.ready(["base", "mid"])] == ["free", "top"]
    assert bl.ready(["base", "mid", "top", "free"]) == []
    assert [t.id for t in bl.ready(["mid"])] == ["free", "base"], "top also waits for base"


def test_bom_and_crlf_files_are_accepted() -> None:
    files = {
        "tasks/bom.md": "\ufeff---\ntitle: With BOM\npriority: 2\n---\nbody\n".encode(),
        "tasks/crlf.md": b"---\r\ntitle: With CRLF\r\ndepends_on: [bom]\r\n---\r\nbody\r\n",
        "tasks/both.md": "\ufeff---\r\ntitle: Both\r\n---\r\n".encode(),
    }
    bl = backlog.load(files)
    assert bl.invalid == []
    assert bl.tasks["bom"].title == "With BOM" and bl.tasks["bom"].priority == 2
    assert bl.tasks["crlf"].title == "With CRLF" and bl.tasks["crlf"].depends_on == ("bom",)
    assert bl.tasks["both"].title == "Both"


def test_files_that_are_not_tasks_are_ignored_not_reported() -> None:
    files = {
        **GOOD,
        "tasks/README.md": b"# How to write tasks\nno front matter here\n",
        "tasks/.hidden.md": b"garbage",
        "tasks/.keep": b"",
        "tasks/notes.txt": b"not markdown",
        "tasks/Bad Name.yaml": b"\x00\x01",
        "tasks/image.png": b"\x89PNG\x00\x00",
    }
    bl = backlog.load(files)
    assert bl.invalid == []
    assert set(bl.tasks) == {"good-one", "good-two"}


def test_load_dir_reads_a_checkout(tmp_path: Path) -> None:
    folder = tmp_path / "tasks"
    folder.mkdir()
    (folder / "one.md").write_bytes(md("title: One"))
    (folder / "README.md").write_text("readme")
    (folder / "Bad.md").write_bytes(md("title: Bad"))
    bl = backlog.load_dir(folder)
    assert set(bl.tasks) == {"one"}
    assert [e.path for e in bl.invalid] == ["tasks/Bad.md"]


def test_an_empty_backlog_is_empty() -> None:
    bl = backlog.load({})
    assert bl.tasks == {} and bl.invalid == [] and bl.ready([]) == []


# Each case: (name, extra files, vendors, {bad path: words its reason must contain (any one, case-insensitive)}).
# Every case also holds the two GOOD tasks, which must still load.
T = "title: T"
MALFORMED: list[tuple[str, dict[str, bytes], list[str] | None, dict[str, tuple[str, ...]]]] = [
    ("upper case id", {"tasks/Upper.md": md(T)}, None, {"tasks/Upper.md": ("task id", "lower case")}),
    ("underscore in id", {"tasks/bad_id.md": md(T)}, None, {"tasks/bad_id.md": ("task id",)}),
    ("space in id", {"tasks/a b.md": md(T)}, None, {"tasks/a b.md": ("task id",)}),
    ("id starting with a dash", {"tasks/-x.md": md(T)}, None, {"tasks/-x.md": ("task id",)}),
    ("dot in id", {"tasks/v1.2.md": md(T)}, None, {"tasks/v1.2.md": ("task id",)}),
    ("non-ascii id", {"tasks/tâche.md": md(T)}, None, {"tasks/tâche.md": ("task id",)}),
    ("missing title", {"tasks/x.md": md("priority: 1")}, None, {"tasks/x.md": ("title",)}),
    ("empty title", {"tasks/x.md": md("title: ''")}, None, {"tasks/x.md": ("title",)}),
    ("null title", {"tasks/x.md": md("title:")}, None, {"tasks/x.md": ("title",)}),
    ("blank title", {"tasks/x.md": md("title: '   '")}, None, {"tasks/x.md": ("title",)}),
    ("title a number", {"tasks/x.md": md("title: 42")}, None, {"tasks/x.md": ("title",)}),
    ("title a list", {"tasks/x.md": md("title: [a, b]")}, None, {"tasks/x.md": ("title",)}),
    ("title too long", {"tasks/x.md": md("title: " + "x" * 500)}, None, {"tasks/x.md": ("title",)}),
    ("priority a string", {"tasks/x.md": md(T, "priority: high")}, None, {"tasks/x.md": ("priority",)}),
    ("priority a quoted number", {"tasks/x.md": md(T, "priority: '3'")}, None, {"tasks/x.md": ("priority",)}),
    ("priority a float", {"tasks/x.md": md(T, "priority: 1.5")}, None, {"tasks/x.md": ("priority",)}),
    ("priority a bool", {"tasks/x.md": md(T, "priority: true")}, None, {"tasks/x.md": ("priority",)}),
    ("depends_on a string", {"tasks/x.md": md(T, "depends_on: good-one")}, None, {"tasks/x.md": ("depends_on",)}),
    ("depends_on a mapping", {"tasks/x.md": md(T, "depends_on: {a: 1}")}, None, {"tasks/x.md": ("depends_on",)}),
    ("depends_on a bad id", {"tasks/x.md": md(T, "depends_on: [Good_One]")}, None, {"tasks/x.md": ("depends_on",)}),
    ("depends_on a number", {"tasks/x.md": md(T, "depends_on: [7]")}, None, {"tasks/x.md": ("depends_on",)}),
    ("vendor not a string", {"tasks/x.md": md(T, "vendor: [a]")}, None, {"tasks/x.md": ("vendor",)}),
    ("unknown field", {"tasks/x.md": md(T, "prio: 3")}, None, {"tasks/x.md": ("prio",)}),
    ("no front matter", {"tasks/x.md": b"# Just markdown\n"}, None, {"tasks/x.md": ("front matter",)}),
    ("empty file", {"tasks/x.md": b""}, None, {"tasks/x.md": ("front matter",)}),
    ("unterminated front matter", {"tasks/x.md": b"---\ntitle: T\nbody\n"}, None, {"tasks/x.md": ("front matter",)}),
    ("front matter not first", {"tasks/x.md": b"\n---\ntitle: T\n---\n"}, None, {"tasks/x.md": ("front matter",)}),
    ("front matter a list", {"tasks/x.md": md("- title", "- T")}, None, {"tasks/x.md": ("mapping",)}),
    ("front matter a scalar", {"tasks/x.md": md("just words")}, None, {"tasks/x.md": ("mapping",)}),
    ("empty front matter", {"tasks/x.md": b"---\n\n---\nbody\n"}, None, {"tasks/x.md": ("front matter", "mapping")}),
    ("invalid YAML", {"tasks/x.md": md("title: [unclosed")}, None, {"tasks/x.md": ("yaml",)}),
    ("YAML tab indent", {"tasks/x.md": md("title: T", "\tpriority: 1")}, None, {"tasks/x.md": ("yaml",)}),
    ("YAML python tag", {"tasks/x.md": md("title: !!python/object:os.system x")}, None, {"tasks/x.md": ("yaml",)}),
    ("NUL bytes", {"tasks/x.md": md(T) + b"\x00\x01\x02"}, None, {"tasks/x.md": ("binary", "nul")}),
    ("binary junk", {"tasks/x.md": bytes(range(256)) * 4}, None, {"tasks/x.md": ("binary", "utf-8")}),
    ("not UTF-8", {"tasks/x.md": md("title: caf\xe9").replace(b"\xc3\xa9", b"\xe9")}, None, {"tasks/x.md": ("utf-8",)}),
    ("latin-1 title", {"tasks/x.md": b"---\ntitle: caf\xe9\n---\n"}, None, {"tasks/x.md": ("utf-8",)}),
    (
        "huge file",
        {"tasks/x.md": md(T, body="x" * (MAX_TASK_FILE_BYTES + 1))},
        None,
        {"tasks/x.md": ("bytes", "limit")},
    ),
    ("self dependency", {"tasks/x.md": md(T, "depends_on: [x]")}, None, {"tasks/x.md": ("itself",)}),
    (
        "cycle of two",
        {"tasks/p.md": md(T, "depends_on: [q]"), "tasks/q.md": md(T, "depends_on: [p]")},
        None,
        {"tasks/p.md": ("cycle",), "tasks/q.md": ("cycle",)},
    ),
    (
        "cycle of three",
        {
            "tasks/p.md": md(T, "depends_on: [q]"),
            "tasks/q.md": md(T, "depends_on: [r, good-one]"),
            "tasks/r.md": md(T, "depends_on: [p]"),
        },
        None,
        {"tasks/p.md": ("cycle",), "tasks/q.md": ("cycle",), "tasks/r.md": ("cycle",)},
    ),
    (
        "dependent of a cycle",
        {
            "tasks/p.md": md(T, "depends_on: [q]"),
            "tasks/q.md": md(T, "depends_on: [p]"),
            "tasks/s.md": md(T, "depends_on: [p]"),
        },
        None,
        {"tasks/p.md": ("cycle",), "tasks/q.md": ("cycle",), "tasks/s.md": ("p",)},
    ),
    ("unknown dependency", {"tasks/x.md": md(T, "depends_on: [nowhere]")}, None, {"tasks/x.md": ("nowhere",)}),
    (
        "dependent of an invalid task",
        {"tasks/broken.md": md("title: [oops"), "tasks/x.md": md(T, "depends_on: [broken]")},
        None,
        {"tasks/broken.md": ("yaml",), "tasks/x.md": ("broken",)},
    ),
    (
        "chain of dependents of an invalid task",
        {
            "tasks/broken.md": b"no front matter",
            "tasks/x.md": md(T, "depends_on: [broken]"),
            "tasks/y.md": md(T, "depends_on: [x]"),
        },
        None,
        {"tasks/broken.md": ("front matter",), "tasks/x.md": ("broken",), "tasks/y.md": ("x",)},
    ),
    (
        "dependent of a task with a bad file name",
        {"tasks/Broken.md": md(T), "tasks/x.md": md(T, "depends_on: [broken]")},
        None,
        {"tasks/Broken.md": ("task id",), "tasks/x.md": ("broken",)},
    ),
    ("unknown vendor", {"tasks/x.md": md(T, "vendor: mistral")}, ["claude", "codex"], {"tasks/x.md": ("mistral",)}),
    ("vendor when none configured", {"tasks/x.md": md(T, "vendor: claude")}, [], {"tasks/x.md": ("claude",)}),
]


BUGS: dict[str, str] = {}


def _cases() -> list[object]:
    return [
        pytest.param(*c[1:], id=c[0], marks=[pytest.mark.xfail(strict=True, reason=BUGS[c[0]])] if c[0] in BUGS else [])
        for c in MALFORMED
    ]


@pytest.mark.parametrize(("extra", "vendors", "expected"), _cases())
def test_a_malformed_task_file_is_reported_and_nothing_else_is_lost(
    extra: dict[str, bytes], vendors: list[str] | None, expected: dict[str, tuple[str, ...]]
) -> None:
    files = {**GOOD, **extra}
    bl = backlog.load(files, vendors)
    reported = {err.path: err for err in bl.invalid}
    assert set(reported) == set(expected), f"reported: {[str(e) for e in bl.invalid]}"
    for path, words in expected.items():
        err = reported[path]
        assert isinstance(err, TaskFileError)
        assert path in str(err), "the message names the file"
        assert err.reason and any(w.lower() in err.reason.lower() for w in words), (
            f"{path}: reason {err.reason!r} should mention one of {words}"
        )
    assert {"good-one", "good-two"} <= set(bl.tasks), "the valid tasks are still loaded"
    assert len(bl.invalid) == len(reported), "each bad file is reported once"
    assert len(bl.tasks) + len(bl.invalid) == len(files), "every file is either a task or reported"
    assert not set(bl.tasks) & {p.rsplit("/", 1)[1].removesuffix(".md") for p in expected}
    assert {t.id for t in bl.ready([])} == {"good-one"}


def test_the_malformed_table_is_big_enough() -> None:
    assert len(MALFORMED) >= 25


def test_known_vendor_is_accepted_and_vendor_is_unchecked_without_a_list() -> None:
    files = {"tasks/x.md": md(T, "vendor: codex")}
    assert backlog.load(files, ["claude", "codex"]).tasks["x"].vendor == "codex"
    assert backlog.load(files).tasks["x"].vendor == "codex", "no vendor list: any vendor is kept"


def test_parse_task_raises_with_path_and_reason() -> None:
    with pytest.raises(TaskFileError) as info:
        backlog.parse_task("tasks/x.md", md("priority: 1"))
    assert info.value.path == "tasks/x.md" and "title" in info.value.reason
    assert str(info.value).startswith("tasks/x.md: ")


def test_a_file_at_the_size_limit_is_accepted() -> None:
    head = md(T)
    raw = head + b"x" * (MAX_TASK_FILE_BYTES - len(head))
    assert len(raw) == MAX_TASK_FILE_BYTES
    assert backlog.parse_task("tasks/x.md", raw).title == "T"


def test_a_body_with_its_own_dashes_keeps_the_front_matter_closed_at_the_first() -> None:
    task = backlog.parse_task("tasks/x.md", b"---\ntitle: T\n---\nintro\n---\nmore: stuff\n---\n")
    assert task.title == "T" and task.body == "intro\n---\nmore: stuff\n---\n"


def test_backlog_dataclass_defaults_are_not_shared() -> None:
    a, b = Backlog(), Backlog()
    a.invalid.append(TaskFileError("p", "r"))
    assert b.invalid == []


def test_a_dependency_chain_of_five_thousand_tasks_is_read_without_hitting_the_recursion_limit() -> None:
    from swarm import backlog

    n = 5000
    files = {f"tasks/t{i}.md": f"---\ntitle: T{i}\ndepends_on: [t{i - 1}]\n---\n".encode() for i in range(1, n)}
    files["tasks/t0.md"] = b"---\ntitle: T0\ndepends_on: [t4999]\n---\n"
    loaded = backlog.load(files)
    assert len(loaded.invalid) == n and not loaded.tasks, "one cycle through all of them"
    files["tasks/t0.md"] = b"---\ntitle: T0\n---\n"
    loaded = backlog.load(files)
    assert not loaded.invalid and len(loaded.tasks) == n
