"""Leases (invariant 5): SET NX PX plus a fence, renewed by a heartbeat, released only by their owner."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from swarm import keys
from swarm.embedded import EmbeddedRedis
from swarm.leases import Heartbeat, Lease, Leases
from swarm.runtime import connect
from swarm.settings import Settings
from tests.conftest import Project, wait_for


@pytest.fixture
def leases(r: redis.Redis) -> Leases:
    return Leases(r)


LOADED_TTL = 3.0
"""Lease TTL of these tests: beats every second, so a loaded 2-core machine delaying a thread by a second is fine."""
MARGIN = 2.0
"""Seconds of slack on top of a TTL before a test calls an expiry or a loss late."""


class Lost:
    """An on_lost callback that records each call and when it came."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, str]] = []
        self.event = threading.Event()

    def __call__(self, reason: str) -> None:
        self.calls.append((time.monotonic(), reason))
        self.event.set()


def test_acquire_writes_owner_info_a_token_and_a_ttl(leases: Leases, r: redis.Redis) -> None:
    lease = leases.acquire_task("t1", 5.0, worker="w1", vendor="claude")
    assert lease is not None and lease.key == keys.lease("t1") and lease.fence == 1
    stored = json.loads(r.get(keys.lease("t1")))
    assert stored["worker"] == "w1" and stored["vendor"] == "claude" and stored["task"] == "t1"
    assert stored["token"] == lease.token and len(lease.token) == 32
    assert 4000 < r.pttl(keys.lease("t1")) <= 5000
    assert int(r.get(keys.fence("t1"))) == 1
    assert leases.held(lease)


def test_a_held_lease_cannot_be_acquired_again(leases: Leases, r: redis.Redis) -> None:
    first = leases.acquire_task("t1", 5.0, worker="w1")
    assert first is not None
    assert leases.acquire_task("t1", 5.0, worker="w2") is None
    assert json.loads(r.get(keys.lease("t1")))["worker"] == "w1"
    assert int(r.get(keys.fence("t1"))) == 1, "a failed acquire does not bump the fence"


