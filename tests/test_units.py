"""The systemd units take every setting from /etc/chatd/config.ini: a database
URL put there must not be overridden by the unit's own environment."""
import configparser
import os
import subprocess
import sys

import pytest

from helpers import ROOT

UNITS = [os.path.join(ROOT, "packaging", "chatd.service"),
         os.path.join(ROOT, "deploy", "chatd@.service")]


def unit_file(path):
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read(path)
    return parser


def service(path):
    return unit_file(path)["Service"]


@pytest.mark.parametrize("path", UNITS, ids=os.path.basename)
def test_the_unit_passes_only_the_config_file_and_the_instance_port(path):
    unit = service(path)
    assert "Environment" not in unit and "EnvironmentFile" not in unit, path
    args = unit["ExecStart"].split()[1:]
    assert args[:2] == ["--config", "${CONFIGURATION_DIRECTORY}/config.ini"]
    assert args[2:] in ([], ["--port", "%i"]), args


def test_a_database_url_in_the_config_file_is_the_one_used(tmp_path):
    """The file alone, as the unit starts chatd: its database is the one opened."""
    ini = tmp_path / "config.ini"
    ini.write_text("[database]\nurl = sqlite:///in-the-file.db\n[server]\nport = 0\n")
    proc = subprocess.Popen([sys.executable, "-m", "chatd", "--config", str(ini)],
                            cwd=tmp_path, env={**os.environ, "PYTHONPATH": ROOT},
                            stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:
            if "listening on" in line:
                break
    finally:
        proc.terminate()
        proc.wait(15)
    assert (tmp_path / "in-the-file.db").exists()


SOCKETS = {os.path.join(ROOT, "packaging", "chatd.service"):
           (os.path.join(ROOT, "packaging", "chatd.socket"), "chatd.socket", "127.0.0.1:8080"),
           os.path.join(ROOT, "deploy", "chatd@.service"):
           (os.path.join(ROOT, "deploy", "chatd@.socket"), "chatd@%i.socket", "127.0.0.1:%i")}


@pytest.mark.parametrize("path", UNITS, ids=os.path.basename)
def test_the_service_starts_with_its_socket_on_the_default_address(path):
    """Socket activation: the service requires its socket unit, which listens where
    chatd would (config.ini's default 127.0.0.1:8080; the instance's port) with a
    listen queue for a whole restart's clients."""
    socket_path, name, address = SOCKETS[path]
    unit = unit_file(path)["Unit"]
    assert name in unit["Requires"].split() and name in unit["After"].split()
    listen = unit_file(socket_path)["Socket"]
    assert listen["ListenStream"] == address
    assert int(listen["Backlog"]) >= 4096
