"""The contract checker bites: wrong answers and wrong requests are reported,
correct ones pass, and every correction of a document is listed and works."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import contract
from contract import CORRECTIONS, ContractChecker, ContractRecorder, Violation
from syncd.sim.core import Request, Response, SimServer

# Skips with the reason without ../shared; fails when the run requires it (tests/conftest.py).
pytestmark = pytest.mark.needs_shared("vendor-specs")

BASIC = "Basic dXNlckBleGFtcGxlLmNvbS90b2tlbjpzZWNyZXQ="
BEARER = "Bearer tok"


def req(method: str, path: str, body: object = None, auth: str | None = BASIC,
        query: dict[str, list[str]] | None = None, headers: dict[str, str] | None = None) -> Request:
    h = {"content-type": "application/json", **({"authorization": auth} if auth else {}), **(headers or {})}
    return Request(method, path, query or {}, h, b"" if body is None else json.dumps(body).encode())


@pytest.fixture(scope="module")
def checker() -> ContractChecker:
    return ContractChecker()


def problems(found: list[Violation]) -> str:
    return "\n".join(str(v) for v in found)


# -- hand-built pairs: correct ones pass ----------------------------------------

JIRA_ISSUE = {
    "id": "10001", "key": "ENG-1", "self": "https://your-domain.atlassian.net/rest/api/3/issue/10001",
    "fields": {"summary": "Login fails", "updated": "2024-01-02T03:04:05.000+0000"},
}
ZD_TICKET = {
    "id": 35436, "url": "https://example.zendesk.com/api/v2/tickets/35436.json", "status": "open",
    "subject": "Help", "requester_id": 20978392, "created_at": "2024-01-02T03:04:05Z",
    "updated_at": "2024-01-02T03:04:05Z", "tags": ["vip"], "custom_fields": [{"id": 7, "value": "x"}],
}
IC_CONVERSATION = {
    "type": "conversation", "id": "123", "created_at": 1734537511, "updated_at": 1734537511,
    "waiting_since": None, "snoozed_until": None, "open": True, "state": "open", "read": False,
    "priority": "not_priority",
    "conversation_parts": {"type": "conversation_part.list", "total_count": 1, "conversation_parts": [{
        "type": "conversation_part", "id": "1", "part_type": "note", "body": "<p>hi</p>",
        "created_at": 1734537511, "updated_at": 1734537511, "notified_at": 1734537511,
        "author": {"type": "admin", "id": "991267", "name": "Ann", "email": "ann@example.com"},
        "attachments": [], "redacted": False}]},
}
IC_HEADERS = {"intercom-version": "2.14"}


def test_correct_jira_get_issue_passes(checker):
    assert checker.check("jira", req("GET", "/rest/api/3/issue/ENG-1"), Response(200, JIRA_ISSUE)) == []


def test_correct_zendesk_show_ticket_passes(checker):
    found = checker.check("zendesk", req("GET", "/api/v2/tickets/35436.json"), Response(200, {"ticket": ZD_TICKET}))
    assert found == []


def test_correct_intercom_retrieve_conversation_passes(checker):
    found = checker.check("intercom", req("GET", "/conversations/123", auth=BEARER, headers=IC_HEADERS),
                          Response(200, IC_CONVERSATION))
    assert found == []


# -- hand-built pairs: wrong ones are reported precisely ------------------------

def test_jira_wrong_type_is_reported(checker):
    found = checker.check("jira", req("GET", "/rest/api/3/issue/ENG-1"), Response(200, {**JIRA_ISSUE, "id": 10001}))
    assert [(v.operation, v.part, v.status) for v in found] == [("getIssue", "response", 200)]
    assert "id" in found[0].problem and "'string'" in found[0].problem


def test_zendesk_wrong_enum_is_reported(checker):
    found = checker.check("zendesk", req("GET", "/api/v2/tickets/35436.json"),
                          Response(200, {"ticket": {**ZD_TICKET, "status": "waiting"}}))
    assert [(v.operation, v.part) for v in found] == [("ShowTicket", "response")]
    assert "ticket/status" in found[0].problem and "'waiting'" in found[0].problem


def test_intercom_wrong_type_is_reported(checker):
    found = checker.check("intercom", req("GET", "/conversations/123", auth=BEARER, headers=IC_HEADERS),
                          Response(200, {**IC_CONVERSATION, "created_at": "2024-01-02T03:04:05Z"}))
    assert [(v.operation, v.part) for v in found] == [("retrieveConversation", "response")]
    assert "created_at" in found[0].problem and "integer" in found[0].problem


def test_intercom_missing_required_field_in_documented_error_is_reported(checker):
    found = checker.check("intercom", req("GET", "/conversations/123", auth=BEARER, headers=IC_HEADERS),
                          Response(404, {"errors": [{"code": "not_found", "message": "Resource Not Found"}]}))
    assert [(v.operation, v.status) for v in found] == [("retrieveConversation", 404)]
    assert "'type' is a required property" in found[0].problem


def test_request_the_document_refuses_is_reported(checker):
    bad = {"message_type": "whisper", "type": "admin", "admin_id": "991267", "body": "hi"}
    found = checker.check("intercom", req("POST", "/conversations/123/reply", bad, auth=BEARER, headers=IC_HEADERS),
                          Response(200, IC_CONVERSATION))
    assert [(v.operation, v.part) for v in found] == [("replyConversation", "request")]
    assert "'whisper' is not one of" in found[0].problem


def test_request_without_credentials_that_the_sim_accepted_is_reported(checker):
    found = checker.check("zendesk", req("GET", "/api/v2/tickets/1.json", auth=None), Response(200, {"ticket": ZD_TICKET}))
    assert [(v.part, v.operation) for v in found] == [("request", "ShowTicket")]
    assert "basicAuth" in found[0].problem


def test_request_refused_with_4xx_is_not_blamed_on_the_request(checker):
    # The simulator refused it, as the real service would: that is the sim working.
    found = checker.check("zendesk", req("GET", "/api/v2/tickets/1.json", auth=None),
                          Response(401, {"error": "Couldn't authenticate you"}))
    assert found == []


def test_undocumented_path_is_a_violation_and_allowlisted_one_is_not(checker):
    unknown = checker.check("zendesk", req("POST", "/api/v2/tickets/1/frobnicate.json", {}), Response(200, {}))
    assert [(v.operation, v.part) for v in unknown] == [("(undocumented)", "request")]
    wrong_method = checker.check("jira", req("PATCH", "/rest/api/3/issue/ENG-1", {}), Response(200, {}))
    assert "not this method" in wrong_method[0].problem
    assert checker.check("zendesk", req("POST", "/api/v2/webhooks", {"webhook": {}}), Response(201, {"webhook": {}})) == []
    assert checker.check("jira", req("POST", "/rest/webhooks/1.0/webhook", {}), Response(201, {})) == []


def test_undocumented_success_status_is_reported(checker):
    found = checker.check("zendesk", req("GET", "/api/v2/tickets/1.json"), Response(201, {"ticket": ZD_TICKET}))
    assert "status 201 is not documented" in found[0].problem


def test_error_answers_must_be_json_in_the_vendor_shape(checker):
    ok = checker.check("jira", req("GET", "/rest/api/3/issue/ENG-9"),
                       Response(404, {"errorMessages": ["Issue does not exist"], "errors": {}}))
    assert ok == []
    wrong = checker.check("jira", req("GET", "/rest/api/3/issue/ENG-9"), Response(404, {"message": "nope"}))
    assert wrong and all("error shape" in v.problem for v in wrong)
    text = checker.check("zendesk", req("GET", "/api/v2/tickets/1.json"),
                         Response(503, b"Service Unavailable", {"Content-Type": "text/plain"}))
    assert [v.problem for v in text] == ["error answer is not JSON (the vendor answers errors in JSON)"]
    assert checker.check("zendesk", req("GET", "/api/v2/tickets/1.json"),
                         Response(429, {"error": "TooManyRequests"}, {"Retry-After": "3"})) == []


def test_empty_204_passes_where_documented(checker):
    found = checker.check("jira", req("PUT", "/rest/api/2/issue/ENG-1", {"fields": {"summary": "x"}}), Response(204))
    assert found == []


def test_connection_reset_checks_only_the_request(checker):
    assert checker.check("jira", req("GET", "/rest/api/3/issue/ENG-1"), Response(0)) == []


# -- every correction is listed, explained, and relaxes exactly its case ------

@pytest.mark.parametrize("correction", CORRECTIONS, ids=lambda c: f"{c.vendor}:{c.target}")
def test_each_correction_is_explained_and_fits_the_document(correction):
    assert correction.vendor in contract.VENDORS
    assert len(correction.relaxed) > 10 and len(correction.why) > 20
    kinds = [correction.patch is not None, bool(correction.formats), correction.path_alias is not None]
    assert kinds.count(True) == 1
    contract.load(correction.vendor)   # raises ContractSetupError when a patch no longer fits


def test_a_stale_correction_fails_loudly():
    with pytest.raises(contract.ContractSetupError):
        contract._nullable("NoSuchSchema", "x")({"components": {"schemas": {}}})


def test_jira_corrections(checker):
    info = {"baseUrl": "https://x.atlassian.net", "deploymentType": "Cloud", "serverTime": "2024-01-02T03:04:05.000+0000",
            "defaultLocale": {"locale": "en_US"}}
    assert checker.check("jira", req("GET", "/rest/api/2/serverInfo"), Response(200, info)) == []
    assert checker.check("jira", req("GET", "/rest/api/2/serverInfo"), Response(200, {**info, "serverTime": "yesterday"}))
    link = {"id": 10000, "globalId": "zendesk:1", "object": {"url": "https://x", "title": "ZD-1"}}
    assert checker.check("jira", req("GET", "/rest/api/3/issue/ENG-1/remotelink"), Response(200, [link])) == []
    change = {"histories": [{"id": "1", "created": "2024-01-02T03:04:05.000+0000", "items": [
        {"field": "assignee", "fieldtype": "jira", "from": None, "fromString": None, "to": "abc", "toString": "Ann"}]}]}
    assert checker.check("jira", req("GET", "/rest/api/3/issue/ENG-1/changelog"),
                         Response(200, {"values": change["histories"], "isLast": True})) == []


def test_zendesk_corrections(checker):
    nulls = {**ZD_TICKET, "priority": None, "type": None, "external_id": None, "problem_id": None,
             "satisfaction_rating": None, "custom_fields": [{"id": 1, "value": None}, {"id": 2, "value": True}]}
    assert checker.check("zendesk", req("GET", "/api/v2/tickets/1.json"), Response(200, {"ticket": nulls})) == []
    # null is allowed, other values outside the enum still are not
    found = checker.check("zendesk", req("GET", "/api/v2/tickets/1.json"),
                          Response(200, {"ticket": {**nulls, "priority": "asap"}}))
    assert "ticket/priority" in found[0].problem
    counted = req("GET", "/api/v2/tickets/1.json", query={"include": ["comment_count"]})
    assert checker.check("zendesk", counted, Response(200, {"ticket": {**ZD_TICKET, "comment_count": 3}})) == []
    assert checker.check("zendesk", counted, Response(200, {"ticket": {**ZD_TICKET, "comment_count": "3"}}))


def test_intercom_corrections(checker):
    part = IC_CONVERSATION["conversation_parts"]["conversation_parts"][0]
    conv = {**IC_CONVERSATION, "conversation_parts": {**IC_CONVERSATION["conversation_parts"],
                                                      "conversation_parts": [{**part, "assigned_to": None}]}}
    assert checker.check("intercom", req("GET", "/conversations/123", auth=BEARER, headers=IC_HEADERS),
                         Response(200, conv)) == []
    note = {"message_type": "note", "type": "admin", "admin_id": 991267, "body": "hi"}
    assert checker.check("intercom", req("POST", "/conversations/123/reply", note, auth=BEARER, headers=IC_HEADERS),
                         Response(200, IC_CONVERSATION)) == []


def test_jira_corrections_for_the_jira_library(checker):
    assert checker.check("jira", req("PUT", "/rest/api/latest/issue/ENG-1/assignee", {"accountId": "abc"}),
                         Response(204)) == []
    search = {"jql": "project = ENG", "maxResults": 50, "fields": ["summary"], "expand": None,
              "properties": None, "reconcileIssues": []}
    page = {"issues": [JIRA_ISSUE], "isLast": True}
    assert checker.check("jira", req("POST", "/rest/api/2/search/jql", search), Response(200, page)) == []
    assert checker.check("jira", req("POST", "/rest/api/2/search/jql", {**search, "maxResults": None}),
                         Response(200, page)), "only expand/properties were relaxed"
    assert checker.check("jira", req("DELETE", "/rest/api/2/issue/ENG-1", query={"deleteSubtasks": ["False"]}),
                         Response(204)) == []
    assert checker.check("jira", req("DELETE", "/rest/api/2/issue/ENG-1", query={"deleteSubtasks": ["nope"]}),
                         Response(204))
    xsrf = Response(403, b"XSRF check failed", {"Content-Type": "text/plain"})
    assert checker.check("jira", req("POST", "/rest/api/2/issue/ENG-1/attachments"), xsrf) == []
    assert checker.check("jira", req("GET", "/rest/api/2/issue/ENG-1"),
                         Response(403, b"XSRF check failed", {"Content-Type": "text/plain"})), "only addAttachment"


def test_zendesk_corrections_for_requests_and_users(checker):
    update = {"ticket": {"status": "pending", "custom_fields": [{"id": 360001, "value": "eng-42"}, {"id": 2, "value": None}]}}
    assert checker.check("zendesk", req("PUT", "/api/v2/tickets/1.json", update), Response(200, {"ticket": ZD_TICKET})) == []
    user = {"id": 9, "name": "Ann", "email": "ann@example.com", "role": "end-user", "default_group_id": None,
            "shared_phone_number": None, "phone": None, "photo": None, "organization_id": None}
    assert checker.check("zendesk", req("GET", "/api/v2/users/me.json"), Response(200, {"user": user})) == []
    export = {"tickets": [], "after_cursor": None, "before_cursor": None, "end_of_stream": True}
    cursor_page = req("GET", "/api/v2/incremental/tickets/cursor.json", query={"cursor": ["abc"]})
    assert [v.problem for v in checker.check("zendesk", cursor_page, Response(200, export))
            if v.part == "request"] == []
    events = req("GET", "/api/v2/incremental/ticket_events.json")   # start_time stays required here
    assert any("start_time" in v.problem for v in checker.check("zendesk", events, Response(200, {"ticket_events": []})))


def test_intercom_corrections_for_ids_and_data_attributes(checker):
    new = {"from": {"type": "user", "id": "6af7eb9f752a4c2dbd3a775e"}, "body": "Hello"}
    message = {"type": "user_message", "id": "403918396", "created_at": 1734537756, "body": "Hello",
               "message_type": "inapp", "conversation_id": "499"}
    assert checker.check("intercom", req("POST", "/conversations", new, auth=BEARER, headers=IC_HEADERS),
                         Response(200, message)) == []
    attr = {"type": "data_attribute", "name": "jira_key", "full_name": "custom_attributes.jira_key",
            "data_type": "string", "model": "conversation"}
    listing = {"type": "list", "data": [attr]}
    listed = req("GET", "/data_attributes", auth=BEARER, headers=IC_HEADERS, query={"model": ["conversation"]})
    assert checker.check("intercom", listed, Response(200, listing)) == []
    create = {"name": "jira_key", "model": "conversation", "data_type": "string"}
    on_2_14 = checker.check("intercom", req("POST", "/data_attributes", create, auth=BEARER, headers=IC_HEADERS),
                            Response(200, attr))
    assert [v.part for v in on_2_14] == ["request"] and "'conversation' is not one of" in on_2_14[0].problem
    unstable = req("POST", "/data_attributes", create, auth=BEARER, headers={"intercom-version": "Unstable"})
    assert checker.check("intercom", unstable, Response(200, attr)) == []


# -- live: tiny simulators with broken handlers, real client libraries --------

SERVER_INFO = {"baseUrl": "http://127.0.0.1", "version": "1001.0.0", "versionNumbers": [1001, 0, 0],
               "deploymentType": "Cloud", "buildNumber": 100, "serverTime": "2024-01-02T03:04:05.000+0000",
               "serverTitle": "Jira"}


class BrokenJira(SimServer):
    vendor = "jira"

    def setup_routes(self) -> None:
        self.route("GET", "/rest/api/2/serverInfo", "getServerInfo", lambda r: Response(200, SERVER_INFO))
        # the bug: a numeric issue id (Jira sends ids as strings)
        self.route("GET", "/rest/api/2/issue/{key}", "getIssue",
                   lambda r: Response(200, {**JIRA_ISSUE, "id": 10001}))


class BrokenZendesk(SimServer):
    vendor = "zendesk"

    def setup_routes(self) -> None:
        self.route("GET", "/api/v2/tickets/{id}{.json}", "ShowTicket",
                   lambda r: Response(200, {"ticket": {**ZD_TICKET, "status": "waiting"}}))


class BrokenIntercom(SimServer):
    vendor = "intercom"

    def setup_routes(self) -> None:
        self.route("GET", "/conversations/{id}", "retrieveConversation",
                   lambda r: Response(200, {**IC_CONVERSATION, "state": "archived"}))


def _only(found: list[Violation], operation: str, needle: str) -> None:
    assert len(found) == 1, problems(found)
    assert found[0].operation == operation and found[0].part == "response"
    assert needle in found[0].problem, found[0].problem


def _recorder(contract_recorder: ContractRecorder | None) -> ContractRecorder:
    if contract_recorder is None:
        pytest.skip("contract checker switched off (SYNCD_CONTRACT=off)")
    return contract_recorder


def test_live_broken_jira_is_caught(contract_recorder):
    from jira import JIRA
    recorder = _recorder(contract_recorder)
    with BrokenJira() as sim:
        client = JIRA(server=sim.base_url, basic_auth=("bot@example.com", "token"), max_retries=0)
        client.issue("ENG-1")
    _only(recorder.take(at_least=1), "getIssue", "'string'")


def test_live_broken_zendesk_is_caught(contract_recorder, monkeypatch):
    from zenpy import Zenpy
    recorder = _recorder(contract_recorder)
    with BrokenZendesk() as sim:
        monkeypatch.setenv("ZENPY_FORCE_SCHEME", "http")
        monkeypatch.setenv("ZENPY_FORCE_NETLOC", f"127.0.0.1:{sim.port}")
        Zenpy(subdomain="example", email="bot@example.com", token="secret").tickets(id=35436)
    _only(recorder.take(at_least=1), "ShowTicket", "'waiting'")


def test_live_broken_intercom_is_caught(contract_recorder):
    from intercom import Intercom
    recorder = _recorder(contract_recorder)
    with BrokenIntercom() as sim:
        client = Intercom(token="tok", base_url=sim.base_url, headers={"Intercom-Version": "2.14"})
        client.conversations.find(conversation_id="123")   # the SDK itself takes any state string
    _only(recorder.take(at_least=1), "retrieveConversation", "'archived'")


def test_a_test_with_violations_fails_in_teardown(tmp_path):
    """Runs the real conftest in a child pytest: the broken answer fails the test that caused it."""
    conftest = (Path(__file__).resolve().parents[1] / "conftest.py").read_text()
    block = conftest[conftest.index("# --- vendor contract checker"):conftest.index("# --- end vendor contract checker")]
    (tmp_path / "conftest.py").write_text("import pytest\n" + block)
    (tmp_path / "test_child.py").write_text(
        "import requests\n"
        "from syncd.sim.core import Response, SimServer\n"
        "class Sim(SimServer):\n"
        "    vendor = 'jira'\n"
        "    def setup_routes(self):\n"
        "        self.route('GET', '/rest/api/3/issue/{key}', 'getIssue', lambda r: Response(200, {'id': 7}))\n"
        "def test_clean():\n"
        "    pass\n"
        "def test_broken():\n"
        "    with Sim() as sim:\n"
        "        assert requests.get(sim.base_url + '/rest/api/3/issue/ENG-1', auth=('u', 't')).status_code == 200\n"
    )
    tests_dir = str(Path(__file__).resolve().parents[1])   # where the `contract` package lives
    env = {**os.environ, "SYNCD_CONTRACT": "on",
           "PYTHONPATH": os.pathsep.join(filter(None, [tests_dir, os.environ.get("PYTHONPATH")]))}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
                          str(tmp_path)], check=False, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
    assert "2 passed, 1 error" in run.stdout, run.stdout + run.stderr
    assert "ERROR at teardown of test_broken" in run.stdout
    assert "getIssue GET /rest/api/3/issue/ENG-1 -> 200: response" in run.stdout
    assert "contract: jira: 1 checked" in run.stdout


def test_switch_off(monkeypatch):
    monkeypatch.setenv("SYNCD_CONTRACT", "off")
    assert not contract.contract_enabled()
    monkeypatch.setenv("SYNCD_CONTRACT", "on")
    assert contract.contract_enabled()
