import pytest

import services
from helpers import GENEROUS, Chatd, Client


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database_url(request, tmp_path_factory):
    """Each module's tests run on the embedded default and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield "sqlite:///%s" % (tmp_path_factory.mktemp("db") / "chat.db")
        return
    with services.postgres_database() as url:
        yield url




@pytest.fixture(scope="module")
def server(database_url):
    chatd = Chatd(database_url, env=GENEROUS).start()
    yield chatd
    chatd.stop()


@pytest.fixture
def client(server):
    """A fresh registered, logged-in user."""
    return lambda **kwargs: Client(server, **kwargs)


# Markers by what a test needs, so `make test-fast` can leave out the slow,
# browser, cluster and PostgreSQL tests (`make test` runs everything).
SLOW_FILES = {"test_admin_large.py", "test_faults.py", "test_disk_full.py",
              "test_client_live.py", "test_client_examples.py", "test_upgrade.py"}
SLOW_TESTS = {"test_the_start_up_line_names_the_database_and_broker_without_a_password",
              "test_ten_failures_for_one_username_then_429_until_the_window_passes",
              "test_server_pings_and_drops_a_silent_peer",
              "test_slow_reader_is_cut_off_and_others_get_everything_in_order"}


def pytest_collection_modifyitems(items):
    for item in items:
        if "browser" in item.path.parts:
            item.add_marker(pytest.mark.browser)
        if item.path.name in SLOW_FILES or item.originalname in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)
        if {"cluster", "running", "redis_server", "redis"} & set(item.fixturenames) or \
                "cluster" in item.path.name:
            item.add_marker(pytest.mark.cluster)
        if "postgres" in item.nodeid or "pg_url" in item.fixturenames:
            item.add_marker(pytest.mark.postgres)
