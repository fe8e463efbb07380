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
