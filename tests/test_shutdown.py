"""SIGTERM with idle keep-alive HTTP connections open, as every browser keeps them."""
import time

import requests

from helpers import Chatd


def test_sigterm_does_not_wait_for_idle_keepalive_connections(tmp_path):
    chatd = Chatd("sqlite:///%s" % (tmp_path / "chat.db")).start()
    session = requests.Session()
    assert session.get(chatd.url + "/healthz").status_code == 200  # connection stays open
    started = time.monotonic()
    assert chatd.stop() == 0
    assert time.monotonic() - started < 3
