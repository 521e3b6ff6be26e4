"""Oracle baselines: main's full-oracle counts per commit, measured once and shared by every worker (and the
judge's secret seed, the same for every worker).

Only a green run is ever stored: a red run's counts would disable the no-drop check for that commit.
"""

from __future__ import annotations

import json
import logging
import secrets

from swarm import keys
from swarm.coordination import Door, guarded
from swarm.counts import Counts

log = logging.getLogger(__name__)


class Baselines(Door):
    """The only holder of the per-commit oracle counts."""

    @guarded
    def get(self, commit: str) -> Counts | None:
        raw = self.r.get(keys.oracle(commit))
        return Counts.parse(json.loads(raw)) if raw else None

    @guarded
    def get_many(self, commits: list[str]) -> dict[str, Counts]:
        """The counts known of each commit, in one round trip (unknown ones left out)."""
        raws = self.r.mget([keys.oracle(c) for c in commits]) if commits else []
        return {c: Counts.parse(json.loads(raw)) for c, raw in zip(commits, raws, strict=True) if raw}

    @guarded
    def judge_seed(self) -> str:
        """The swarm-wide secret seed of the judge's unseen variants: made once, the same for every worker."""
        self.r.set(keys.JUDGE_SEED, secrets.token_hex(16), nx=True)
        return keys.text(self.r.get(keys.JUDGE_SEED) or "")

    @guarded
    def claim(self, commit: str, seconds: float) -> bool:
        """Whether this caller is the one to measure `commit` now: none other claimed it within `seconds` (a run
        that ended red keeps its claim that long, so a red main is not measured beside every agent)."""
        return bool(self.r.set(keys.measuring(commit), "1", nx=True, px=int(seconds * 1000)))

    @guarded
    def unclaim(self, commit: str) -> None:
        """A measurement stopped before its end: another may take it up."""
        self.r.delete(keys.measuring(commit))

    @guarded
    def put(self, commit: str, counts: Counts) -> None:
        """Remember the counts of a green full-oracle run on `commit`."""
        self.r.set(keys.oracle(commit), json.dumps({**counts.to_dict(), "commit": commit, "ok": True}))
