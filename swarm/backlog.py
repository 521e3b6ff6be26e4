"""The backlog: one markdown file per task, with YAML front matter; parsing, validation and readiness."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from swarm.errors import TaskFileError

log = logging.getLogger(__name__)

TASK_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")
MAX_TASK_FILE_BYTES = 256 * 1024
FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)(.*)\Z", re.DOTALL)


class FrontMatter(BaseModel):
    """The fields a task file declares between its `---` lines."""

    model_config = ConfigDict(extra="forbid", strict=True)

    title: str = Field(min_length=1, max_length=200)
    """One line saying what the task delivers."""
    priority: int = 0
    """Higher runs first among ready tasks."""
    depends_on: list[str] = Field(default_factory=list)
    """Ids of tasks that must have landed before this one is ready."""
    vendor: str | None = None
    """Run only on this vendor's queue (claude, codex, ...); any vendor when absent."""

    @field_validator("title")
    @classmethod
    def _title(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the title is blank")
        return value.strip()

    @field_validator("depends_on")
    @classmethod
    def _ids(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if not TASK_ID.match(v)]
        if bad:
            raise ValueError(f"not task ids: {bad} (ids match [a-z0-9][a-z0-9-]*)")
        return value


@dataclass(frozen=True)
class Task:
    """One task of the backlog, as read from `main`."""

    id: str
    path: str
    title: str
    priority: int
    depends_on: tuple[str, ...]
    vendor: str | None
    body: str
    text: str


@dataclass
class Backlog:
    """Every valid task by id, and every file that could not be read as a task, with its reason."""

    tasks: dict[str, Task] = field(default_factory=dict)
    invalid: list[TaskFileError] = field(default_factory=list)

    def ordered(self) -> list[Task]:
        """Tasks by priority (highest first), then id, so every dispatcher agrees on the order."""
        return sorted(self.tasks.values(), key=lambda t: (-t.priority, t.id))

    def ready(self, landed: Iterable[str]) -> list[Task]:
        """Tasks not landed whose dependencies have all landed, in dispatch order."""
        done = set(landed)
        return [t for t in self.ordered() if t.id not in done and all(d in done for d in t.depends_on)]


def parse_task(path: str, raw: bytes) -> Task:
    """Parse one task file; raises TaskFileError naming the file and what is wrong."""
    name = path.rsplit("/", 1)[-1]
    if not name.endswith(".md"):
        raise TaskFileError(path, "task files must end in .md")
    task_id = name[: -len(".md")]
    if not TASK_ID.match(task_id):
        raise TaskFileError(path, f"bad task id {task_id!r}: ids match [a-z0-9][a-z0-9-]* (lower case, digits, '-')")
    if len(raw) > MAX_TASK_FILE_BYTES:
        raise TaskFileError(path, f"file is {len(raw)} bytes; task files are limited to {MAX_TASK_FILE_BYTES}")
    if b"\x00" in raw:
        raise TaskFileError(path, "binary content (NUL byte); a task file is UTF-8 markdown")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TaskFileError(path, f"not UTF-8 ({exc.reason} at byte {exc.start})") from None
    text = text.removeprefix("\ufeff")
    match = FRONT_MATTER.match(text)
    if not match:
        raise TaskFileError(path, "no front matter: the file must start with a '---' line, then YAML, then '---'")
    meta = _load_yaml(path, match.group(1))
    try:
        fm = FrontMatter.model_validate(meta)
    except ValidationError as exc:
        raise TaskFileError(path, _explain(exc)) from None
    if task_id in fm.depends_on:
        raise TaskFileError(path, "the task depends on itself")
    return Task(task_id, path, fm.title.strip(), fm.priority, tuple(fm.depends_on), fm.vendor, match.group(2), text)


def _load_yaml(path: str, source: str) -> dict[str, object]:
    try:
        meta = yaml.safe_load(source)
    except yaml.YAMLError as exc:
        raise TaskFileError(path, f"front matter is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(meta, dict):
        raise TaskFileError(path, "front matter must be a mapping of fields (title, priority, depends_on, vendor)")
    return meta


def _explain(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "front matter"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


IGNORED = ("README.md",)


def is_task_path(path: str) -> bool:
    """Hidden files, non-markdown files and README.md may sit in the backlog folder without being tasks."""
    name = path.rsplit("/", 1)[-1]
    return not name.startswith(".") and name.endswith(".md") and name not in IGNORED


def load(files: Mapping[str, bytes], vendors: Iterable[str] | None = None) -> Backlog:
    """Build the backlog from {path: content}; bad files and bad links are reported, the rest kept."""
    backlog = Backlog()
    for path in sorted(p for p in files if is_task_path(p)):
        try:
            task = parse_task(path, files[path])
        except TaskFileError as err:
            backlog.invalid.append(err)
            continue
        backlog.tasks[task.id] = task
    _drop_bad_links(backlog, set(vendors) if vendors is not None else None)
    for problem in backlog.invalid:
        log.warning("skipping task file %s", problem)
    return backlog


def load_dir(folder: Path, vendors: Iterable[str] | None = None) -> Backlog:
    """Read a backlog folder from disk (a checkout); the swarm itself reads it from `main` through repo.py."""
    files = {f"{folder.name}/{p.name}": p.read_bytes() for p in sorted(folder.glob("*")) if p.is_file()}
    return load(files, vendors)


def _drop_bad_links(backlog: Backlog, vendors: set[str] | None) -> None:
    """Unknown dependencies, unknown vendors and cycles make a task invalid (and, transitively, its dependents)."""
    changed = True
    while changed:
        changed = False
        for task in list(backlog.tasks.values()):
            reason = _link_problem(task, backlog.tasks, vendors)
            if reason:
                backlog.invalid.append(TaskFileError(task.path, reason))
                del backlog.tasks[task.id]
                changed = True
    for cycle in _cycles(backlog.tasks):
        for tid in cycle:
            task = backlog.tasks.pop(tid)
            backlog.invalid.append(TaskFileError(task.path, "dependency cycle: " + " -> ".join([*cycle, cycle[0]])))
    if backlog.invalid and any(_link_problem(t, backlog.tasks, vendors) for t in backlog.tasks.values()):
        _drop_bad_links(backlog, vendors)


def _link_problem(task: Task, tasks: Mapping[str, Task], vendors: set[str] | None) -> str:
    missing = [d for d in task.depends_on if d not in tasks]
    if missing:
        return f"depends_on names unknown or invalid task(s): {', '.join(missing)}"
    if vendors is not None and task.vendor is not None and task.vendor not in vendors:
        return f"vendor {task.vendor!r} is not configured (configured: {', '.join(sorted(vendors)) or 'none'})"
    return ""


def _cycles(tasks: Mapping[str, Task]) -> list[list[str]]:
    """Each dependency cycle once, by an iterative depth-first search: a long chain must not hit a recursion limit."""
    state: dict[str, int] = {}
    found: list[list[str]] = []
    for root in sorted(tasks):
        if root in state:
            continue
        path: list[str] = [root]
        todo: list[list[str]] = [[d for d in tasks[root].depends_on if d in tasks]]
        state[root] = 1
        while path:
            if not todo[-1]:
                state[path.pop()] = 2
                todo.pop()
                continue
            dep = todo[-1].pop()
            if state.get(dep) == 1:
                found.append(path[path.index(dep) :])
            elif dep not in state:
                state[dep] = 1
                path.append(dep)
                todo.append([d for d in tasks[dep].depends_on if d in tasks])
    seen: set[str] = set()
    unique = []
    for cycle in found:
        if not seen.intersection(cycle):
            unique.append(cycle)
            seen.update(cycle)
    return unique
