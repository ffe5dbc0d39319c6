"""service.toml: defaults, values, secrets only from files or the environment."""

from __future__ import annotations

import pytest

from dingvault.service.config import ServiceConfigError, load_service_config


def test_missing_file_means_defaults(tmp_path):
    c = load_service_config(tmp_path / "service.toml")
    assert c.timezone == "Asia/Macau" and c.incremental_cron == "0 0 * * *" and c.full_cron == "0 1 * * sun"
    assert c.dingtalk_alert is None and c.email_alert is None
    # Weekly verify reading every pack; the daily sampled one is off until configured.
    schedules = c.verify_schedules()
    assert list(schedules) == ["verify"] and schedules["verify"][1] == 1.0
    assert c.verify_cron == "0 3 * * sat"


def test_verify_schedules_are_configurable(tmp_path):
    path = tmp_path / "service.toml"
    path.write_text('verify_cron = "0 2 * * sun"\nverify_read_fraction = 0\nverify_sample_cron = "30 3 * * *"\n'
                    "verify_sample_fraction = 0.1\n")  # fmt: skip
    c = load_service_config(path)
    schedules = c.verify_schedules()
    assert list(schedules) == ["verify", "verify-sample"]
    assert schedules["verify"][1] == 0.0 and schedules["verify-sample"][1] == 0.1
    assert "day_of_week='sun'" in str(schedules["verify"][0]) and "hour='2'" in str(schedules["verify"][0])
    path.write_text('verify_cron = ""\n')
    assert load_service_config(path).verify_schedules() == {}  # switched off


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
secret_file = "{tmp_path / "robot"}"
[alerts.email]
host = "127.0.0.1"
sender = "a@b"
to = ["c@d"]
password_file = "{tmp_path / "smtp"}"
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
        ('verify_cron = "saturdays"\n', "verify_cron"),
        ('verify_sample_cron = "0 3 * * *"\nverify_sample_fraction = 1.5\n', "verify_sample_fraction"),
        ("verify_read_fraction = -0.1\n", "verify_read_fraction"),
        ("[alerts.email]\nhost = 'h'\n", "needs"),
        ("this is not toml", "service.toml"),
    ],
)
def test_bad_config_is_a_clear_error(tmp_path, text, message):
    path = tmp_path / "service.toml"
    path.write_text(text)
    with pytest.raises(ServiceConfigError, match=message):
        load_service_config(path)
