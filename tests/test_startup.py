"""chatd as a process: start-up failures in one line, the start-up line, --version,
JSON logs and the process metrics. Every test runs a real `python -m chatd`."""
import json
import os
import re
import socket
import subprocess
import sys

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

import services
from helpers import ROOT, Chatd, Client


def chatd_fails(*args, env=None):
    """Run chatd expecting it not to start: (exit code, stderr lines)."""
    result = subprocess.run([sys.executable, "-m", "chatd", *args], cwd=ROOT,
                            env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=60)
    return result.returncode, result.stderr.splitlines()


def one_error(lines, *words):
    """Exactly one ERROR line, no traceback; it names every word."""
    assert not any("Traceback" in line for line in lines), "\n".join(lines)
    errors = [line for line in lines if " ERROR " in line]
    assert len(errors) == 1, "\n".join(lines)
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


def test_an_unknown_postgresql_database_is_one_line_naming_it():
    code, lines = chatd_fails("--port", "0", "--database",
                              "postgresql://postgres:hunter2@127.0.0.1/nope_db")
    assert code == 1
    line = one_error(lines, "cannot open the database", "postgresql://postgres:***@127.0.0.1/nope_db",
                     "nope_db")
    assert "hunter2" not in "\n".join(lines)
    assert len(lines) == 1, lines
    assert line


def test_an_sqlite_file_in_a_missing_folder_is_one_line_naming_the_path(tmp_path):
    path = tmp_path / "nodir" / "x.db"
    code, lines = chatd_fails("--port", "0", "--database", "sqlite:///%s" % path)
    assert code == 1
    one_error(lines, str(path), "folder %s does not exist" % path.parent)
    assert len(lines) == 1, lines
    # A relative URL names the absolute path it tried.
    code, lines = chatd_fails("--port", "0", "--database", "sqlite:///nodir-%d/x.db" % os.getpid())
    assert code == 1
    one_error(lines, os.path.join(ROOT, "nodir-%d" % os.getpid(), "x.db"))


def test_a_port_in_use_is_one_line_naming_the_address(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, lines = chatd_fails("--port", str(port), "--database",
                                  "sqlite:///%s" % (tmp_path / "chat.db"))
    assert code == 1
    one_error(lines, "cannot listen on 127.0.0.1:%d" % port, "address already in use")


def test_version_comes_from_the_package():
    from chatd import __version__
    out = subprocess.run([sys.executable, "-m", "chatd", "--version"], cwd=ROOT,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0
    assert re.fullmatch(r"chatd \d+\.\d+\.\d+\n", out.stdout)
    assert out.stdout == "chatd %s\n" % __version__
    setup = subprocess.run([sys.executable, "setup.py", "--version"], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
    assert setup.stdout.strip().splitlines()[-1] == __version__


@pytest.mark.slow
def test_the_start_up_line_names_the_database_and_broker_without_a_password(tmp_path):
    redis = services.RedisServer(tmp_path).start()
    try:
        with services.postgres_database() as url:
            secret = url.replace("postgresql://postgres@", "postgresql://postgres:hunter2@")
            assert secret != url  # a trust login: the password is ignored, and must not show
            chatd = Chatd(secret, broker=redis.url).start()
            chatd.stop()
    finally:
        redis.stop()
    line = next(line for line in chatd.lines if "database " in line)
    assert "postgresql://postgres:***@" in line and "hunter2" not in chatd.log()
    assert "broker %s" % redis.url in line
    sqlite = Chatd("sqlite:///%s" % (tmp_path / "s.db")).start()
    sqlite.stop()
    assert "database sqlite:///%s (file %s), broker memory://" % (
        tmp_path / "s.db", tmp_path / "s.db") in sqlite.log()


def test_json_log_format_is_one_object_per_line(tmp_path):
    chatd = Chatd("sqlite:///%s" % (tmp_path / "j.db"), env={"CHATD_LOG_FORMAT": "json"}).start()
    try:
        Client(chatd)
        requests.get(chatd.url + "/api/nope", timeout=5)
    finally:
        chatd.stop()
    entries = [json.loads(line) for line in chatd.lines]
    for entry in entries:
        assert {"time", "level", "logger", "message"} <= set(entry), entry
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["time"])
    messages = [e["message"] for e in entries]
    assert any(m.startswith("listening on http://") for m in messages)
    assert any("/api/nope 404" in m for m in messages)
    assert {"chatd", "chatd.http"} <= {e["logger"] for e in entries}
    code, lines = chatd_fails("--port", "0", env={"CHATD_LOG_FORMAT": "yaml"})
    assert code == 2 and "[log] format" in lines[-1]


def test_metrics_show_the_process_cpu_memory_and_open_files(tmp_path):
    chatd = Chatd("sqlite:///%s" % (tmp_path / "m.db")).start()
    try:
        text = requests.get(chatd.url + "/metrics", timeout=5).text
    finally:
        chatd.stop()
    names = {f.name for f in text_string_to_metric_families(text)}
    assert {"chatd_process_cpu_seconds", "chatd_process_resident_memory_bytes",
            "chatd_process_open_fds", "chatd_process_max_fds"} <= names, sorted(names)
