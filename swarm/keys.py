"""Every Redis key the swarm uses. Nothing in Redis is the truth about work: git is (see repo.py)."""

PREFIX = "swarm"

LEASE_PATTERN = f"{PREFIX}:lease:*"
MERGE_LOCK = f"{PREFIX}:lock:merge"
MERGE_FENCE = f"{PREFIX}:fence:lock:merge"
DISPATCH_LOCK = f"{PREFIX}:lock:dispatch"
DISPATCH_FENCE = f"{PREFIX}:fence:lock:dispatch"
ACTIVE = f"{PREFIX}:active"
"""Hash task -> attempt JSON of attempts in flight; the reaper finds lost attempts here."""
EVENTS = f"{PREFIX}:events"
"""Stream of every task-state change."""
LANDINGS = f"{PREFIX}:landings"
"""List of recent landings, newest first."""
METRICS = f"{PREFIX}:metrics"
"""Hash of counters (attempts, landed, rejected:<reason>, ...)."""
SLOT_PATTERN = f"{PREFIX}:slot:*"
TRAIN = f"{PREFIX}:train"
"""List of the merge train's cars (task:fence) in landing order (train.py)."""
TRAIN_WINDOW = f"{PREFIX}:train:window"
"""How many cars of the train speculate at once now: grows on a landing, halves on a red car."""
TRAIN_MODE = f"{PREFIX}:train:mode"
"""How the whole train spends oracle CPU for the next few seconds: `batch` or `speculate` (train.py)."""
TRAIN_LANDED = f"{PREFIX}:train:landed"
"""The commit the last car to land alone moved main to (train.py): a car built on it lands without a fetch."""
TRAIN_CHANGED = f"{PREFIX}:train:changed"
"""Pub/sub channel: a car's member each time it changes the train (joins, builds, is judged, lands, leaves), so the
cars waiting on it look again at once rather than at their next poll (train.py)."""
TRAIN_ORACLE_SHARE = f"{PREFIX}:train:oracle-share"
"""List of the last full oracle runs' shares of their machine (CPU seconds / wall seconds / cores), newest first."""
LEDGER_LOADED = f"{PREFIX}:ledger:loaded"
"""Set once Redis holds what origin's ledger knows (ledger.py); gone exactly when Redis lost its data."""
LEDGER_SPOOL = f"{PREFIX}:ledger:spool"
"""List of ledger records origin could not take yet (JSON), written out by the reaper."""
LEDGER_LOADING = f"{PREFIX}:ledger:loading"
"""Lock of the one process rebuilding Redis from the ledger."""
LEDGER_LOADING_FENCE = f"{PREFIX}:fence:ledger:loading"


def lease(task_id: str) -> str:
    return f"{PREFIX}:lease:{task_id}"


def task_of_lease(key: str) -> str:
    return key.removeprefix(f"{PREFIX}:lease:")


def slot(vendor: str, name: str) -> str:
    """A live worker slot of a vendor (JSON: host, pid, paused); expires unless its worker renews it (slots.py)."""
    return f"{PREFIX}:slot:{vendor}:{name}"


def worker_name(node: str) -> str:
    """A worker name's holder (JSON: node, host, pid), claimed at start-up and renewed with its slots (slots.py)."""
    return f"{PREFIX}:worker-name:{node}"


def fence(task_id: str) -> str:
    return f"{PREFIX}:fence:{task_id}"


def queued(task_id: str) -> str:
    """Marker that a message for this task is in a queue, so dispatch does not enqueue it twice (see marks.py)."""
    return f"{PREFIX}:queued:{task_id}"


QUEUED_PATTERN = queued("*")


def broker_queue(vendor: str) -> str:
    """The list in which Celery's Redis transport keeps the messages waiting on a vendor's queue (its name)."""
    return vendor


def task_of_queued(key: str) -> str:
    return key.removeprefix(queued(""))


