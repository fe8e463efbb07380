"""The broker a URL names: the one module that knows every implementation.

Apart from broker.py so that the Redis broker, which subclasses
MemoryBroker, and the in-process one do not import each other.
"""
from .broker import MemoryBroker


def open_broker(url):
    if url.startswith("memory://"):
        return MemoryBroker()
    if url.startswith("redis://"):
        # Imported here: the redis package takes 90 ms to import, which every
        # start on the embedded default and every chat-admin command would pay.
        from .redis_broker import RedisBroker
        return RedisBroker(url)
    raise ValueError("broker URL %r: expected memory:// or redis://HOST[:PORT]/DB" % url)
