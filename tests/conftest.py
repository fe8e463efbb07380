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
# Whole files are slow here; single tests that take two seconds or more carry
# @pytest.mark.slow where they are written.
SLOW_FILES = {"test_admin_large.py", "test_faults.py", "test_disk_full.py",
              "test_client_live.py", "test_client_examples.py", "test_upgrade.py"}


def pytest_collection_modifyitems(items):
    for item in items:
        if "browser" in item.path.parts:
            item.add_marker(pytest.mark.browser)
        if item.path.name in SLOW_FILES:
            item.add_marker(pytest.mark.slow)
        if {"cluster", "running", "redis_server", "redis"} & set(item.fixturenames) or \
                "cluster" in item.path.name:
            item.add_marker(pytest.mark.cluster)
        if "postgres" in item.nodeid or "pg_url" in item.fixturenames:
            item.add_marker(pytest.mark.postgres)
