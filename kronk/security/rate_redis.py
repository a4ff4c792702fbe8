"""Rate counters in Redis, shared by every server replica behind a load balancer.

A Lua script reads, compares and increments in one atomic step on the Redis server,
then sets EXPIREAT past the end of the window, so counters clean themselves up.
"""

from __future__ import annotations

from typing import Any

import redis

from kronk.errors import ConfigError, SecurityError
from kronk.security.config import redact_url
from kronk.security.rate_store import Hit

_HIT_SCRIPT = """
local limit = tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current >= limit then
  return {0, current}
end
current = redis.call('INCR', KEYS[1])
redis.call('EXPIREAT', KEYS[1], tonumber(ARGV[2]))
return {1, current}
"""


class RedisRateStore:
    """Counters in the Redis server at `url` (redis://, rediss:// or unix://)."""

    def __init__(self, url: str, *, timeout_s: float = 2.0) -> None:
        self._where = redact_url(url)
        try:
            self._client: Any = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
            self._client.ping()
        except (redis.RedisError, ValueError) as exc:
            raise ConfigError(f"cannot reach the rate-limit store {self._where}: {exc}") from exc
        self._script = self._client.register_script(_HIT_SCRIPT)

    def hit(self, key: str, limit: int, expires_at: int) -> Hit:
        if limit <= 0:
            return Hit(False, 0)
        try:
            allowed, count = self._script(keys=[key], args=[limit, expires_at])
        except redis.RedisError as exc:
            raise SecurityError(f"rate-limit store {self._where} failed: {exc}", code="rate_store_unavailable") from exc
        return Hit(bool(allowed), int(count))

    def count(self, key: str) -> int:
        try:
            value = self._client.get(key)
        except redis.RedisError as exc:
            raise SecurityError(f"rate-limit store {self._where} failed: {exc}", code="rate_store_unavailable") from exc
        return int(value) if value is not None else 0

    def close(self) -> None:
        self._client.close()
