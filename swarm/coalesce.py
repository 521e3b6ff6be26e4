"""Clean-up passes: a task `coalesce-<k>` whose instructions are the repository's coalesce prompt.

Parallel agents repeat each other (helpers, docs, notes). Every `coalesce_every` landings, or on `swarm coalesce`,
one agent gets the repository's COALESCE prompt instead of a task file. Its pass runs through the same pipeline
and gate as any task (the passing count may not drop) and lands with its own trailers and landed ref.
"""

from __future__ import annotations

from collections.abc import Mapping

from swarm.backlog import Task
from swarm.settings import RepoSettings, Settings

PREFIX = "coalesce-"
TITLE = "Coalesce: merge duplicated code and documents without changing behaviour"


def is_pass(task_id: str) -> bool:
    return task_id.startswith(PREFIX) and task_id.removeprefix(PREFIX).isdigit()


def next_id(landed: Mapping[str, str]) -> str:
    """The id of the next pass: one more than the passes landed so far."""
    return f"{PREFIX}{1 + sum(1 for t in landed if is_pass(t))}"


def due(settings: Settings, repo: RepoSettings | None, landed: Mapping[str, str]) -> str | None:
    """The pass dispatch should queue now: one per `coalesce_every` landed tasks, if the repository has a prompt."""
    if not settings.coalesce_every or repo is None or not repo.coalesce_prompt:
        return None
    passes = sum(1 for t in landed if is_pass(t))
    work = len(landed) - passes
    return next_id(landed) if work // settings.coalesce_every > passes else None


def task(task_id: str, repo: RepoSettings, prompt_text: str) -> Task:
    """The pass as a task: its text is the coalesce prompt, read from main."""
    path = repo.coalesce_prompt or ""
    return Task(task_id, path, TITLE, 0, (), None, prompt_text, prompt_text)
