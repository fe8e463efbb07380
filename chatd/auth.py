"""Passwords (argon2id, hashed off the gevent hub) and opaque tokens."""
import functools
import hashlib
import os
import secrets
import threading

import argon2

# OWASP's argon2id baseline: 19 MiB, 2 passes, 1 lane. Slow enough for an
# attacker, cheap enough that a burst of logins does not starve the server.
_HASHER = argon2.PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)


@functools.lru_cache(maxsize=None)
def _dummy_hash():
    """What an unknown user's password is checked against, so it costs the same time.

    Made on the first verify, not at import: `chat-admin --help` pays for no hash.
    """
    return _HASHER.hash("chatd-dummy-password")


class Passwords:
    """Hashing and verifying; in chatd the work runs on a small thread pool."""

    def __init__(self, threads=0):
        self._pool = None
        if threads:
            from gevent.threadpool import ThreadPool
            self._pool = ThreadPool(threads)

    def _run(self, fn, *args):
        # `is not None`: an idle gevent ThreadPool has len() 0 and is falsy,
        # which once made every hash run on the event loop itself.
        if self._pool is None:
            return fn(*args)
        return self._pool.apply(_at_low_priority, (fn,) + args)

    def hash(self, password):
        return self._run(_HASHER.hash, password)

    def verify(self, stored, password):
        """True if the password matches; an absent hash costs the same time."""
        return self._run(_verify, stored, password)


def _at_low_priority(fn, *args):
    # Hashing threads share the core with the event loop: at nice 19 the
    # kernel runs the loop first, so a burst of logins does not delay chat.
    os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    return fn(*args)


def _verify(stored, password):
    try:
        return _HASHER.verify(stored or _dummy_hash(), password) and stored is not None
    except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
        return False


def new_token():
    """(token for the client, hash for the database)."""
    token = secrets.token_urlsafe(32)
    return token, token_hash(token)


def token_hash(token):
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
