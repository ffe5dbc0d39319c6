"""service.toml: defaults, values, secrets only from files or the environment."""

from __future__ import annotations

import pytest

from dingvault.service.config import ServiceConfigError, load_service_config


def test_missing_file_means_defaults(tmp_path):
    c = load_service_config(tmp_path / "service.toml")
    assert c.timezone == "Asia/Macau" and c.incremental_cron == "0 0 * * *" and c.full_cron == "0 1 * * sun"
    assert c.dingtalk_alert is None and c.email_alert is None


def test_values_and_secret_files(tmp_path, monkeypatch):
    (tmp_path / "robot").write_text("SECabc\n")
    (tmp_path / "smtp").write_text("pw\n")
    path = tmp_path / "service.toml"
    path.write_text(
        f"""
jitter_seconds = 60
replica_lag_seconds = 120
corp_id = "dingcorp"
[alerts.dingtalk]
webhook = "https://oapi.dingtalk.com/robot/send?access_token=t"
secret_file = "{tmp_path / 'robot'}"
[alerts.email]
host = "127.0.0.1"
sender = "a@b"
to = ["c@d"]
password_file = "{tmp_path / 'smtp'}"
username = "u"
"""
    )
    c = load_service_config(path)
    assert c.jitter_seconds == 60.0 and c.replica_lag_seconds == 120.0 and c.extra["corp_id"] == "dingcorp"
    assert c.dingtalk_alert.secret == "SECabc" and c.email_alert.password == "pw"
    assert "SECabc" not in repr(c) and "pw'" not in repr(c.email_alert)


@pytest.mark.parametrize(
    "text, message",
    [
        ('[alerts.dingtalk]\nwebhook = "https://x"\nsecret = "SEC"\n', "must not be written"),
        ('[alerts.email]\nhost = "h"\nsender = "a"\nto = ["b"]\npassword = "p"\n', "must not be written"),
        ('full_cron = "not a cron"\n', "full_cron"),
        ('listen = "nowhere"\n', "listen"),
        ('jitter_seconds = "soon"\n', "jitter_seconds"),
        ("[alerts.email]\nhost = 'h'\n", "needs"),
        ("this is not toml", "service.toml"),
    ],
)
def test_bad_config_is_a_clear_error(tmp_path, text, message):
    path = tmp_path / "service.toml"
    path.write_text(text)
    with pytest.raises(ServiceConfigError, match=message):
        load_service_config(path)
