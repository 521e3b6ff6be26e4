"""`Counts`: what an oracle run passed, failed and skipped, in total and per area; one type for every use
(oracle results, main's baselines, attempt records, landings) and the no-drop rule between two of them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Counts:
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    areas: dict[str, Counts] = field(default_factory=dict)
    """Counts per area of the oracle (e.g. `lexer`), when it reports them."""

    @classmethod
    def parse(cls, data: Any) -> Counts:
        """Counts from an oracle summary or a stored record; anything malformed counts as zero."""
        if not isinstance(data, dict):
            return cls()
        areas = data.get("areas")
        return cls(
            passed=_int(data.get("passed")),
            failed=_int(data.get("failed")),
            skipped=_int(data.get("skipped")),
            areas={str(k): cls.parse(v) for k, v in areas.items()} if isinstance(areas, dict) else {},
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"passed": self.passed, "failed": self.failed, "skipped": self.skipped}
        if self.areas:
            out["areas"] = {name: area.to_dict() for name, area in sorted(self.areas.items())}
        return out

    def drop_from(self, baseline: Counts) -> str:
        """Why these counts fall short of `baseline` ("" when they do not): fewer passing, or more skipped, in total
        or in any area.

        The per-area check keeps an agent from trading a passing case in one area for a new one in another; a test
        skipped or ignored instead of fixed is a test weakened.
        """
        if self.passed < baseline.passed:
            return f"passing count dropped from {baseline.passed} on main to {self.passed}"
        dropped = [f"{name} {area.passed}->{self.area(name).passed}" for name, area in sorted(baseline.areas.items())
                   if self.area(name).passed < area.passed]  # fmt: skip
        if dropped:
            return f"passing count dropped in area(s) {', '.join(dropped)}"
        if self.skipped > baseline.skipped:
            return f"skipped count rose from {baseline.skipped} on main to {self.skipped}"
        rose = [f"{name} {baseline.area(name).skipped}->{area.skipped}" for name, area in sorted(self.areas.items())
                if area.skipped > baseline.area(name).skipped]  # fmt: skip
        return f"skipped count rose in area(s) {', '.join(rose)}" if rose else ""

    def area(self, name: str) -> Counts:
        """The counts of one area (zero when the oracle does not report it)."""
        return self.areas.get(name, Counts())


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0
