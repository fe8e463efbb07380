"""The broker a URL names: the one module that knows every implementation.

Apart from broker.py so that the Redis broker, which subclasses
MemoryBroker, and the in-process one do not import each other.
"""
from .broker import MemoryBroker
from .redis_broker import RedisBroker


def open_broker(url):
    if url.startswith("memory://"):
        return MemoryBroker()
    if url.startswith("redis://"):
        return RedisBroker(url)
    raise ValueError("broker URL %r: expected memory:// or redis://HOST[:PORT]/DB" % url)