def test_two_threads_racing_for_one_lease_exactly_one_wins(redis_url: str) -> None:
    clients = [Leases(redis.Redis.from_url(redis_url)) for _ in range(2)]
    for round_no in range(50):
        task = f"race-{round_no}"
        barrier = threading.Barrier(2)
        won: list[Lease | None] = [None, None]

        def grab(i: int, task: str = task, barrier: threading.Barrier = barrier, won: list[Lease | None] = won) -> None:
            barrier.wait()
            won[i] = clients[i].acquire_task(task, 5.0, worker=f"w{i}")

        threads = [threading.Thread(target=grab, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        winners = [w for w in won if w is not None]
        assert len(winners) == 1, f"round {round_no}: {len(winners)} winners"
        assert clients[0].held(winners[0])


def test_the_fence_grows_with_every_acquisition(leases: Leases, r: redis.Redis) -> None:
    fences = []
    for _ in range(3):
        lease = leases.acquire_task("t1", 5.0)
        assert lease is not None
        fences.append(lease.fence)
        assert leases.release(lease)
    short = leases.acquire_task("t1", 0.05)
    assert short is not None
    fences.append(short.fence)
    wait_for(lambda: not r.exists(keys.lease("t1")), 2, "the short lease to expire")
    after_expiry = leases.acquire_task("t1", 5.0)
    assert after_expiry is not None
    fences.append(after_expiry.fence)
    assert fences == [1, 2, 3, 4, 5]
    other = leases.acquire_task("t2", 5.0)
    assert other is not None and other.fence == 1, "each task has its own fence"


def test_release_by_a_non_owner_does_nothing(leases: Leases, r: redis.Redis) -> None:
    mine = leases.acquire_task("t1", 5.0, worker="w1")
    assert mine is not None
    forged = Lease(mine.key, json.dumps({"token": "0" * 32}), mine.fence, mine.ttl)
    assert leases.release(forged) is False
    assert leases.renew(forged) is False
    assert r.get(mine.key).decode() == mine.value, "the owner's lease is still there"
    assert leases.release(mine) is True
    assert not r.exists(mine.key)
    assert leases.release(mine) is False, "a second release finds nothing"


def test_a_stale_owner_cannot_release_the_next_owners_lease(leases: Leases, r: redis.Redis) -> None:
    old = leases.acquire_task("t1", 0.05, worker="old")
    assert old is not None
    wait_for(lambda: not r.exists(old.key), 2, "the old lease to expire")
    new = leases.acquire_task("t1", 5.0, worker="new")
    assert new is not None
    assert leases.release(old) is False and leases.renew(old) is False
    assert leases.held(new) and not leases.held(old)


def test_renew_extends_only_a_live_owned_lease(leases: Leases, r: redis.Redis) -> None:
    lease = leases.acquire_task("t1", 1.0)
    assert lease is not None
    r.pexpire(lease.key, 100)
    assert leases.renew(lease) is True
    assert r.pttl(lease.key) > 500, "renew restores the full ttl"
    r.pexpire(lease.key, 1)
    wait_for(lambda: not r.exists(lease.key), 2, "the lease to expire")
    assert leases.renew(lease) is False
    assert not r.exists(lease.key), "a failed renew does not bring the lease back"


def test_holders_lists_task_leases_with_time_left(leases: Leases, r: redis.Redis) -> None:
    a = leases.acquire_task("alpha", 5.0, worker="w1", vendor="claude")
    b = leases.acquire_task("beta", 1.0, worker="w2", vendor="codex")
    assert a is not None and b is not None
    lock = leases.acquire(keys.MERGE_LOCK, keys.MERGE_LOCK + ":fence", 5.0, task="alpha")
    assert lock is not None
    r.set(keys.lease("no-ttl"), json.dumps({"token": "x"}))  # a key without expiry is not a lease
    found = leases.holders()
    assert set(found) == {"alpha", "beta"}, "only task leases with a ttl (not the merge lock)"
    assert found["alpha"]["worker"] == "w1" and found["alpha"]["vendor"] == "claude"
    assert 4000 < found["alpha"]["ms_left"] <= 5000
    assert 0 < found["beta"]["ms_left"] <= 1000
    leases.release(b)
    assert set(leases.holders()) == {"alpha"}


def test_the_merge_lock_is_a_lease_too(redis_url: str, r: redis.Redis) -> None:
    one, two = Leases(redis.Redis.from_url(redis_url)), Leases(redis.Redis.from_url(redis_url))
    fence_key = keys.MERGE_LOCK + ":fence"
    first = one.acquire(keys.MERGE_LOCK, fence_key, LOADED_TTL, task="a", worker="w1")
    assert first is not None and first.key == keys.MERGE_LOCK
    assert two.acquire(keys.MERGE_LOCK, fence_key, LOADED_TTL, task="b", worker="w2") is None
    assert two.release(Lease(keys.MERGE_LOCK, "{}", 0, LOADED_TTL)) is False and one.held(first)
    wait_for(lambda: not r.exists(keys.MERGE_LOCK), LOADED_TTL + MARGIN, "the merge lock to expire")
    second = two.acquire(keys.MERGE_LOCK, fence_key, 5.0, task="b", worker="w2")
    assert second is not None and second.fence == first.fence + 1
    assert one.release(first) is False, "the expired holder cannot release the new holder's lock"
    assert two.held(second)
    assert two.release(second) and not r.exists(keys.MERGE_LOCK)


def test_a_heartbeat_keeps_a_lease_alive_past_several_ttls(leases: Leases, r: redis.Redis) -> None:
    lease = leases.acquire_task("t1", LOADED_TTL)
    assert lease is not None
    lost = Lost()
    with Heartbeat(leases, lease, lost) as hb:
        end = time.monotonic() + 3 * lease.ttl
        while time.monotonic() < end:  # the lease must hold at every moment, not only at the end
            assert leases.held(lease), "the lease expired under a running heartbeat"
            time.sleep(0.02)
        assert not hb.lost.is_set()
    assert lost.calls == []
    assert leases.acquire_task("t1", LOADED_TTL) is None, "still held right after the heartbeat stops"


def test_a_stopped_heartbeat_lets_the_lease_expire(leases: Leases, r: redis.Redis) -> None:
    lease = leases.acquire_task("t1", LOADED_TTL)
    assert lease is not None
    with Heartbeat(leases, lease, Lost()):
        pass
    wait_for(lambda: not r.exists(lease.key), lease.ttl + MARGIN, "the lease to expire within about one ttl")


@pytest.mark.parametrize("how", ["deleted", "overwritten"])
def test_a_heartbeat_reports_a_lost_lease_once(leases: Leases, r: redis.Redis, how: str) -> None:
    lease = leases.acquire_task("t1", LOADED_TTL)
    assert lease is not None
    lost = Lost()
    with Heartbeat(leases, lease, lost) as hb:
        if how == "deleted":
            r.delete(lease.key)
        else:
            r.set(lease.key, json.dumps({"token": "thief"}), px=60_000)
        wait_for(lost.event.is_set, lease.ttl, "on_lost within a ttl (at the next beats)")
        assert hb.lost.is_set()
        time.sleep(lease.ttl)  # several more beat intervals: on_lost must not be called again
    assert len(lost.calls) == 1
    assert "expired or taken over" in lost.calls[0][1]
    if how == "overwritten":
        assert json.loads(r.get(lease.key))["token"] == "thief", "the heartbeat does not touch the new owner's lease"
        assert r.pttl(lease.key) > 30_000, "not renewed to the heartbeat's ttl"


@pytest.fixture
def second_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path / "redis2").start()
    try:
        yield server
    finally:
        if server.pid is not None and server.running():
            os.kill(server.pid, signal.SIGCONT)
        server.stop()


def test_a_heartbeat_against_a_redis_that_goes_away_reports_the_loss(second_redis: EmbeddedRedis) -> None:
    client = redis.Redis.from_url(second_redis.url, socket_timeout=0.2, socket_connect_timeout=0.2)
    leases = Leases(client)
    ttl = LOADED_TTL
    lease = leases.acquire_task("t1", ttl)
    assert lease is not None
    lost = Lost()
    with Heartbeat(leases, lease, lost):
        wait_for(lambda: client.pttl(lease.key) < ttl * 1000 - 50, 2, "time to pass on the lease")
        wait_for(lambda: client.pttl(lease.key) > ttl * 1000 - 50, 2, "one renewal")
        second_redis.stop()
        stopped = time.monotonic()
        wait_for(lost.event.is_set, ttl + MARGIN, "on_lost within about one ttl after Redis went away")
    assert len(lost.calls) == 1
    assert lost.calls[0][0] - stopped <= ttl + MARGIN
    assert "renew" in lost.calls[0][1]


def test_with_the_runtimes_client_a_hanging_redis_is_noticed_before_the_lease_expires(
    second_redis: EmbeddedRedis, project: Project, tmp_path: Path
) -> None:
    """A paused (or partitioned) Redis does not refuse connections: a renewal hangs. The runtime's client times
    out within a third of the ttl, so the heartbeat still calls on_lost before the lease could expire."""
    ttl = 2 * LOADED_TTL  # the runtime's client times out at a third of it: a second, not a fraction
    rt = connect(
        Settings(redis_url=second_redis.url, origin=str(project.origin), workdir=tmp_path / "wd", lease_ttl=ttl)
    )
    lease = rt.leases.acquire_task("t1", ttl)
    assert lease is not None
    lost = Lost()
    with Heartbeat(rt.leases, lease, lost):
        probe = redis.Redis.from_url(second_redis.url)
        wait_for(lambda: probe.pttl(lease.key) < ttl * 1000 - 50, 2, "time to pass on the lease")
        wait_for(lambda: probe.pttl(lease.key) > ttl * 1000 - 50, 2, "one renewal")
        last_renewal = time.monotonic()
        assert second_redis.pid is not None
        os.kill(second_redis.pid, signal.SIGSTOP)
        try:
            lost.event.wait(ttl + MARGIN)
        finally:
            os.kill(second_redis.pid, signal.SIGCONT)
        assert lost.calls, "on_lost was not called although the lease could not be renewed"
        assert lost.calls[0][0] - last_renewal < ttl, "on_lost comes before the lease may have expired"


def test_a_renewal_that_times_out_is_retried_while_the_lease_is_still_ours(
    second_redis: EmbeddedRedis, project: Project, tmp_path: Path
) -> None:
    """Redis unreachable for a few seconds (CLIENT PAUSE: every other client's call hangs, as over a cut link).
    The lease had time left: a renewal that times out is tried again on a short timeout, not taken as lost, and
    the lease is renewed once Redis answers. (Before, one renewal timing out at ttl/3 with ttl/3 left was a loss.)"""
    ttl = 3 * LOADED_TTL
    rt = connect(
        Settings(redis_url=second_redis.url, origin=str(project.origin), workdir=tmp_path / "wd", lease_ttl=ttl)
    )
    lease = rt.leases.acquire_task("t1", ttl)
    assert lease is not None
    lost = Lost()
    probe = redis.Redis.from_url(second_redis.url)
    pause = ttl * 0.72  # longer than a renewal interval plus the runtime client's timeout (2 x ttl/3), shorter than ttl
    with Heartbeat(rt.leases, lease, lost):
        wait_for(lambda: probe.pttl(lease.key) < ttl * 1000 - 50, 2 * MARGIN, "time to pass on the lease")
        wait_for(lambda: probe.pttl(lease.key) > ttl * 1000 - 50, 2 * MARGIN, "one renewal")
        probe.execute_command("CLIENT", "PAUSE", int(pause * 1000))
        paused_at = time.monotonic()
        renewed = lambda: time.monotonic() > paused_at + pause and probe.pttl(lease.key) > (ttl - 1.0) * 1000  # noqa: E731
        wait_for(renewed, ttl + MARGIN, "a renewal after Redis answers again")
        assert lost.calls == [], f"taken as lost while the lease still had time: {lost.calls}"
        assert rt.leases.held(lease)
