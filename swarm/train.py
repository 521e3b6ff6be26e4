"""The speculative merge train: candidates land in the order they joined, each tested on main + the ones ahead.

A candidate that passed its fast tier joins the train (a Redis list). Within the window, each car rebuilds its
candidate on the car ahead of it (the head on `main`) and runs its full oracle at once, in parallel with the others;
it lands only when it is the head, with the existing compare-and-swap push from its parent to exactly the commit its
full oracle passed. When a car ahead leaves (red, conflict, lease lost, dead worker), those behind it see their
parent change and rebuild on what is ahead of them now (a dependent pipeline, as Zuul's). Correctness still comes
from the push alone: `main` moves only from a car's parent to that car's tested commit, and the landed ref is
created once. A tree the full oracle already passed is not tested again (cached by tree id).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import redis

from swarm import keys, oracle
from swarm.coordination import Door, guarded
from swarm.counts import Counts
from swarm.errors import AttemptRejected
from swarm.outcomes import Reason
from swarm.repo import LandResult, Mirror

log = logging.getLogger(__name__)

POLL_SECONDS = 0.05
VERDICT_TTL_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class Hooks:
    """What a car needs from its attempt; the pipeline builds them, so the oracle runs through its one seam."""

    main: Callable[[], str]
    """Fetch origin; main's commit."""
    build: Callable[[str], str]
    """The candidate rebuilt on a parent (protected paths checked); raises AttemptRejected on a conflict."""
    test: Callable[[str], oracle.OracleResult]
    """The full oracle on exactly this commit."""
    baseline: Callable[[str], Counts | None]
    """main's full-oracle counts (None: main is red, any green candidate may land)."""
    alive: Callable[[], None]
    """Raises AttemptRejected when the attempt's lease is gone."""
    land: Callable[[str, str], LandResult]
    """The atomic push: main OLD->NEW and the landed ref, or nothing."""
    emit: Callable[..., None] = lambda state, **fields: None


@dataclass
class Car:
    """One candidate in the train, as this process sees it."""

    member: str
    parent: str = ""
    spec: str = ""
    result: oracle.OracleResult | None = None
    counts: Counts | None = None
    """Set once judged green: the counts the car behind is judged against."""
    on_car: bool = False
    """Whether `parent` is a car ahead's candidate rather than main as fetched."""
    freed: bool = False
    """Whether its worker slot was handed back for the next agent run while it rides (dispatch does not count it)."""


@dataclass(frozen=True)
class Ahead:
    member: str
    spec: str
    counts: Counts | None


def _wait() -> None:
    time.sleep(POLL_SECONDS)


