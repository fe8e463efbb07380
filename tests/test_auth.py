"""Password hashing runs off the event loop's thread, at low priority."""
import os
import threading

from chatd import auth


def _where():
    return threading.get_native_id(), os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def test_hashing_runs_on_the_pool_not_the_calling_thread():
    passwords = auth.Passwords(threads=2)
    thread, nice = passwords._run(_where)
    assert thread != threading.get_native_id()
    assert nice == 19


def test_hash_and_verify_without_a_pool():
    passwords = auth.Passwords(threads=0)
    stored = passwords.hash("correct horse")
    assert stored.startswith("$argon2id$")
    assert passwords.verify(stored, "correct horse")
    assert not passwords.verify(stored, "wrong horse")
    assert not passwords.verify(None, "correct horse")
