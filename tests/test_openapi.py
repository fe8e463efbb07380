"""The API described (PROTOCOL section 10): GET /api/openapi.json, its routes, and
schemathesis fuzzing a live chatd from it."""
import os
import re
import subprocess
import sys

import bottle
import pytest
import requests
from openapi_spec_validator import validate

from chatd import openapi
from helpers import GENEROUS, Chatd, Client, assert_error

# What the fuzzing checks: no 500, every status and content type documented,
# every body in its documented schema.
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_schema_conformance")
LOGOUT = "/api/logout"
CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schemathesis.toml")


def operations(document):
    return {(method.upper(), path) for path, item in document["paths"].items()
            for method in item}


def test_document_is_served_without_auth_and_valid(server):
    r = requests.get(server.url + "/api/openapi.json", timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    document = r.json()
    validate(document)
    assert document["openapi"].startswith("3.1")
    bearer = document["components"]["securitySchemes"]["bearer"]
    assert (bearer["type"], bearer["scheme"]) == ("http", "bearer")
    assert all(path.startswith("/api/") for path in document["paths"])
    # chatd builds it from its routes and refuses to start while one lacks a
    # description: what it serves is every described route not still pending.
    described = {(method, openapi.openapi_path(rule))
                 for method, rule in openapi.ROUTES.keys() - openapi.PENDING}
    assert operations(document) == described


def test_errors_are_described_with_the_error_shape(server):
    document = requests.get(server.url + "/api/openapi.json", timeout=30).json()
    members = document["paths"]["/api/rooms/{room_id}/members"]
    assert [p["name"] for p in members["get"]["parameters"]] == ["room_id"]
    assert {"400", "401", "403", "404"} <= members["get"]["responses"].keys()
    assert document["paths"]["/api/login"]["post"]["security"] == []
    assert set(document["paths"]["/api/create-room"]["post"]["responses"]) == {
        "201", "400", "401", "403", "409", "413", "415", "429"}
    unauthorized = document["components"]["responses"]["unauthorized"]
    schema = unauthorized["content"]["application/json"]["schema"]
    assert schema["allOf"][0] == {"$ref": "#/components/schemas/Error"}


def test_pending_routes_are_described_validly_too():
    """PENDING routes are left out of the document, not out of the table."""
    validate(openapi.describe(sorted(openapi.ROUTES)))


def app_with(*routes):
    app = bottle.Bottle()
    for method, rule in routes:
        app.route(rule, method=method, callback=lambda **kwargs: None)
    return app


SERVED = sorted(openapi.ROUTES.keys() - openapi.PENDING)


def test_a_route_without_a_description_is_refused():
    app = app_with(*SERVED, ("GET", "/api/undescribed/<thing>"))
    with pytest.raises(openapi.RouteDrift, match="GET /api/undescribed/<thing>: served without"):
        openapi.document(app)


def test_a_description_without_a_route_is_refused():
    app = app_with(*SERVED[1:])
    first = "%s %s: described but not served" % SERVED[0]
    with pytest.raises(openapi.RouteDrift, match=re.escape(first)):
        openapi.document(app)


@pytest.mark.skipif(not openapi.PENDING, reason="nothing pending")
def test_a_pending_route_once_served_is_refused_until_taken_off_pending():
    pending = min(openapi.PENDING)
    with pytest.raises(openapi.RouteDrift, match="still in PENDING"):
        openapi.document(app_with(*SERVED, pending))


def test_routes_outside_api_need_no_description():
    openapi.document(app_with(*SERVED, ("GET", "/healthz"), ("GET", "/static/<path:path>")))


# -- what fuzzing and probing found --------------------------------------------------
@pytest.mark.parametrize("method,path", [
    ("DELETE", "/api/rooms/%s/members/a%%00b"),
    ("PATCH", "/api/rooms/%s/members/a%%00b"),
    ("DELETE", "/api/rooms/%s/bans/a%%00b"),
])
def test_a_username_parameter_holding_nul_names_no_user(client, method, path):
    """Was a 500 on PostgreSQL (its text cannot hold NUL): now the unknown user's 404."""
    owner = client()
    room = owner.create_room()
    r = requests.request(method, owner.server.url + path % room, json={"role": "member"},
                         headers=owner.headers(), timeout=30)
    assert_error(r, 404, "not_found")


# -- schemathesis against a live chatd ----------------------------------------------
@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory):
    """A chatd on SQLite and the users fuzzing it. The document's examples name
    room_1 (the fuzzer's, alice a member) and room_2 (alice's public room); the
    leaver's token is the one logout fuzzing ends."""
    chatd = Chatd("sqlite:///%s" % (tmp_path_factory.mktemp("fuzz") / "chat.db"),
                  env=GENEROUS).start()
    fuzzer, alice = Client(chatd, username="fuzzer"), Client(chatd, username="alice")
    assert fuzzer.create_room("fuzz room") == "room_1"
    assert fuzzer.post("/api/rooms/room_1/members", {"username": "alice"}).status_code == 200
    assert alice.create_room("lobby") == "room_2"
    yield chatd, fuzzer.token, Client(chatd).token
    chatd.stop()


def schemathesis(url, token, workdir, *args):
    """`st run` on the document chatd serves: deterministic, 25 examples an operation."""
    cmd = [sys.executable, "-m", "schemathesis.cli", "--config-file", CONFIG, "run",
           url + "/api/openapi.json",
           "--url", url, "--checks", CHECKS, "--max-examples", "25",
           "--generation-deterministic", "--workers", "1",
           "--phases", "examples,coverage,fuzzing", "--request-timeout", "20",
           "--header", "Authorization: Bearer " + token, "--no-color", *args]
    done = subprocess.run(cmd, cwd=workdir, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "NO_COLOR": "1"})
    return done.returncode, done.stdout + done.stderr


@pytest.mark.slow
def test_schemathesis_finds_nothing(fuzzed, tmp_path):
    """Every operation but logout, with one login token (logout would end it)."""
    chatd, token, _ = fuzzed
    code, output = schemathesis(chatd.url, token, tmp_path, "--exclude-path", LOGOUT)
    assert code == 0, output + "\nchatd's log:\n" + chatd.log()[-5000:]


def test_schemathesis_finds_nothing_in_logout(fuzzed, tmp_path):
    chatd, _, leavers_token = fuzzed
    code, output = schemathesis(chatd.url, leavers_token, tmp_path, "--include-path", LOGOUT)
    assert code == 0, output + "\nchatd's log:\n" + chatd.log()[-5000:]
