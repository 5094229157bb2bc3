"""The agent's redial delays (agents/tunnel.py Backoff): full jitter under min(30 s, 1 s * 2^n), reset on connect."""

from __future__ import annotations

import random

from agents.tunnel import Backoff


def test_the_ceiling_doubles_from_one_second_up_to_thirty() -> None:
    backoff = Backoff(rng=random.Random(1))
    ceilings = []
    for _ in range(8):
        ceilings.append(backoff.ceiling())
        backoff.next_delay()
    assert ceilings == [1, 2, 4, 8, 16, 30, 30, 30]


def test_every_delay_lies_within_zero_and_the_ceiling() -> None:
    backoff = Backoff(rng=random.Random(7))
    for _ in range(200):
        ceiling = backoff.ceiling()
        assert 0 <= backoff.next_delay() <= ceiling
    assert backoff.ceiling() == 30  # no overflow after many failures


def test_delays_are_jittered_not_fixed() -> None:
    delays = set()
    for seed in range(20):
        backoff = Backoff(rng=random.Random(seed))
        for _ in range(5):
            backoff.next_delay()
        delays.add(round(backoff.next_delay(), 6))
    assert len(delays) > 10  # twenty agents that failed together do not redial together


def test_reset_starts_again_at_one_second() -> None:
    backoff = Backoff(rng=random.Random(3))
    for _ in range(10):
        backoff.next_delay()
    backoff.reset()
    assert backoff.ceiling() == 1
    assert backoff.next_delay() <= 1
