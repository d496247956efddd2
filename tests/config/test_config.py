"""Settings: the example loads; every class of mistake names file, key and expectation."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from syncd.config import check, load_settings
from syncd.errors import ConfigError
from syncd.logs import redact

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config.example.toml"
ENV = {"ZENDESK_TOKEN": "zd-token-1234", "ZENDESK_WEBHOOK_SECRET": "zd-whsec-1234",
       "JIRA_API_TOKEN": "jira-token-1234", "JIRA_WEBHOOK_SECRET": "jira-whsec-1234"}

MINIMAL = f"""
[zendesk]
url = "http://127.0.0.1:8001"
email = "syncd@acme.example"
token = "env:ZENDESK_TOKEN"
webhook_secret = "env:ZENDESK_WEBHOOK_SECRET"
mapping = "{REPO / 'mappings' / 'zendesk-jira.toml'}"

[jira]
url = "http://127.0.0.1:8002"
email = "syncd@acme.example"
api_token = "env:JIRA_API_TOKEN"
webhook_secret = "env:JIRA_WEBHOOK_SECRET"
"""


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def only_problem(path: Path, environ=ENV) -> ConfigError:
    problems = check(path, environ)
    assert len(problems) == 1, problems
    with pytest.raises(ConfigError) as raised:
        load_settings(path, environ)
    assert str(raised.value) == str(problems[0])
    return problems[0]


def test_example_config_loads_with_secrets_from_env():
    s = load_settings(EXAMPLE, ENV)
    assert s.desks == ("zendesk",) and s.intercom is None
    assert s.zendesk.requests_per_minute == 200 and s.zendesk.poll_interval_seconds == 30
    assert s.zendesk.token.reveal() == "zd-token-1234"
    assert s.jira.api_token.reveal() == "jira-token-1234" and s.jira.poll_overlap_seconds == 120
    assert s.zendesk.mapping.desk == "zendesk"
    assert s.zendesk.mapping.source_path == str(EXAMPLE.parent / "mappings" / "zendesk-jira.toml")
    assert s.http.max_body_bytes == 1024 * 1024 and s.core.database_url == "sqlite:///./syncd.db"
    assert s.logging.format == "auto" and s.core.instance.endswith(f":{os.getpid()}")   # default host:pid
    assert "1234" not in repr(s) and "Secret('***')" in repr(s)
    assert "zd-token-1234" not in redact("token is zd-token-1234")   # registered with the redactor


def test_intercom_section_with_defaults(tmp_path):
    text = MINIMAL + """
