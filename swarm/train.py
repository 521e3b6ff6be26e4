"""The speculative merge train: candidates land in the order they joined, each tested on main + the ones ahead.

A candidate that passed its fast tier joins the train (a Redis list). Within the window, each car rebuilds its
candidate on the car ahead of it (the head on `main`) and runs its full oracle at once, in parallel with the others;
it lands only when it is the head, with the existing compare-and-swap push from its parent to exactly the commit its
full oracle passed. When a car ahead leaves (red, conflict, lease lost, dead worker), those behind it see their
parent change and rebuild on what is ahead of them now (a dependent pipeline, as Zuul's). Correctness still comes
from the push alone: `main` moves only from a car's parent to that car's tested commit, and the landed ref is
created once. A tree the full oracle already passed is not tested again (cached by tree id).

Where oracle CPU is short, the train batches instead (`train_batch`: batch, or auto when the window's full oracles,
at the share of a machine the last runs used, would need more than its cores; the whole train runs one way at a time,
whichever worker decides it):
one car at a time runs its full oracle, the last one in the window, on a tree that holds every car ahead of it;
green, it lands them all with one merge commit whose first parent is the old `main` and whose tree is exactly the
tree it tested (as bors does), and each task keeps its own commit and trailers on the merged line. A red batch is
bisected: the car half-way to the red one tests next, and its green half lands; the red car reached with nothing
untested ahead of it is the one rejected. `main` still only ever points to a tree the full oracle passed.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Literal

import redis

from swarm import keys, oracle
from swarm.coordination import Door, guarded
from swarm.counts import Counts
from swarm.errors import AttemptRejected, CoordinationError
from swarm.outcomes import Reason
from swarm.repo import LandResult, Mirror

log = logging.getLogger(__name__)

POLL_SECONDS = 0.05
"""How often a waiting car looks at the train when it cannot listen for changes (see `Train._wait`)."""
LISTEN_SECONDS = 0.25
"""How long a waiting car listening for changes waits at most: what changes without a word (a dead car's entry
expiring, main moved by a push from outside) is seen within it."""
MODE_SECONDS = 5.0
"""How long one decision between batching and speculating holds for the whole train."""
VERDICT_TTL_SECONDS = 7 * 24 * 3600
SHARE_SAMPLES = 8
"""Full oracle runs whose CPU share `auto` decides by."""


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
    landed_as: Callable[[str, Counts], None] = lambda commit, counts: None
    """Keep the counts a car landed with as main's, before it leaves the line: the car behind judges against them."""
    early_baseline: Callable[[str], None] = lambda main: None
    """Start measuring main's counts, if nothing has them, beside the full run of a car they will judge."""
    land_run: Callable[[str, str, list[tuple[str, str]]], LandResult] | None = None
    """`land` that carries the green cars right behind (member, commit, in line order) in the same atomic push:
    main OLD->the last of them, and each one's landed ref on its own commit, or nothing. None: one push per car."""
    land_batch: Callable[[str, str, list[tuple[str, str]], Counts], tuple[LandResult, str]] | None = None
    """A batch's atomic push (base, the tip's commit, (member, commit) of every car in it, the counts it passed
    with): main BASE->a merge commit and every member's landed ref, or nothing. None: this train never batches."""
    landed: Callable[[], str | None] = lambda: None
    """After `main`: the commit the attempt's task landed as (by a batch behind it), or None."""
    current: Callable[[list[str]], bool] = lambda members: True
    """Whether every one of these cars' attempts still holds its task's lease (the fence check for a batch)."""


Mode = Literal["speculate", "batch", "auto"]


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
    state: str = ""
    """"" untested, "running" its full oracle, "done" (a result, not yet judged), "green", or "red": red on a tree
    holding untested cars ahead, so the culprit is not known yet (bisection)."""
    judged_on: str = ""
    """The commit whose counts the car's result was judged against (a car ahead's, or main's): judged again on
    another (the counts it must not drop below are those of what it lands on)."""
    specs: set[str] = field(default_factory=set)
    """Every commit this car was built as: a landed ref pointing to one of them is this attempt's landing."""