def budget(task_id: str) -> str:
    """Hash of the task's budget (see book.py): `used` attempts that were its fault since the last retry, `runs`
    ever started (never reset), `streak` of runs in a row that were not its fault."""
    return f"{PREFIX}:budget:{task_id}"


def backoff(task_id: str) -> str:
    """Present while the task waits before its next run, after runs in a row that were not its fault."""
    return f"{PREFIX}:backoff:{task_id}"


def failed(task_id: str) -> str:
    """JSON of the task's failure once its budget is used up; `swarm retry` removes it."""
    return f"{PREFIX}:failed:{task_id}"


FAILED_PATTERN = failed("*")


def task_of_failed(key: str) -> str:
    return key.removeprefix(failed(""))


def history(task_id: str) -> str:
    """List of the task's attempt records (JSON), oldest first."""
    return f"{PREFIX}:history:{task_id}"


JUDGE_SEED = f"{PREFIX}:judge-seed"
"""The secret seed of the judge's unseen variants, made once for the swarm (unless `judge_secret` is set)."""


def oracle(commit: str) -> str:
    """Cached full-oracle counts of a commit of main."""
    return f"{PREFIX}:oracle:{commit}"


def measuring(commit: str) -> str:
    """Set while one attempt measures main's counts beside its agent (the others do not run it again at once)."""
    return f"{PREFIX}:measuring:{commit}"


def train_car(member: str) -> str:
    """Hash {spec, counts} of one car of the train; expires when its process stops renewing it."""
    return f"{PREFIX}:train:car:{member}"


def verdict(tree: str, tier: str) -> str:
    """A green oracle result of a tree: the same tree is not judged again."""
    return f"{PREFIX}:verdict:{tier}:{tree}"


def text(value: bytes | str) -> str:
    """Keys and values are UTF-8 text (the doors' clients decode; a raw client answers in bytes)."""
    return value.decode() if isinstance(value, bytes) else value


# --- vendor quota: cooldowns, auth errors and the spend ledger (see quota.py) ---


def cooldown(vendor: str) -> str:
    """JSON {until, reason, streak} of a vendor that hit its rate limit; expires when the cooldown ends."""
    return f"{PREFIX}:cooldown:{vendor}"


def cooldown_streak(vendor: str) -> str:
    """Rate limits of a vendor in a row (the exponent of its backoff); reset by a run that is not rate limited."""
    return f"{PREFIX}:cooldown-streak:{vendor}"


def auth_error(vendor: str) -> str:
    """JSON {message, at} of a vendor whose CLI could not authenticate; expires so a fixed key is tried again."""
    return f"{PREFIX}:auth-error:{vendor}"


def vendor_probe(vendor: str) -> str:
    """Set while a parked vendor still owes a passing probe (a trivial run) before real tasks go to it again."""
    return f"{PREFIX}:vendor-probe:{vendor}"


def spend_day(vendor: str, day: str) -> str:
    """Hash of a vendor's tokens, cost and attempts on one UTC day (YYYY-MM-DD)."""
    return f"{PREFIX}:spend:{vendor}:{day}"


def spend_total(vendor: str) -> str:
    """Hash of a vendor's tokens, cost and attempts since the swarm began."""
    return f"{PREFIX}:spend-total:{vendor}"


def spend_task(task_id: str) -> str:
    """Hash of a task's tokens, cost and attempts over all its attempts (and cost per vendor)."""
    return f"{PREFIX}:spend-task:{task_id}"


# --- controls (see controls.py) ---


def cancel(task_id: str) -> str:
    """Marker that `swarm cancel` took the task's lease: its attempt ends without using up its budget."""
    return f"{PREFIX}:cancel:{task_id}"


def paused(vendor: str) -> str:
    """Marker that `swarm pause` stopped new attempts on a vendor, until `swarm resume`."""
    return f"{PREFIX}:paused:{vendor}"
