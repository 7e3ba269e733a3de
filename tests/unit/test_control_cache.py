"""The data plane's memory of the control plane: the key cache (positive, negative, stale
grace, per-org eviction) and the circuit breaker, on a fake clock."""

from __future__ import annotations

from karta.dataplane.control.breaker import CircuitBreaker
from karta.dataplane.control.cache import GraceCache, KeyCache
from karta.dataplane.principal import Principal
from karta.testing import FakeClock
from tests.unit.control_plane_double import key


def principal(org: int) -> Principal:
    return Principal(kind="api_key", organization_id=org, scopes=frozenset({"write"}))


def test_a_cached_key_is_fresh_then_stale_then_gone(clock: FakeClock):
    cache = KeyCache(ttl=5, stale=300, clock=clock)
    cache.put(key(1), principal(1))
    hit = cache.get(key(1))
    assert hit is not None and hit.fresh and hit.value.organization_id == 1
    clock.advance(5)
    hit = cache.get(key(1))
    assert hit is not None and not hit.fresh, "past the TTL: usable only during an outage"
    clock.advance(295)
    assert cache.get(key(1)) is None


def test_keys_are_stored_as_digests_never_in_the_clear():
    cache = KeyCache()
    cache.put(key(1), principal(1))
    assert key(1) not in repr(cache.positive._entries)


def test_refused_keys_expire_within_five_seconds_and_never_evict_good_ones(clock: FakeClock):
    cache = KeyCache(max_entries=4, negative_ttl=60, clock=clock)
    cache.put(key(0), principal(1))
    for n in range(1, 100):  # a spray of bad keys
        cache.put_refused(key(n))
    assert cache.get(key(0)) is not None, "the negative cache is separate"
    assert len(cache.negative) == 4, "and bounded"
    assert cache.refused(key(99))
    clock.advance(5)
    assert not cache.refused(key(99)), "negative entries live at most 5 s"


def test_a_key_moves_between_the_caches():
    cache = KeyCache()
    cache.put_refused(key(1))
    cache.put(key(1), principal(1))
    assert not cache.refused(key(1)) and cache.get(key(1)) is not None
    cache.put_refused(key(1))
    assert cache.refused(key(1)) and cache.get(key(1)) is None


def test_the_positive_cache_is_bounded_least_recently_used_first():
    cache = KeyCache(max_entries=2)
    cache.put(key(1), principal(1))
    cache.put(key(2), principal(1))
    assert cache.get(key(1)) is not None  # key 1 is now the most recently used
    cache.put(key(3), principal(1))
    assert cache.get(key(2)) is None
    assert cache.get(key(1)) is not None and cache.get(key(3)) is not None


def test_evict_drops_one_orgs_keys_and_flushes_refusals_at_most_once_a_second(clock: FakeClock):
    cache = KeyCache(negative_flush_interval=1.0, clock=clock)
    cache.put(key(1), principal(1))
    cache.put(key(2), principal(1))
    cache.put(key(3), principal(2))
    cache.put_refused(key(9))
    assert cache.evict(1) == 2
    assert cache.get(key(1)) is None and cache.get(key(2)) is None
    assert cache.get(key(3)) is not None
    assert not cache.refused(key(9))

    cache.put_refused(key(9))
    clock.advance(0.5)
    assert cache.evict(2) == 1
    assert cache.refused(key(9)), "a second flush within the interval is skipped"
    clock.advance(0.5)
    cache.evict(3)
    assert not cache.refused(key(9))


def test_grace_cache_evicts_by_organization():
    cache: GraceCache[str, str] = GraceCache(ttl=5, stale=10, max_entries=10)
    cache.put("a", 1, "A")
    cache.put("b", 2, "B")
    assert cache.evict(1) == 1 and cache.get("a") is None and cache.get("b") is not None


def test_the_breaker_opens_after_consecutive_failures_and_any_answer_closes_it(clock: FakeClock):
    breaker = CircuitBreaker(threshold=3, window=2.0, clock=clock)
    breaker.failure()
    breaker.failure()
    breaker.success()  # an HTTP answer resets the count
    breaker.failure()
    breaker.failure()
    assert breaker.retry_after() is None
    breaker.failure()
    assert breaker.retry_after() == 2
    clock.advance(1.5)
    assert breaker.retry_after() == 1
    clock.advance(0.5)
    assert breaker.retry_after() is None, "after the window one call may probe"
    breaker.failure()
    assert breaker.retry_after() == 2, "a failed probe opens it again at once"
    breaker.success()
    assert breaker.retry_after() is None