@dataclass(frozen=True)
class Ahead:
    member: str
    spec: str
    counts: Counts | None
    parent: str = ""
    state: str = ""
    result: Counts | None = None
    """What its full oracle counted on `spec`, once it ran (green or not)."""


@dataclass(frozen=True)
class View:
    """The train as one car sees it: the live cars ahead, those behind it inside the window, its own entry."""

    ahead: list[Ahead]
    behind: list[Ahead]
    own: dict[str, str]
    window: int
    mode: str | None = None
    """How the train runs now (batch or speculate), None when no car has decided it lately (see `_batching`)."""
    landed: str = ""
    """The commit the last car to land alone moved main to."""


def _cores() -> int:
    """The cores this process may run on (a container's cpuset or an affinity mask may allow fewer than exist)."""
    return len(os.sched_getaffinity(0)) or 1


class Train(Door):
    """The train's order and window in Redis; `ride` takes one car from joining to landing (or raises)."""

    def __init__(self, client: redis.Redis, mirror: Mirror, window: int, ttl: float, mode: Mode = "auto") -> None:
        super().__init__(client)
        self.mirror = mirror
        self.max_window = max(1, window)
        self.ttl_ms = int(ttl * 1000)
        self.mode = mode
        self._local = threading.local()
        """This thread's ride: its member and its subscription to the train's changes (`_wait`)."""

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
    ) -> tuple[str, oracle.OracleResult | None]:
        """Join, speculate, land in order: returns the landed commit and the full oracle's result on it (the
        batch's, for a car landed by a batch behind it; None when that verdict is no longer known).

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
        self._listen(member)
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
            self._unlisten()

    def _renew(self, member: str, stop: threading.Event) -> None:
        while not stop.wait(self.ttl_ms / 3000):
            try:
                self.r.pexpire(keys.train_car(member), self.ttl_ms)
            except redis.RedisError as exc:  # the car may expire; the ride's own touch puts it back in line
                log.warning("could not renew %s in the train: %s", member, exc)

    def _listen(self, member: str) -> None:
        """Hear every change to the train while this ride waits: a car looks again as soon as the car ahead has
        built, been judged, landed or left, rather than at its next poll (a chain of cars each one poll behind the
        one ahead adds up). Without the subscription (Redis refused it), the ride polls."""
        self._local.member = member
        try:
            sub = self.r.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
            sub.subscribe(keys.TRAIN_CHANGED)
            self._local.sub = sub
        except redis.RedisError as exc:
            log.warning("%s polls the train: could not subscribe to its changes: %s", member, exc)
            self._local.sub = None

    def _unlisten(self) -> None:
        sub, self._local.sub = getattr(self._local, "sub", None), None
        if sub is not None:
            try:
                sub.close()
            except redis.RedisError:  # its connection is gone anyway
                pass

    def _wait(self) -> None:
        """Until another car changes the train (or LISTEN_SECONDS); a ride's own changes do not wake it. What came
        meanwhile is read and dropped: the next look at the train sees it."""
        sub = getattr(self._local, "sub", None)
        if sub is None:
            time.sleep(POLL_SECONDS)
            return
        try:
            deadline = time.monotonic() + LISTEN_SECONDS
            while (left := deadline - time.monotonic()) > 0:
                message = sub.get_message(timeout=left)
                if message is not None and keys.text(message["data"]) != self._local.member:
                    break
            while sub.get_message(timeout=0) is not None:
                pass
        except redis.RedisError as exc:
            log.warning("%s polls the train from now on: %s", self._local.member, exc)
            self._unlisten()
            time.sleep(POLL_SECONDS)

    @staticmethod
    def _changed(pipe: redis.client.Pipeline, member: str) -> None:
        """Tell the waiting cars, in the same transaction as the change."""
        pipe.publish(keys.TRAIN_CHANGED, member)

    def window(self) -> int:
        value = self.r.get(keys.TRAIN_WINDOW)
        return min(self.max_window, int(value)) if value else self.max_window

    # --- one step of a car: wait, rebuild, test, judge, or land ---

    def _step(self, car: Car, hooks: Hooks) -> tuple[str, oracle.OracleResult | None] | None:
        view = self._view(car.member)
        if view.own.get("landed"):  # a batch behind this car landed it, or the car ahead carried it
            return self._carried(car, view.own["landed"], view.own.get("landed_tree", ""), hooks,
                                 view.own.get("carried_by", ""))  # fmt: skip
        if view.own.get("refetch"):  # the batch it heads lost its compare-and-swap: main has moved
            self.r.hdel(keys.train_car(car.member), "refetch")
            car.parent = ""
        ahead = view.ahead
        if len(ahead) >= view.window or (ahead and not ahead[-1].spec):
            self._wait()  # outside the window, or the car ahead has not built yet
            return None
        if ahead:
            parent = ahead[-1].spec
        elif car.parent and not car.on_car:
            # Built on main as fetched then: test, judge and push without fetching again at every step; if main has
            # moved, the compare-and-swap fails and the car rebuilds on main, fetched then.
            parent = car.parent
        elif car.on_car and car.parent and view.landed == car.parent:
            # The car ahead landed alone, as this car's parent: that is main now, with no fetch to ask. Were main
            # to move meanwhile (a human's push), the landing's compare-and-swap fails and the car fetches then.
            parent = car.parent
        else:
            parent = hooks.main()  # the car ahead has left (landed, or red): is the parent main now?
            if car.specs and (landed := hooks.landed()):  # landed by a batch that could not say so
                return self._carried(car, landed, "", hooks)
        car.on_car = bool(ahead)
        if parent != car.parent:
            self._rebuild(car, parent, hooks)
            return None
        if car.result is None:
            if not self._tests_now(car, view):
                self._wait()  # a car behind it tests a tree holding this one (a batch)
                return None
            # Judged against main's counts (alone, or testing a batch): main's run may go beside this one, unless
            # two runs at once would need more than the machine (they would only slow each other down).
            batch_tester = bool(ahead) and all(a.state == "" for a in ahead) and self._batching(view)
            if (not ahead or batch_tester) and not self._too_many(2):
                hooks.early_baseline(ahead[0].parent if ahead else parent)
            self._set_state(car, "running")
            car.result = self._test(car.spec, hooks)
            car.state = "done"
            self._publish(car)  # with what the run counted: a green car behind need not wait for this one's verdict
            return None  # the parent may have changed while the oracle ran: look again before judging
        batch = bool(ahead) and all(a.state == "" for a in ahead) and hooks.land_batch is not None
        batch = batch and self._batching(view)  # nothing ahead tested: this car's verdict covers them all
        if ahead and not batch:
            front = ahead[-1]
            if car.judged_on != front.spec:  # speculation: against the car ahead
                if front.counts is not None:  # which passed
                    self._judge(car, front.counts, hooks)
                elif front.result is not None and not oracle.judge(car.result, front.result):
                    # Green against what the car ahead's run counted, before the car ahead is judged: green for
                    # good once it is (its counts are what its run counted), and built again without it should it
                    # be red. So a car landing can carry those right behind it (`_land`). A red verdict waits for
                    # the car ahead's own: on a car ahead that is red itself, it says nothing about this one.
                    car.counts, car.state = car.result.counts(), "green"
                    self._publish(car)
                else:
                    self._wait()  # judged once the car ahead has a verdict of its own (or a run, for green)
                    return None
                car.judged_on = front.spec
            self._wait()  # lands once the cars ahead have
            return None
        base = ahead[0].parent if ahead else parent
        if car.judged_on != base:  # main's counts, measured (or recorded) on the base the line is built on
            self._judge_base(car, hooks.baseline(base), batch, hooks)
            car.judged_on = base
        if car.counts is None:
            self._wait()  # red on a tree holding untested cars ahead: the batch is bisected
            return None
        return self._land_batch(car, ahead, hooks) if batch else self._land(car, hooks)

    def _batching(self, view: View) -> bool:
        """Whether cars wait for one tester at a time. One answer for the whole train at a time, kept in Redis for
        MODE_SECONDS: were each car to decide alone (workers on machines of different load, or set differently),
        a batching car could wait for the car behind to test it as part of a batch while that car, speculating,
        waits for it to test itself. The first car to ask once the answer expired decides, by its own
        `train_batch`: always, never, or (auto) when speculation would ask more CPU than a machine has (see
        `_cpu_short`). The answer as of the car's view, read with it."""
        mode: str | bytes | None = view.mode
        if mode is None:
            short = self.mode == "auto" and self._cpu_short(view)
            mine = "batch" if self.mode == "batch" or short else "speculate"
            self.r.set(keys.TRAIN_MODE, mine, px=int(MODE_SECONDS * 1000), nx=True)
            mode = self.r.get(keys.TRAIN_MODE) or mine  # another car's answer, when it asked first
        return keys.text(mode) == "batch"

    def _cpu_short(self, view: View) -> bool:
        """Whether the window's cars, each running its full oracle at once, would need more than a machine's cores:
        as many cars as are in the window now, each wanting the share of its machine that the last full oracle
        runs did (their median; a run's CPU and its wait for a CPU, so runs that shared the cores when speculating
        still count what they wanted, not what they got). The oracle's own measure, not the machine's load: a
        sleeping or waiting oracle (one that calls a service, say) speculates on a busy machine, where the swarm's
        own short git and sandbox processes would push a load average past the cores; a compiling one batches on an
        idle machine. Nothing measured yet (a new swarm: its first window decides before any run has ended), the
        machine's load stands in: batch while less than one core is free by the 1-minute load average."""
        return self._too_many(len(view.ahead) + 1 + len(view.behind))

    def _too_many(self, runs: int) -> bool:
        """Whether `runs` full oracle runs at once would need more than this machine (see `_cpu_short`)."""
        shares = sorted(float(s) for s in self.r.lrange(keys.TRAIN_ORACLE_SHARE, 0, -1))
        if not shares:
            return _cores() - os.getloadavg()[0] < 1
        return runs * shares[len(shares) // 2] > 1

    @guarded
    def measured(self, result: oracle.OracleResult) -> None:
        """A full oracle run outside the train (main's, measured beside an agent): its share counts the same."""
        self._measured(result)

    def _measured(self, result: oracle.OracleResult) -> None:
        """Keep the share of its machine a full oracle run wanted, for `_cpu_short`. The first one measured ends
        the answer the load average gave meanwhile: the train decides again, by the oracle, at the next look."""
        if result.seconds <= 0:
            return
        share = (result.cpu_seconds + result.cpu_waited) / result.seconds / _cores()
        pipe = self.r.pipeline()
        pipe.lpush(keys.TRAIN_ORACLE_SHARE, f"{share:.4f}")
        pipe.ltrim(keys.TRAIN_ORACLE_SHARE, 0, SHARE_SAMPLES - 1)
        pipe.expire(keys.TRAIN_ORACLE_SHARE, VERDICT_TTL_SECONDS)  # an oracle unused for a week may have changed
        if pipe.execute()[0] == 1:
            self.r.delete(keys.TRAIN_MODE)

    def _tests_now(self, car: Car, view: View) -> bool:
        """Speculating, every car in the window runs its full oracle at once. Batching, one car runs at a time: the
        last in the window, or, below a red car whose culprit is not known yet, the one half-way to it."""
        if not self._batching(view):
            return True
        cars = [*view.ahead, Ahead(car.member, car.spec, None, car.parent, car.state), *view.behind]
        if any(c.state == "running" for c in cars):
            return False
        # A red verdict counts while it is about the line as it is (built on the car ahead of it now).
        red = next(
            (i for i, c in enumerate(cars) if c.state == "red" and (not i or c.parent == cars[i - 1].spec)), None
        )
        tester = len(cars) - 1 if red is None else (red - 1) // 2
        return tester == len(view.ahead)

    def _rebuild(self, car: Car, parent: str, hooks: Hooks) -> None:
        """The candidate on a new parent. Its full oracle's result stands when the tree is the same (the car ahead
        landed in a batch's merge commit, whose tree is that car's): a verdict is about a tree."""
        kept, old_tree = car.result, self.mirror.tree(car.spec) if car.spec and car.result is not None else ""
        car.parent, car.spec, car.result, car.counts, car.state = parent, "", None, None, ""
        car.judged_on = ""
        self._publish(car)  # those behind must not build on the old commit meanwhile
        car.spec = hooks.build(parent)
        car.specs.add(car.spec)
        if kept is not None and self.mirror.tree(car.spec) == old_tree:
            car.result, car.state = kept, "done"
        self._publish(car)

    def _test(self, commit: str, hooks: Hooks) -> oracle.OracleResult:
        """The full oracle's result on a commit, from the verdict cache when its tree already passed."""
        tree = self.mirror.tree(commit)
        cached = self.r.get(keys.verdict(tree, "full"))
        if cached:
            hooks.emit("oracle_cached", commit=commit, tree=tree)
            return oracle.OracleResult(**json.loads(cached))
        result = hooks.test(commit)
        self._measured(result)
        if result.ok:  # only green runs: a red one may be a flake, and is judged once anyway
            self.r.set(keys.verdict(tree, "full"), json.dumps(asdict(result)), ex=VERDICT_TTL_SECONDS)
        return result

    def _judge(self, car: Car, baseline: Counts | None, hooks: Hooks) -> None:
        assert car.result is not None
        reason = oracle.judge(car.result, baseline)
        if reason:
            self._shrink()
            raise AttemptRejected(Reason.ORACLE_RED if not car.result.ok else Reason.ORACLE_DROPPED, reason)
        car.counts, car.state = car.result.counts(), "green"
        self._publish(car)

    def _judge_base(self, car: Car, baseline: Counts | None, batch: bool, hooks: Hooks) -> None:
        """Judge a car with no tested car ahead against main's counts. Red alone, it is rejected; red with untested
        cars ahead, any of them may be the culprit: it stays, red, while the batch is bisected."""
        assert car.result is not None
        reason = oracle.judge(car.result, baseline)
        if not reason:
            car.counts, car.state = car.result.counts(), "green"
            self._publish(car)
        elif not batch:
            self._shrink()
            raise AttemptRejected(Reason.ORACLE_RED if not car.result.ok else Reason.ORACLE_DROPPED, reason)
        elif car.state != "red":
            hooks.emit("batch_red", commit=car.spec, reason=reason)
            self._set_state(car, "red")

    def _land(self, car: Car, hooks: Hooks) -> tuple[str, oracle.OracleResult | None] | None:
        """Land the car at the head, and with it, in the same push, the green cars right behind it (`_carry`)."""
        assert car.result is not None
        hooks.alive()
        run = self._carry(car, hooks)
        outcome = LandResult.CARRIED_LANDED
        if run and hooks.land_run is not None:
            outcome = hooks.land_run(car.parent, car.spec, [(c.member, c.spec) for c in run])
        if outcome is LandResult.CARRIED_LANDED:  # nothing to carry, or a car behind is stale: alone
            run, outcome = [], hooks.land(car.parent, car.spec)
        if outcome is LandResult.LANDED:
            last, counts = (run[-1].spec, run[-1].counts) if run else (car.spec, car.counts)
            try:  # it landed, whatever Redis can still be told: git is the truth
                if counts is not None:
                    hooks.landed_as(last, counts)
                self._grow()
                pipe = self.r.pipeline()  # one transaction: the car behind reads the line and main's commit at once
                for carried in run:  # they leave the line; one not told finds its landed ref after a fetch
                    self._told(pipe, carried.member, {"landed": carried.spec, "carried_by": car.member}, leave=True)
                if run:  # and so does this car: the car behind the last one would see it ahead, not what it built on
                    pipe.lrem(keys.TRAIN, 0, car.member)
                pipe.set(keys.TRAIN_LANDED, last, px=self.ttl_ms)  # before this car leaves, alone
                self._changed(pipe, car.member)
                pipe.execute()
            except (redis.RedisError, CoordinationError) as exc:
                log.warning("%s landed; the train could not be told: %s", car.member, exc)
            if run:
                tasks = " ".join(m.rsplit(":", 1)[0] for m in [car.member, *(c.member for c in run)])
                hooks.emit("run_landed", commit=last, tasks=tasks)
            return car.spec, car.result
        if outcome is LandResult.ALREADY_LANDED:
            hooks.main()
            if (landed := hooks.landed()) in car.specs:  # a batch landed it while it tried alone
                return self._carried(car, landed, "", hooks)
            raise AttemptRejected(Reason.ALREADY_LANDED, "the landed ref exists on origin")
        hooks.emit("cas_lost", onto=car.parent)  # main moved, or the car ahead did not land: rebuild on main
        car.parent, car.counts, car.judged_on = "", None, ""
        return None

    def _carry(self, car: Car, hooks: Hooks) -> list[Ahead]:
        """The cars right behind this one that can land in its push: each judged green on the one before it (as of
        now: judging this car may have taken a while), their commits one line on this car's (checked in git: the
        view in Redis may be a moment behind a rebuild), and every one's attempt still holding its task's lease.
        Every commit on that line is a tree the full oracle passed, so main may move past them in one step; each
        task's landed ref points to its own commit."""
        if hooks.land_run is None:
            return []
        run: list[Ahead] = []
        for other in self._view(car.member).behind:
            parent = run[-1].spec if run else car.spec
            if other.state != "green" or other.counts is None or not other.spec or other.parent != parent:
                break
            run.append(other)
        if not run:
            return []
        if not self.mirror.is_line(car.spec, [c.spec for c in run]) or not hooks.current([c.member for c in run]):
            return []
        return run

    def _land_batch(self, car: Car, ahead: list[Ahead], hooks: Hooks) -> tuple[str, oracle.OracleResult] | None:
        """Land this car and every untested car ahead with one merge commit, once their commits are one line on
        the base (the view in Redis is momentarily behind a rebuild otherwise) and their attempts hold their leases."""
        assert car.result is not None and car.counts is not None and hooks.land_batch is not None
        members = [(a.member, a.spec) for a in ahead] + [(car.member, car.spec)]
        base = ahead[0].parent
        if not self.mirror.is_line(base, [spec for _, spec in members]):
            self._wait()
            return None
        if not hooks.current([m for m, _ in members[:-1]]):
            self._wait()  # a car ahead lost its lease: it leaves, and this car rebuilds without it
            return None
        hooks.alive()
        outcome, merge = hooks.land_batch(base, car.spec, members, car.counts)
        if outcome is LandResult.LANDED:
            tree = self.mirror.tree(car.spec)
            try:  # they landed, whatever Redis can still be told: git is the truth
                self._grow()
                # The cars it landed leave the line at once (were one still ahead, a car behind would rebuild on it
                # without the others); each is told, and one not told finds its landed ref after a fetch.
                for member, _ in members[:-1]:
                    self._tell(member, {"landed": merge, "landed_tree": tree}, leave=True)
            except redis.RedisError as exc:
                log.warning("%s landed a batch; the train could not be told: %s", car.member, exc)
            hooks.emit("batch_landed", commit=merge, tasks=" ".join(m.rsplit(":", 1)[0] for m, _ in members))
            return car.spec, car.result
        if outcome is LandResult.ALREADY_LANDED:
            raise AttemptRejected(Reason.ALREADY_LANDED, "the landed ref exists on origin")
        hooks.emit("cas_lost", onto=base)  # main moved: the car at the head fetches it and the line rebuilds
        self._tell(ahead[0].member, {"refetch": "1"})
        car.counts, car.state, car.judged_on = None, "done", ""
        self._publish(car)
        self._wait()
        return None

    def _carried(self, car: Car, landed: str, tree: str, hooks: Hooks, by: str = ""
                 ) -> tuple[str, oracle.OracleResult | None]:  # fmt: skip
        """This car's task landed in another car's push: in a batch (its commit is on main's merged line, under the
        batch's merge commit; the full oracle's result is the batch's, its tree's cached verdict, when still known),
        or carried by the car ahead (`_land`: its commit on main's line, its own run's result)."""
        hooks.main()
        commit = hooks.landed()
        if commit not in car.specs:  # never trust Redis for a landing: git says which commit landed, if any
            raise AttemptRejected(Reason.ALREADY_LANDED, "another attempt landed this task first")
        if by:
            hooks.emit("landed_in_run", commit=commit, by=by.rsplit(":", 1)[0])
            return commit, car.result if commit == car.spec else None
        cached = self.r.get(keys.verdict(tree, "full")) if tree else None
        hooks.emit("landed_in_batch", commit=commit, merge=landed if tree else "")
        return commit, oracle.OracleResult(**json.loads(cached)) if cached else None

    # --- the train in Redis ---

    def _join(self, car: Car) -> None:
        pipe = self.r.pipeline()
        freed = "1" if car.freed else ""
        pipe.hset(
            keys.train_car(car.member), mapping={"spec": "", "counts": "", "parent": "", "state": "", "freed": freed}
        )
        pipe.pexpire(keys.train_car(car.member), self.ttl_ms)
        pipe.rpush(keys.TRAIN, car.member)
        self._changed(pipe, car.member)
        pipe.execute()

    def _leave(self, member: str) -> None:
        try:
            pipe = self.r.pipeline()
            pipe.lrem(keys.TRAIN, 0, member)
            pipe.delete(keys.train_car(member))
            self._changed(pipe, member)
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
        result = json.dumps(car.result.counts().to_dict()) if car.result is not None else ""
        fields = {"spec": car.spec, "counts": counts, "parent": car.parent, "state": car.state, "result": result}
        pipe = self.r.pipeline()
        pipe.hset(keys.train_car(car.member), mapping=dict(fields.items()))
        self._changed(pipe, car.member)
        pipe.execute()

    def _tell(self, member: str, fields: dict[str, str], leave: bool = False) -> None:
        """Write into another car's entry (and take it out of the line, with `leave`). Its expiry is set again in
        the same transaction: were the entry gone (its process died), the write would make one that never expires,
        and those behind would wait for it forever."""
        pipe = self.r.pipeline()
        self._told(pipe, member, fields, leave)
        pipe.execute()

    def _told(self, pipe: redis.client.Pipeline, member: str, fields: dict[str, str], leave: bool) -> None:
        if leave:
            pipe.lrem(keys.TRAIN, 0, member)
        pipe.hset(keys.train_car(member), mapping=dict(fields.items()))
        pipe.pexpire(keys.train_car(member), self.ttl_ms)
        self._changed(pipe, member)

    def _set_state(self, car: Car, state: str) -> None:
        car.state = state
        pipe = self.r.pipeline()
        pipe.hset(keys.train_car(car.member), "state", state)
        self._changed(pipe, car.member)
        pipe.execute()

    def _view(self, member: str) -> View:
        """The live cars ahead of this one, in order, those behind it inside the window, and its own entry; the
        entries of dead cars are dropped."""
        pipe = self.r.pipeline()
        pipe.lrange(keys.TRAIN, 0, -1)
        pipe.hgetall(keys.train_car(member))
        pipe.get(keys.TRAIN_WINDOW)
        pipe.get(keys.TRAIN_MODE)
        pipe.get(keys.TRAIN_LANDED)
        listed, own_fields, set_window, mode, landed = pipe.execute()
        members = [keys.text(m) for m in listed]
        own = {keys.text(k): keys.text(v) for k, v in own_fields.items()}
        window = min(self.max_window, int(set_window)) if set_window else self.max_window
        mode = keys.text(mode) if mode is not None else None
        if member not in members:
            if own.get("landed"):  # a batch landed it and took it out of the line
                return View([], [], own, window, mode, keys.text(landed or ""))
            self.r.rpush(keys.TRAIN, member)  # dropped by a car that thought this one dead: back in, at the end
            members.append(member)
        at = members.index(member)
        others = members[:at] + members[at + 1 : window]
        pipe = self.r.pipeline()
        for m in others:
            pipe.hgetall(keys.train_car(m))
        fields_of = pipe.execute()
        ahead: list[Ahead] = []
        behind: list[Ahead] = []
        for i, (m, fields) in enumerate(zip(others, fields_of, strict=True)):
            if not fields:
                self.r.lrem(keys.TRAIN, 0, m)
                continue
            values = {keys.text(k): keys.text(v) for k, v in fields.items()}
            counts = Counts.parse(json.loads(values["counts"])) if values.get("counts") else None
            result = Counts.parse(json.loads(values["result"])) if values.get("result") else None
            car = Ahead(m, values.get("spec", ""), counts, values.get("parent", ""), values.get("state", ""), result)
            (ahead if i < at else behind).append(car)
        return View(ahead, behind, own, window, mode, keys.text(landed or ""))

    def _grow(self) -> None:
        self.r.set(keys.TRAIN_WINDOW, min(self.max_window, self.window() + 1))

    def _shrink(self) -> None:
        self.r.set(keys.TRAIN_WINDOW, max(1, self.window() // 2))
