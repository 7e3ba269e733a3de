"""The Redis backend of `Coordinator`: leases are keys set with NX and a PX expiry, renewed and
released only by the holder of their value (compare-and-extend, compare-and-delete in Lua);
wake-ups go over one pub/sub channel that every replica listens to.

Every key and the channel start with the configured prefix, so deployments (or tests) can
share one Redis. The listener reconnects with backoff after any failure, and tells the event
log to resync each time it (re)subscribes: wake-ups sent while it was away are not replayed by
Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import RedisError

from karta.dataplane.cluster.coordinator import OnResync, OnWake, Wake

log = logging.getLogger(__name__)

# Renew each lease still held with its value; answer the keys that were lost.
EXTEND = """
local lost = {}
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[i + 1] then
    redis.call('PEXPIRE', key, ARGV[1])
  else
    table.insert(lost, key)
  end
end
return lost
"""
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
EXTEND_BATCH = 500
RECONNECT_MAX = 5.0


class RedisCoordinator:
    shared = True

    def __init__(self, url: str, prefix: str) -> None:
        self.prefix = prefix
        self.channel = f"{prefix}wake"
        retry = Retry(ExponentialBackoff(cap=1.0, base=0.05), 3)
        self._redis = Redis.from_url(url, decode_responses=True, retry=retry, socket_timeout=5)
        # The listener sees its failures (no silent reconnect), so it can resync after one.
        self._listen_client = Redis.from_url(
            url,
            decode_responses=True,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=5,
            client_name=self.channel,  # how `CLIENT LIST` names the listeners
        )
        self._extend = self._redis.register_script(EXTEND)
        self._release = self._redis.register_script(RELEASE)
        self._listener: asyncio.Task[None] | None = None

    async def start(self, on_wake: OnWake, on_resync: OnResync) -> None:
        self._listener = asyncio.create_task(self._listen(on_wake, on_resync))

    async def _listen(self, on_wake: OnWake, on_resync: OnResync) -> None:
        delay = 0.1
        while True:
            pubsub = self._listen_client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                on_resync()  # whatever was published while we were not subscribed
                delay = 0.1
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is not None and message.get("type") == "message":
                        try:
                            on_wake(Wake.decode(message["data"]))
                        except (ValueError, TypeError):
                            log.warning("ignoring a malformed wake-up on %s", self.channel)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.warning("redis wake-ups interrupted (%s); reconnecting", type(exc).__name__)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        await self._listen_client.aclose()
        await self._redis.aclose()

    async def ping(self) -> str | None:
        try:
            await self._redis.ping()
        except (RedisError, OSError) as exc:
            return f"{type(exc).__name__}: {exc}"
        return None

    async def publish(self, wakes: list[Wake]) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for wake in wakes:
                pipe.publish(self.channel, wake.encoded)
            await pipe.execute()

    async def acquire(self, key: str, value: str, ttl: float) -> bool:
        return bool(await self._redis.set(key, value, nx=True, px=_ms(ttl)))

    async def extend(self, leases: dict[str, str], ttl: float) -> set[str]:
        items = list(leases.items())
        lost: set[str] = set()
        for start in range(0, len(items), EXTEND_BATCH):
            batch = items[start : start + EXTEND_BATCH]
            keys = [key for key, _ in batch]
            answer = await self._extend(keys=keys, args=[_ms(ttl), *(v for _, v in batch)])
            lost.update(answer)
        return lost

    async def release(self, key: str, value: str) -> None:
        await self._release(keys=[key], args=[value])

    async def holders(self, keys: list[str]) -> list[str | None]:
        if not keys:
            return []
        return [None if v is None else str(v) for v in await self._redis.mget(keys)]


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))