[intercom]
token = "env:IC_TOKEN"
client_secret = "env:IC_SECRET"
admin_id = "5017691"
mapping = "builtin:intercom-jira"
"""
    s = load_settings(write(tmp_path, text), {**ENV, "IC_TOKEN": "ic-tok-1", "IC_SECRET": "ic-sec-1"})
    assert s.desks == ("zendesk", "intercom")
    assert s.intercom.url == "https://api.intercom.io" and s.intercom.api_version == "2.14"
    assert s.intercom.mapping.desk == "intercom" and s.intercom.client_secret.reveal() == "ic-sec-1"


def test_missing_key(tmp_path):
    path = write(tmp_path, MINIMAL.replace('email = "syncd@acme.example"\napi_token', "api_token"))
    err = only_problem(path)
    assert (err.path, err.key) == (str(path), "jira.email")
    assert "missing" in err.expected and "string" in err.expected


def test_wrong_type(tmp_path):
    path = write(tmp_path, MINIMAL + '\n[http]\nport = "8080"\n')
    err = only_problem(path)
    assert err.key == "http.port" and "an integer" in err.expected and "got a string" in err.expected
    assert str(path) in str(err)


def test_value_out_of_range(tmp_path):
    path = write(tmp_path, MINIMAL.replace("[jira]", "poll_interval_seconds = 5\n\n[jira]"))
    err = only_problem(path)
    assert err.key == "zendesk.poll_interval_seconds" and ">= 10" in err.expected


def test_unknown_key_and_unknown_section(tmp_path):
    path = write(tmp_path, MINIMAL.replace("[jira]", "requests_per_minut = 100\n\n[jira]"))
    err = only_problem(path)
    assert err.key == "zendesk.requests_per_minut"
    assert "requests_per_minute" in err.expected and "unknown" in err.expected
    err = only_problem(write(tmp_path, MINIMAL + "\n[zendsk]\nurl = 'x'\n"))
    assert err.key == "zendsk"


def test_literal_secret_is_refused_without_echoing_it(tmp_path):
    path = write(tmp_path, MINIMAL.replace('"env:JIRA_API_TOKEN"', '"ATATT3xFfGF0-literal"'))
    err = only_problem(path)
    assert err.key == "jira.api_token"
    assert "env:NAME" in err.expected and "literal" in err.expected
    assert "ATATT3xFfGF0" not in str(err)


def test_missing_env_var(tmp_path):
    env = {k: v for k, v in ENV.items() if k != "ZENDESK_WEBHOOK_SECRET"}
    err = only_problem(write(tmp_path, MINIMAL), env)
    assert err.key == "zendesk.webhook_secret" and "ZENDESK_WEBHOOK_SECRET" in err.expected


def test_credential_and_file_secrets(tmp_path):
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "jira_api_token").write_text("from-credential-1\n")
    (tmp_path / "zd.secret").write_text("from-file-1\r\n")
    text = (MINIMAL.replace('"env:JIRA_API_TOKEN"', '"credential:jira_api_token"')
                   .replace('"env:ZENDESK_TOKEN"', '"file:zd.secret"'))   # relative to the config file
    s = load_settings(write(tmp_path, text), {**ENV, "CREDENTIALS_DIRECTORY": str(creds)})
    assert s.jira.api_token.reveal() == "from-credential-1"
    assert s.zendesk.token.reveal() == "from-file-1"


def test_missing_credential_file(tmp_path):
    creds = tmp_path / "creds"
    creds.mkdir()
    path = write(tmp_path, MINIMAL.replace('"env:JIRA_WEBHOOK_SECRET"', '"credential:jira_webhook_secret"'))
    err = only_problem(path, {**ENV, "CREDENTIALS_DIRECTORY": str(creds)})
    assert err.key == "jira.webhook_secret" and str(creds / "jira_webhook_secret") in err.expected
    err = only_problem(path, ENV)   # not under systemd at all
    assert "CREDENTIALS_DIRECTORY" in err.expected


def test_mapping_file_missing(tmp_path):
    path = write(tmp_path, MINIMAL.replace(str(REPO / "mappings" / "zendesk-jira.toml"), "nope.toml"))
    err = only_problem(path)
    assert err.key == "zendesk.mapping" and str(tmp_path / "nope.toml") in err.expected


def test_bad_mapping_enum_names_the_mapping_file(tmp_path):
    mapping = (REPO / "mappings" / "zendesk-jira.toml").read_text()
    mapping = mapping.replace('direction = "tracker_to_desk"\nnote_on_change', 'direction = "to_desk"\nnote_on_change')
    write(tmp_path, mapping, "zd.toml")
    path = write(tmp_path, MINIMAL.replace(str(REPO / "mappings" / "zendesk-jira.toml"), "zd.toml"))
    err = only_problem(path)
    assert err.path == str(tmp_path / "zd.toml") and err.key == "fields[jira_status].direction"
    assert "both" in err.expected and "tracker_to_desk" in err.expected and "'to_desk'" in err.expected


def test_mapping_for_the_wrong_desk(tmp_path):
    path = write(tmp_path, MINIMAL.replace(str(REPO / "mappings" / "zendesk-jira.toml"), "builtin:intercom-jira"))
    err = only_problem(path)
    assert err.key == "zendesk.mapping" and "intercom" in err.expected


def test_toml_syntax_error_names_the_line(tmp_path):
    path = write(tmp_path, MINIMAL.replace('port', 'x') + "\n[http]\nport = = 1\n")
    err = only_problem(path)
    line = MINIMAL.count("\n") + 3
    assert err.path == str(path) and err.key.startswith(f"line {line},") and "TOML" in err.expected


def test_at_least_one_desk_and_jira_are_required(tmp_path):
    problems = check(write(tmp_path, "[logging]\nlevel = 'info'\n"), ENV)
    assert {p.key for p in problems} == {"jira", "zendesk"}
    assert any("at least one desk" in p.expected for p in problems)


def test_check_returns_every_problem_at_once(tmp_path):
    mapping = (REPO / "mappings" / "zendesk-jira.toml").read_text().replace('conflict = "newest"', 'conflict = "latest"')
    write(tmp_path, mapping, "zd.toml")
    text = (MINIMAL.replace(str(REPO / "mappings" / "zendesk-jira.toml"), "zd.toml")
                   .replace('"env:JIRA_API_TOKEN"', '"plain-secret-value"')
                   + '\n[syncd]\nworkers = "four"\nwrokers = 4\n\n[logging]\nformat = "xml"\n')
    env = {k: v for k, v in ENV.items() if k != "ZENDESK_TOKEN"}
    problems = check(write(tmp_path, text), env)
    found = {(Path(p.path).name, p.key) for p in problems}
    assert found == {
        ("config.toml", "jira.api_token"), ("config.toml", "zendesk.token"),
        ("config.toml", "syncd.workers"), ("config.toml", "syncd.wrokers"),
        ("config.toml", "logging.format"), ("zd.toml", "fields[priority].conflict"),
    }
    with pytest.raises(ConfigError):
        load_settings(tmp_path / "config.toml", env)


def test_missing_config_file(tmp_path):
    err = only_problem(tmp_path / "absent.toml")
    assert err.path == str(tmp_path / "absent.toml") and "exist" in err.expected


# ------------------------------------------------------------------ systemd unit

UNIT = REPO / "systemd" / "syncd.service"


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def test_systemd_unit_is_hardened_and_loads_credentials():
    service = parse_unit(UNIT.read_text())["Service"]
    one = {k: v[-1] for k, v in service.items()}
    assert one["ExecStart"] == f"{INSTALLED_SYNCD} run --config /etc/syncd/config.toml"
    assert one["Restart"] == "on-failure" and int(one["TimeoutStopSec"]) >= 30
    # Ready once bound and migrated, watched while running, never restarted over a bad config.
    assert one["Type"] == "notify" and one["NotifyAccess"] == "main" and int(one["WatchdogSec"]) > 0
    assert one["RestartPreventExitStatus"] == "78"
    expected = {"DynamicUser": "yes", "StateDirectory": "syncd", "ProtectSystem": "strict",
                "ProtectHome": "yes", "NoNewPrivileges": "yes", "PrivateTmp": "yes",
                "PrivateDevices": "yes", "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
                "CapabilityBoundingSet": "", "ReadWritePaths": "/var/lib/syncd"}
    assert {k: one.get(k) for k in expected} == expected
    assert "@system-service" in service["SystemCallFilter"]
    credentials = {v.split(":", 1)[0] for v in service["LoadCredential"]}
    assert credentials == {"zendesk_token", "jira_api_token", "zendesk_webhook_secret",
                           "jira_webhook_secret", "intercom_token", "intercom_client_secret"}


INSTALLED_SYNCD = "/opt/syncd/bin/syncd"   # README: python3 -m venv /opt/syncd && /opt/syncd/bin/pip install .


def test_systemd_unit_runs_what_the_readme_installs():
    readme = (REPO / "README.md").read_text()
    assert "python3 -m venv /opt/syncd && /opt/syncd/bin/pip install ." in readme
    assert f"ExecStart={INSTALLED_SYNCD} run" in UNIT.read_text()


def _unit_for_this_machine(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this checkout's syncd (verify insists the binary exists)."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze not installed (Debian: systemd); CI has it")
    syncd_bin = shutil.which("syncd") or str(REPO / ".venv" / "bin" / "syncd")
    if not Path(syncd_bin).exists():
        pytest.skip("no syncd executable to point ExecStart at")
    unit = tmp_path / "syncd.service"
    unit.write_text(UNIT.read_text().replace(INSTALLED_SYNCD, syncd_bin))
    return unit


def test_systemd_analyze_verify(tmp_path):
    unit = _unit_for_this_machine(tmp_path)
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=30)
    complaints = [l for l in (done.stdout + done.stderr).splitlines() if re.search(r"syncd\.service", l)]
    assert done.returncode == 0 and not complaints, done.stdout + done.stderr


def test_systemd_analyze_security_exposure_at_most_1_5(tmp_path):
    unit = _unit_for_this_machine(tmp_path)
    done = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit)],
                          capture_output=True, text=True, timeout=60)
    found = re.search(r"Overall exposure level for syncd\.service: ([0-9.]+)", done.stdout)
    assert found, done.stdout + done.stderr
    assert float(found.group(1)) <= 1.5, done.stdout


def test_replicas_split_each_vendor_budget(tmp_path):
    from syncd.wiring import build_budgets
    text = "[syncd]\nreplicas = 3\n" + MINIMAL.replace("[jira]", "requests_per_minute = 300\n\n[jira]") + """
