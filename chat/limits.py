"""Per-user rate limits kept in the cache (Redis when scaled out, so they hold across
processes)."""

import time

from django.core.cache import cache


def hit(key: str, limit: int, window: int) -> bool:
    """Count one event for `key`; False once more than `limit` fell in this window."""
    bucket = f"rate:{key}:{int(time.time() // window)}"
    cache.add(bucket, 0, timeout=window * 2)
    try:
        count = cache.incr(bucket)
    except ValueError:  # expired between add and incr
        cache.set(bucket, 1, timeout=window * 2)
        count = 1
    return count <= limit
