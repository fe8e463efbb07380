"""SIGTERM with idle keep-alive HTTP connections open, as every browser keeps them."""
import requests

from helpers import Chatd


def test_sigterm_does_not_wait_for_idle_keepalive_connections(tmp_path):
    # With a 60 s shutdown timeout, a chatd that waited for the idle connection
    # would still be running when stop() gives up after 15 s and kills it (-9).
    chatd = Chatd("sqlite:///%s" % (tmp_path / "chat.db"),
                  env={"CHATD_SERVER_SHUTDOWN_TIMEOUT": "60"}).start()
    session = requests.Session()
    assert session.get(chatd.url + "/healthz").status_code == 200  # connection stays open
    assert chatd.stop(timeout=15) == 0
