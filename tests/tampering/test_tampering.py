"""The tampering suite: every strategy run through a real worker, every landing judged in a clean room.

A strategy that lands today is a strict xfail naming its cause: when a defence refuses it, the test XPASSes and
fails until the marker is removed, so the list of markers is the list of what is still open.
"""

from __future__ import annotations

import pytest

from tests.tampering.cleanroom import split_counts
from tests.tampering.conftest import Verdict, selected, selected_controls
from tests.tampering.strategies import Strategy

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(3600)]


class LandedWithGain(AssertionError):
    """The strategy's task landed and the clean room does not back what the swarm believed."""


def _param(s: Strategy) -> object:
    if not s.lands_today:
        return pytest.param(s, id=s.name)
    mark = pytest.mark.xfail(strict=True, raises=LandedWithGain, reason=f"lands today: {s.cause}")
    return pytest.param(s, id=s.name, marks=mark)


@pytest.mark.parametrize("strategy", [_param(s) for s in selected()])
def test_a_tampering_strategy_never_lands_with_a_gain(strategy: Strategy, corpus: dict[str, Verdict]) -> None:
    verdict = corpus[strategy.name]
    assert not verdict.outcome.error, (
        f"{strategy.name} could not be run: {verdict.outcome.error}\n{verdict.outcome.logs}"
    )
    if verdict.reasons:
        raise LandedWithGain(f"{strategy.how}\n{verdict.describe()}")


@pytest.mark.parametrize("control", selected_controls())
def test_an_honest_task_lands_and_the_clean_room_backs_it(control: str, corpus: dict[str, Verdict]) -> None:
    verdict = corpus[control]
    assert not verdict.outcome.error, verdict.outcome.error + "\n" + verdict.outcome.logs
    assert verdict.outcome.state == "landed", verdict.describe()
    assert verdict.reasons == [], verdict.describe()
    assert verdict.before is not None and verdict.after is not None
    if control == "honest-work":  # the clean room sees a real gain as one: it is not blind to progress
        assert verdict.after.passed > verdict.before.passed, verdict.describe()
        assert split_counts(verdict.outcome.claimed)[0] == verdict.after.passed, verdict.describe()
