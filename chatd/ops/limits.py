"""Counting limits shared by the operations: the broker holds the counters, so
on Redis a limit holds across processes."""
from ..errors import RateLimited

HOUR = 3600  # seconds: the window of the hourly limits


def check_recent(chat, key, limit, window, message):
    """RateLimited while `key` has `limit` hits in the last `window` seconds.

    Retry-After is when the oldest hit leaves the window.
    """
    if chat.broker.count_recent(key, window) >= limit:
        retry = max(1, int(window - chat.broker.oldest_hit_age(key)) + 1)
        raise RateLimited(message, retry_after=retry)