class Train(Door):
    """The train's order and window in Redis; `ride` takes one car from joining to landing (or raises)."""

    def __init__(self, client: redis.Redis, mirror: Mirror, window: int, ttl: float) -> None:
        super().__init__(client)
        self.mirror = mirror
        self.max_window = max(1, window)
        self.ttl_ms = int(ttl * 1000)

    @guarded
    def depth(self) -> int:
        """How many candidates are in the train now."""
        return int(self.r.llen(keys.TRAIN))

    @guarded
    def has_room(self) -> bool:
        """Whether a car joining now would be inside the window, so its full oracle starts at once."""
        return self.depth() < self.window()

    @guarded
    def freed(self) -> set[str]:
        """The tasks whose car rides with its worker slot handed back: their leases do not fill a vendor slot."""
        members = [keys.text(m) for m in self.r.lrange(keys.TRAIN, 0, -1)]
        pipe = self.r.pipeline()
        for m in members:
            pipe.hget(keys.train_car(m), "freed")
        return {
            m.rsplit(":", 1)[0]
            for m, freed in zip(members, pipe.execute(), strict=True)
            if freed and keys.text(freed) == "1"
        }

    @guarded
    def ride(
        self, member: str, hooks: Hooks, free_slot: Callable[[], None] | None = None
    ) -> tuple[str, oracle.OracleResult]:
        """Join, speculate, land in order: returns the landed commit and the full oracle's result on it.

        With `free_slot`, the car gives its worker slot back for the next agent run once it has joined, unless
        the train already holds twice its window (backpressure: candidates would only wait there).

        A Redis error on the way is a CoordinationError, as at every door: the attempt ends as the infrastructure's
        fault and keeps its budget, never as an unexpected error that uses it up."""
        car = Car(member)
        car.freed = free_slot is not None and self.depth() < 2 * self.window()
        self._join(car)
        if car.freed and free_slot is not None:
            free_slot()
        stop = threading.Event()
        # A step can take as long as a full oracle run: the car's entry is renewed from a thread meanwhile, so only
        # a dead process (or one cut off from Redis) lets it expire and frees those behind.
        beat = threading.Thread(target=self._renew, args=(member, stop), daemon=True, name=f"train-{member}")
        beat.start()
        try:
            while True:
                hooks.alive()
                self._touch(car)
                landed = self._step(car, hooks)
                if landed is not None:
                    return landed
        finally:
            stop.set()
            beat.join()
            self._leave(member)

    def _renew(self, member: str, stop: threading.Event) -> None:
        while not stop.wait(self.ttl_ms / 3000):
            try:
                self.r.pexpire(keys.train_car(member), self.ttl_ms)
            except redis.RedisError as exc:  # the car may expire; the ride's own touch puts it back in line
                log.warning("could not renew %s in the train: %s", member, exc)

    def window(self) -> int:
        value = self.r.get(keys.TRAIN_WINDOW)
        return min(self.max_window, int(value)) if value else self.max_window

    # --- one step of a car: wait, rebuild, test, judge, or land ---

    def _step(self, car: Car, hooks: Hooks) -> tuple[str, oracle.OracleResult] | None:
        ahead = self._ahead(car.member)
        if len(ahead) >= self.window() or (ahead and not ahead[-1].spec):
            _wait()  # outside the window, or the car ahead has not built yet
            return None
        if ahead:
            parent = ahead[-1].spec
        elif car.parent and not car.on_car:
            # Built on main as fetched then: test, judge and push without fetching again; if main has moved, the
            # compare-and-swap fails and the car rebuilds on main, fetched then.
            parent = car.parent
        else:
            parent = hooks.main()  # the car ahead has left (landed, or red): is the parent main now?
        car.on_car = bool(ahead)
        if parent != car.parent:
            self._rebuild(car, parent, hooks)
            return None
        if car.result is None:
            car.result = self._test(car.spec, hooks)
            return None  # the parent may have changed while the oracle ran: look again before judging
        if car.counts is None:
            if ahead and ahead[-1].counts is None:
                _wait()  # judged against the car ahead's counts, once it has them
                return None
            self._judge(car, ahead[-1].counts if ahead else hooks.baseline(parent), hooks)
        if ahead:
            _wait()
            return None
        return self._land(car, hooks)

    def _rebuild(self, car: Car, parent: str, hooks: Hooks) -> None:
        car.parent, car.spec, car.result, car.counts = parent, "", None, None
        self._publish(car)  # those behind must not build on the old commit meanwhile
        car.spec = hooks.build(parent)
        self._publish(car)

    def _test(self, commit: str, hooks: Hooks) -> oracle.OracleResult:
        """The full oracle's result on a commit, from the verdict cache when its tree already passed."""
        tree = self.mirror.tree(commit)
        cached = self.r.get(keys.verdict(tree, "full"))
        if cached:
            hooks.emit("oracle_cached", commit=commit, tree=tree)
            return oracle.OracleResult(**json.loads(cached))
        result = hooks.test(commit)
        if result.ok:  # only green runs: a red one may be a flake, and is judged once anyway
            self.r.set(keys.verdict(tree, "full"), json.dumps(asdict(result)), ex=VERDICT_TTL_SECONDS)
        return result

    def _judge(self, car: Car, baseline: Counts | None, hooks: Hooks) -> None:
        assert car.result is not None
        reason = oracle.judge(car.result, baseline)
        if reason:
            self._shrink()
            raise AttemptRejected(Reason.ORACLE_RED if not car.result.ok else Reason.ORACLE_DROPPED, reason)
        car.counts = car.result.counts()
        self._publish(car)

    def _land(self, car: Car, hooks: Hooks) -> tuple[str, oracle.OracleResult] | None:
        assert car.result is not None
        hooks.alive()
        outcome = hooks.land(car.parent, car.spec)
        if outcome is LandResult.LANDED:
            self._grow()
            return car.spec, car.result
        if outcome is LandResult.ALREADY_LANDED:
            raise AttemptRejected(Reason.ALREADY_LANDED, "the landed ref exists on origin")
        hooks.emit("cas_lost", onto=car.parent)  # main moved, or the car ahead did not land: rebuild on main
        car.parent, car.counts = "", None
        return None

    # --- the train in Redis ---

    def _join(self, car: Car) -> None:
        pipe = self.r.pipeline()
        pipe.hset(keys.train_car(car.member), mapping={"spec": "", "counts": "", "freed": "1" if car.freed else ""})
        pipe.pexpire(keys.train_car(car.member), self.ttl_ms)
        pipe.rpush(keys.TRAIN, car.member)
        pipe.execute()

    def _leave(self, member: str) -> None:
        try:
            pipe = self.r.pipeline()
            pipe.lrem(keys.TRAIN, 0, member)
            pipe.delete(keys.train_car(member))
            pipe.execute()
        except redis.RedisError as exc:  # the car's entry expires within one TTL; those behind then move on
            log.warning("could not leave the train (%s): %s", member, exc)

    def _touch(self, car: Car) -> None:
        """A car whose process died expires within one TTL, and the cars behind stop waiting for it."""
        if not self.r.pexpire(keys.train_car(car.member), self.ttl_ms):
            self._join(car)  # expired while this process was slow: back in, at the end
            car.parent = ""

    def _publish(self, car: Car) -> None:
        counts = json.dumps(car.counts.to_dict()) if car.counts is not None else ""
        self.r.hset(keys.train_car(car.member), mapping={"spec": car.spec, "counts": counts})

    def _ahead(self, member: str) -> list[Ahead]:
        """The live cars ahead of this one, in order; the entries of dead ones are dropped."""
        members = [keys.text(m) for m in self.r.lrange(keys.TRAIN, 0, -1)]
        if member not in members:  # dropped by a car that thought this one dead: back in, at the end
            self.r.rpush(keys.TRAIN, member)
            members.append(member)
        ahead = members[: members.index(member)]
        pipe = self.r.pipeline()
        for m in ahead:
            pipe.hgetall(keys.train_car(m))
        cars = []
        for m, fields in zip(ahead, pipe.execute(), strict=True):
            if not fields:
                self.r.lrem(keys.TRAIN, 0, m)
                continue
            values = {keys.text(k): keys.text(v) for k, v in fields.items()}
            counts = Counts.parse(json.loads(values["counts"])) if values.get("counts") else None
            cars.append(Ahead(m, values.get("spec", ""), counts))
        return cars

    def _grow(self) -> None:
        self.r.set(keys.TRAIN_WINDOW, min(self.max_window, self.window() + 1))

    def _shrink(self) -> None:
        self.r.set(keys.TRAIN_WINDOW, max(1, self.window() // 2))
