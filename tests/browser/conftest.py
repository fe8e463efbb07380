"""Fixtures for the web client's browser tests.

The tests drive Debian's Chromium (/usr/bin/chromium, or $CHROMIUM_PATH)
headless through Playwright for Python, against a real chatd process (the
shared tests/helpers.py Chatd) on a fresh SQLite database. No browser is
downloaded: when Chromium or Playwright is missing the tests are skipped
with a reason that says what to install.
"""
import os
from pathlib import Path

import pytest

from helpers import Chatd

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
PASSWORD = "correct-horse-battery"

# Settings for the server under test: registration on, and a send rate high
# enough that seeding history is not throttled.
SERVER_ENV = {
    "CHATD_AUTH_OPEN_REGISTRATION": "true",
    "CHATD_LIMITS_MESSAGES_PER_MINUTE": "60000",
    "CHATD_LIMITS_MESSAGE_BURST": "1000",
}


@pytest.fixture
def chatd(tmp_path):
    """A chatd of this test's own. `.stop()`/`.kill()` then `.start()` brings it
    back on the same port with the same database file."""
    server = Chatd("sqlite:///%s" % (tmp_path / "chat.db"), env=SERVER_ENV).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser():
    sync_api = pytest.importorskip(
        "playwright.sync_api",
        reason="Playwright for Python is not installed (pip install playwright)")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium, "
                    "or set CHROMIUM_PATH)")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        sync_api.expect.set_options(timeout=10_000)
        yield browser
        browser.close()


@pytest.fixture
def artifacts():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def pages(browser):
    """Opens pages in fresh browser contexts (one per user) and checks, at the
    end of the test, that none of them raised a JavaScript error or a dialog."""
    opened = []

    def open_page(viewport=(1100, 700)):
        context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
        page = context.new_page()
        page.js_errors = []
        page.dialogs = []
        page.on("pageerror", lambda exc: page.js_errors.append(str(exc)))
        page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
        opened.append((context, page))
        return page

    yield open_page
    problems = []
    for context, page in opened:
        problems += [f"JavaScript error: {e}" for e in page.js_errors]
        problems += [f"dialog opened: {d}" for d in page.dialogs]
        context.close()
    assert not problems, "\n".join(problems)
