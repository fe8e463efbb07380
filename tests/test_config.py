"""config.ini documents every setting; environment and flags override it."""
import os

from chatd import config
from helpers import ROOT


def test_config_ini_lists_every_setting_with_its_default():
    with open(os.path.join(ROOT, "config.ini"), encoding="utf-8") as f:
        assert f.read() == config.render_ini()


def test_environment_overrides_file_and_flags_override_both(tmp_path):
    path = tmp_path / "c.ini"
    path.write_text("[server]\nport = 9000\nhost = 0.0.0.0\n[limits]\nmessage_burst = 7\n")
    env = {"CHATD_SERVER_PORT": "9100", "CHATD_AUTH_OPEN_REGISTRATION": "false"}
    settings = config.load(str(path), environ=env, overrides={("server", "port"): "0"})
    assert settings.server.port == 0
    assert settings.server.host == "0.0.0.0"
    assert settings.limits.message_burst == 7
    assert settings.auth.open_registration is False
    assert settings.metrics.allowed_networks == ("127.0.0.0/8", "::1/128")


def test_invalid_value_names_the_setting():
    try:
        config.load(None, environ={"CHATD_WEBSOCKET_SEND_QUEUE": "lots"})
    except ValueError as exc:
        assert "[websocket] send_queue" in str(exc)
    else:
        raise AssertionError("accepted a non-integer")
