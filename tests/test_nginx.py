"""The shipped nginx site (deploy/nginx-chatd.conf) in front of a real chatd.

Runs the site file as shipped, only moved to a free port, this chatd and
temporary log files; skipped where nginx is not installed.
"""
import os
import re
import shutil
import socket
import subprocess

import pytest

from helpers import ROOT, Chatd, Client, wait_for

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
SITE = os.path.join(ROOT, "deploy", "nginx-chatd.conf")

pytestmark = pytest.mark.skipif(not os.path.exists(NGINX), reason="nginx is not installed")


def main_config(folder, site):
    """An nginx.conf as Debian's: a combined access log for the whole http block."""
    return """
daemon off;
pid {folder}/nginx.pid;
error_log {folder}/error.log;
events {{}}
http {{
    access_log {folder}/default.access.log;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    include {site};
}}
""".format(folder=folder, site=site)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Through:
    """What helpers.Client needs of a server: its URLs, here nginx's."""

    def __init__(self, port):
        self.url = "http://127.0.0.1:%d" % port
        self.ws_url = "ws://127.0.0.1:%d/chat" % port


def test_the_shipped_site_passes_nginx_t(tmp_path):
    conf = tmp_path / "nginx.conf"
    conf.write_text(main_config(tmp_path, SITE))
    checked = subprocess.run([NGINX, "-t", "-c", str(conf)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr


@pytest.fixture
def proxied(tmp_path):
    """(chatd, nginx's URLs, the folder of nginx's logs)."""
    server = Chatd("sqlite:///%s" % (tmp_path / "chat.db")).start()
    port = free_port()
    text = open(SITE).read()
    text = re.sub(r"(?m)^\s*listen \[::\]:80;\n", "", text)
    text = text.replace("listen 80;", "listen 127.0.0.1:%d;" % port)
    text = re.sub(r"(?m)^(\s*server 127\.0\.0\.1:)808[123]\b",
                  lambda m: m.group(1) + str(server.port), text)
    text = text.replace("/var/log/nginx/", "%s/" % tmp_path)
    site = tmp_path / "site.conf"
    site.write_text(text)
    conf = tmp_path / "nginx.conf"
    conf.write_text(main_config(tmp_path, site))
    nginx = subprocess.Popen([NGINX, "-c", str(conf)], stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: _answers(port) or nginx.poll() is not None, 10)
        assert nginx.poll() is None, nginx.stderr.read()
        yield server, Through(port), tmp_path
    finally:
        nginx.terminate()
        nginx.wait(10)
        server.stop()


def _answers(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def test_no_token_in_the_access_log(proxied):
    server, front, logs = proxied
    alice = Client(front)
    room = alice.create_room()
    sock = alice.ws(join=room)  # ?token=... in the upgrade URL, as scripts may do
    sock.say(room, "through nginx")
    sock.expect("new-message", message="through nginx")
    sock.close()
    assert alice.get("/api/rooms", params={"token": alice.token}).status_code == 200

    def logged():
        return "".join(open(p).read() for p in logs.glob("*.log"))
    # nginx writes a request's line after its answer has gone: wait for both.
    assert wait_for(lambda: '"GET /chat HTTP/1.1" 101' in logged() and
                    '"GET /api/rooms HTTP/1.1" 200' in logged(), 10), logged()
    assert alice.token not in logged()
    assert os.path.getsize(logs / "default.access.log") == 0  # the site's own log replaces it
