"""tests/helpers/harness.py's quiet window, ``assert_stays``: polled for the whole window, failing
at the first false value (a real clock, short windows)."""

from __future__ import annotations

import time

import pytest

from tests.helpers.harness import assert_stays

pytestmark = pytest.mark.unit  # pure: no process (tests/conftest.py checks)


def test_a_condition_that_holds_is_polled_to_the_end_of_the_window() -> None:
    polls: list[float] = []
    start = time.monotonic()
    assert_stays(lambda: polls.append(time.monotonic()) or True, 0.2, interval=0.02)
    assert time.monotonic() - start >= 0.2
    assert polls[0] - start < 0.02 and polls[-1] - start >= 0.2  # first at once, last at the end
    assert len(polls) >= 5


def test_the_first_false_fails_at_once_saying_when_and_what() -> None:
    start = time.monotonic()
    flipped = start + 0.05
    with pytest.raises(AssertionError) as info:
        assert_stays(
            lambda: time.monotonic() < flipped, 5.0, "nothing started", interval=0.01, show=lambda: ["x"]
        )
    assert time.monotonic() - start < 1.0  # not the whole window
    assert str(info.value).startswith("nothing started stopped holding 0.0")
    assert str(info.value).endswith("into a 5s window: ['x']")