requests_per_minute = 90

[intercom]
token = "env:IC_TOKEN"
client_secret = "env:IC_SECRET"
admin_id = "5017691"
mapping = "builtin:intercom-jira"
requests_per_minute = 1200
"""
    s = load_settings(write(tmp_path, text), {**ENV, "IC_TOKEN": "t", "IC_SECRET": "s"})
    assert s.core.replicas == 3
    budgets = build_budgets(s)
    assert {v: b.per_minute for v, b in budgets.items()} == {"zendesk": 100, "jira": 30, "intercom": 400}
    assert build_budgets(load_settings(EXAMPLE, ENV))["zendesk"].per_minute == 200   # default: one replica


@pytest.mark.parametrize("value, expected", [("0", "a value >= 1"), ('"two"', "an integer")])
def test_replicas_must_be_a_positive_integer(tmp_path, value, expected):
    path = write(tmp_path, f"[syncd]\nreplicas = {value}\n" + MINIMAL)
    err = only_problem(path)
    assert (err.path, err.key) == (str(path), "syncd.replicas") and expected in err.expected


def test_vendor_timeout_is_read_from_the_syncd_table(tmp_path):
    s = load_settings(write(tmp_path, "[syncd]\nvendor_timeout_seconds = 7.5\n" + MINIMAL), ENV)
    assert s.core.vendor_timeout_seconds == 7.5
    assert load_settings(EXAMPLE, ENV).core.vendor_timeout_seconds == 30.0


@pytest.mark.parametrize("value, expected", [("0.5", "a value from 1 to 300"), ("301", "a value from 1 to 300"),
                                             ('"soon"', "a number")])
def test_vendor_timeout_must_be_between_1_and_300_seconds(tmp_path, value, expected):
    path = write(tmp_path, f"[syncd]\nvendor_timeout_seconds = {value}\n" + MINIMAL)
    err = only_problem(path)
    assert (err.path, err.key) == (str(path), "syncd.vendor_timeout_seconds") and expected in err.expected, err


def test_vendor_access_records_never_print_their_tokens():
    """Issue 14: a repr (a log line with locals, an exception) must not carry a token."""
    from syncd.connectors.intercom import IntercomAccess
    from syncd.connectors.jira import JiraAccess
    from syncd.connectors.zendesk import ZendeskAccess
    from syncd.secrets import Secret
    token = "tok-very-secret-123"
    for access in (JiraAccess("https://x.atlassian.net", "a@b.c", token),
                   ZendeskAccess("https://x.zendesk.com", "a@b.c", Secret(token, "env:T")),
                   IntercomAccess("https://api.intercom.io", token, "1")):
        assert token not in repr(access) and token not in str(access)
        assert "Secret('***')" in repr(access)
    assert JiraAccess("https://x", "a@b.c", token).api_token.reveal() == token


def test_a_deferred_secret_that_does_not_resolve_keeps_its_reference(tmp_path):
    # `syncd webhooks install` shows the admin where to store the secret it produces.
    from syncd.config import DEFERRABLE, load
    env = {k: v for k, v in ENV.items() if k != "ZENDESK_WEBHOOK_SECRET"}
    loaded = load(write(tmp_path, MINIMAL), env, defer=DEFERRABLE)
    assert loaded.settings is not None and loaded.settings.zendesk.webhook_secret is None
    assert loaded.settings.deferred == {"zendesk.webhook_secret": "env:ZENDESK_WEBHOOK_SECRET"}
    assert [w.key for w in loaded.warnings] == ["zendesk.webhook_secret"]
    assert load_settings(write(tmp_path, MINIMAL), ENV).deferred == {}


def test_instance_defaults_to_host_and_pid(tmp_path):
    import socket
    assert load_settings(write(tmp_path, MINIMAL), ENV).core.instance == f"{socket.gethostname()}:{os.getpid()}"


# -- [admin]: the read-only admin page (issue 15) ----------------------------------------------

ADMIN_ENV = {**ENV, "SYNCD_ADMIN_TOKEN": "admin-token-0123456789"}


def test_admin_page_is_off_unless_listen_is_set(tmp_path):
    s = load_settings(write(tmp_path, MINIMAL), ADMIN_ENV)
    assert s.admin.listen is None and s.admin.token is None
    s = load_settings(write(tmp_path, MINIMAL + '\n[admin]\nlisten = "[::1]:8081"\ntoken = "env:SYNCD_ADMIN_TOKEN"\n'),
                      ADMIN_ENV)
    assert (s.admin.host, s.admin.port, s.admin.user) == ("::1", 8081, "admin")
    assert s.admin.token.reveal() == "admin-token-0123456789" and "admin-token" not in repr(s.admin)


@pytest.mark.parametrize("section, key, expected", [
    ('listen = "127.0.0.1:8081"', "admin.token", "the key is missing"),
    ('listen = "127.0.0.1:8081"\ntoken = "admin-token-0123456789"', "admin.token", "literal secrets are refused"),
    ('listen = "127.0.0.1:8081"\ntoken = "env:SHORT"', "admin.token", "at least 16 characters (from env:SHORT, 5"),
    ('listen = "127.0.0.1"\ntoken = "env:SYNCD_ADMIN_TOKEN"', "admin.listen", "host:port"),
    ('listen = "127.0.0.1:99999"\ntoken = "env:SYNCD_ADMIN_TOKEN"', "admin.listen", "host:port"),
    ('listen = "127.0.0.1:8080"\ntoken = "env:SYNCD_ADMIN_TOKEN"', "admin.listen", "not the webhook receiver's"),
    ('token = "env:SYNCD_ADMIN_TOKEN"', "admin.listen", "the page is off without admin.listen"),
    ('listen = "127.0.0.1:8081"\ntoken = "env:SYNCD_ADMIN_TOKEN"\npassword = "x"', "admin.password", "unknown"),
])
def test_bad_admin_section_names_file_key_and_expectation(tmp_path, section, key, expected):
    path = write(tmp_path, MINIMAL + f"\n[admin]\n{section}\n")
    err = only_problem(path, {**ADMIN_ENV, "SHORT": "short"})
    assert (err.path, err.key) == (str(path), key) and expected in err.expected, err
    assert "admin-token-0123456789" not in str(err) and "short" not in str(err).replace("shorter", "")


def test_history_days_is_a_retention_setting(tmp_path):
    assert load_settings(write(tmp_path, MINIMAL), ENV).retention.history_days == 90
    s = load_settings(write(tmp_path, MINIMAL + "\n[retention]\nhistory_days = 30\n"), ENV)
    assert s.retention.history_days == 30
    err = only_problem(write(tmp_path, MINIMAL + "\n[retention]\nhistory_days = 0\n"))
    assert err.key == "retention.history_days" and ">= 1" in err.expected
