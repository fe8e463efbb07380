"""The web client keeps its token out of URLs: proxies and servers log URLs."""
import json

import pytest

from .test_web import api_create_room, api_token, login, open_room, register

pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed (pip install playwright)")


def test_the_token_goes_in_the_first_frame_not_the_socket_url(chatd, pages):
    register(chatd, "alice")
    room_id = api_create_room(chatd, api_token(chatd, "alice"), "General")
    page = pages()
    urls, sent = [], []

    def watch(ws):
        urls.append(ws.url)
        ws.on("framesent", lambda payload: sent.append(json.loads(payload)))
    page.on("websocket", watch)
    login(page, chatd, "alice")
    open_room(page, room_id)
    token = page.evaluate("() => localStorage.getItem('chatd.token')")
    assert urls == ["%s/chat" % chatd.url.replace("http://", "ws://")]
    assert sent[0] == {"action": "auth", "token": token}
    assert {"action": "join", "roomId": room_id} in sent[1:]
    assert all("token" not in frame for frame in sent[1:])
