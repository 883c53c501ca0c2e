"""Rate-limit arithmetic: limits parse strictly, the N+1st hit in a window is refused with the seconds left,
a new window starts afresh, subjects do not share a bucket, and the bucket name never holds the subject."""

from __future__ import annotations

import pytest

from gateway.protocol.rate_limit import Limit, RateLimiter, parse_limit


class Counter:
    """Fixed windows, as the stores' count_hit."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, int], int] = {}

    async def __call__(self, name: str, window: float, now: float) -> int:
        slot = (name, int(now // window))
        self.counts[slot] = self.counts.get(slot, 0) + 1
        return self.counts[slot]


@pytest.mark.parametrize(("text", "expected"), [
    ("10/1m", Limit(10, 60.0)),
    ("3/15m", Limit(3, 900.0)),
    ("100/1h", Limit(100, 3600.0)),
    (" 5/30s ", Limit(5, 30.0)),
])
def test_parse_limit(text: str, expected: Limit) -> None:
    assert parse_limit(text) == expected


@pytest.mark.parametrize("text", ["", "10", "10/", "/1m", "0/1m", "10/0s", "-1/1m", "10/1d", "10/1.5m", "ten/1m",
                                  "10 / 1m", "1000000/1m", 10, None, True])
def test_parse_limit_refuses(text: object) -> None:
    assert parse_limit(text) is None


async def test_the_hit_after_the_limit_is_refused_until_the_window_ends() -> None:
    limiter = RateLimiter({"ciba_per_person": Limit(3, 600.0)}, b"k" * 32, Counter())
    now = 6000.0 + 100  # 100 s into a window
    for _ in range(3):
        assert (await limiter.check("ciba_per_person", "199003152387", now)).allowed
    refused = await limiter.check("ciba_per_person", "199003152387", now)
    assert not refused.allowed and refused.retry_after == 500
    assert (await limiter.check("ciba_per_person", "199003152387", 6600.0)).allowed  # the next window


async def test_subjects_and_limits_have_their_own_buckets() -> None:
    limiter = RateLimiter(
        {"ciba_per_person": Limit(1, 60.0), "poll_start_per_client": Limit(1, 60.0)}, b"k" * 32, Counter()
    )
    assert (await limiter.check("ciba_per_person", "199003152387", 0.0)).allowed
    assert (await limiter.check("ciba_per_person", "198602262397", 0.0)).allowed
    assert (await limiter.check("poll_start_per_client", "199003152387", 0.0)).allowed
    assert not (await limiter.check("ciba_per_person", "199003152387", 1.0)).allowed


async def test_a_limit_that_is_off_counts_nothing() -> None:
    counter = Counter()
    limiter = RateLimiter({}, b"k" * 32, counter)
    for _ in range(100):
        assert (await limiter.check("login_per_client", "192.0.2.1", 0.0)).allowed
    assert not counter.counts and not limiter.enabled("login_per_client")


def test_bucket_names_hold_no_subject_and_depend_on_the_key() -> None:
    one = RateLimiter({}, b"a" * 32, Counter()).bucket("ciba_per_person", "199003152387")
    other = RateLimiter({}, b"b" * 32, Counter()).bucket("ciba_per_person", "199003152387")
    assert "199003152387" not in one and one != other
    assert one.startswith("ciba_per_person:")
