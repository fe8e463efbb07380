"""Who a request comes from: the socket's peer, or a trusted proxy's X-Forwarded-For."""
import pytest

from chatd import http_api

TRUSTED = http_api.networks(["127.0.0.1", "10.0.0.0/8"])


@pytest.mark.parametrize("peer, trusted", [
    ("127.0.0.1", True),
    ("::ffff:127.0.0.1", True),       # an IPv4 peer of a dual-stack IPv6 listener
    ("::ffff:10.1.2.3", True),
    ("::1", False),
    ("203.0.113.5", False),
    ("::ffff:203.0.113.5", False),
    ("", False),
    ("not an address", False),
])
def test_a_peer_is_trusted_by_its_ipv4_address_however_written(peer, trusted):
    assert http_api.in_networks(peer, TRUSTED) is trusted


def test_a_mapped_proxy_address_forwards_the_client():
    environ = {"REMOTE_ADDR": "::ffff:127.0.0.1", "HTTP_X_FORWARDED_FOR": "198.51.100.7"}
    assert http_api.client_address(environ, TRUSTED) == "198.51.100.7"
