"""Thin Celery tasks: each builds its collaborators and calls the pipeline, dispatch or the reaper."""

from __future__ import annotations

import logging
import os
from typing import Any

import redis
from billiard.process import current_process
from celery import Task
from celery.signals import worker_process_init

from swarm import dispatch as dispatch_mod
from swarm import reaper
from swarm.agents import Agent, registry
from swarm.celery import app
from swarm.errors import SwarmError
from swarm.flower import AttemptView
from swarm.pipeline import Pipeline
from swarm.riders import Riders
from swarm.runtime import Runtime, connect, worker_id
from swarm.settings import load_settings

log = logging.getLogger(__name__)

_runtimes: dict[int, Runtime] = {}


def runtime() -> Runtime:
    """One Runtime per process (pool children each get their own Redis connection)."""
    pid = os.getpid()
    if pid not in _runtimes:
        _runtimes.clear()
        _runtimes[pid] = connect(load_settings())
    return _runtimes[pid]


def agent_for(rt: Runtime, vendor: str) -> Agent:
    table = rt.settings.vendors[vendor]
    return registry.make(vendor, table.adapter, table.options())


def slot_id(task: Task) -> str:
    """This pool process's slot on its Celery node (e.g. claude@host-0): the same after a restart."""
    node = str(task.request.hostname or "node").replace("@", "-")
    index = getattr(current_process(), "index", None)
    return f"{node}-{index}" if index is not None else worker_id()


@worker_process_init.connect
def _sweep_at_start(**kwargs: Any) -> None:
    """A new pool process (also the replacement of a killed one) first cleans up after dead ones on this host."""
    try:
        rt = runtime()
        reaper.sweep_host(rt.settings, rt.mirror)
    except Exception as exc:  # noqa: BLE001 - a sweep that fails must not keep the worker from starting
        log.warning("sweep at start failed: %s", exc)


def enqueue(task_id: str, vendor: str) -> None:
    run_task.apply_async(args=[task_id, vendor], queue=vendor)


@app.task(bind=True, name="swarm.tasks.run_task")
def run_task(self: Task, task_id: str, vendor: str) -> dict[str, Any]:
    """One attempt of one task on this worker's vendor, then dispatch whatever became ready or free."""
    rt = runtime()
    rt.events.hook = view = AttemptView(self)
    riders = Riders.of(rt.workdir, str(self.request.hostname or "node"))
    pipeline = Pipeline.on(rt, lambda v: agent_for(rt, v), worker_id(), slot_id(self))
    if riders.growing():  # this worker takes another process while the candidate rides the train
        pipeline.free_slot = lambda: _hand_back(rt, riders)
    try:
        outcome = pipeline.run(task_id, vendor)
    except (SwarmError, redis.RedisError) as exc:  # Redis or git unreachable: the reaper records a lost attempt
        log.warning("attempt of %s interrupted: %s", task_id, exc)
        view.fail("interrupted", {"task": task_id, "outcome": "interrupted", "reason": f"{type(exc).__name__}: {exc}"})
    finally:
        rt.events.hook = None
        riders.end(os.getpid())
    try:
        dispatch_mod.dispatch(rt, enqueue)
    except Exception as exc:  # noqa: BLE001 - beat dispatches again soon; the attempt's outcome stands
        log.warning("dispatch after %s failed: %s", task_id, exc)
    return view.end(rt, task_id, outcome.value)


def _hand_back(rt: Runtime, riders: Riders) -> None:
    """The candidate rides the train: this worker grows by a process, and dispatch fills the slot at once."""
    riders.start(os.getpid())
    dispatch_mod.dispatch(rt, enqueue)


# Control tasks run every few seconds: no events and no results, so they do not crowd attempts out of Flower.
@app.task(name="swarm.tasks.dispatch", send_events=False, ignore_result=True, time_limit=300, soft_time_limit=240)
def dispatch() -> dict[str, Any]:
    report = dispatch_mod.dispatch(runtime(), enqueue)
    return {"enqueued": report.enqueued, "invalid": report.invalid, "busy": report.skipped_busy}


@app.task(name="swarm.tasks.reap", send_events=False, ignore_result=True, time_limit=300, soft_time_limit=240)
def reap() -> list[str]:
    """Finish lost attempts (lease gone) and hand their tasks back to dispatch at once."""
    rt = runtime()
    lost = reaper.reap(rt)
    reaper.sweep_host(rt.settings, rt.mirror)
    if lost:
        dispatch_mod.dispatch(rt, enqueue)
    return lost
