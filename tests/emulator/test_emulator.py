"""Tests of the CSP emulator over real HTTPS connections on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from csp_emulator import Emulator, Fault

pytestmark = pytest.mark.timeout(30)

P = "/csp/gateway/am/api"
API_TOKEN_AUTHORIZE = P + "/auth/api-tokens/authorize"
ORG = "org-1"
OTHER_ORG = "org-2"
API_TOKEN = "api-token-owner"
TIMEOUT = 5  # seconds, for every HTTP call in these tests
TESTS_DIR = Path(__file__).resolve().parents[1]
ERROR_FIELDS = {"statusCode", "message", "cspErrorCode", "errorCode", "moduleCode", "requestId", "traceId"}


def deactivate_path(org_id: str = ORG) -> str:
    return f"{P}/orgs/{org_id}/api-tokens/deactivate"


def activate_path(org_id: str = ORG) -> str:
    return f"{P}/orgs/{org_id}/api-tokens/activate"


@pytest.fixture(scope="module")
def server() -> Iterator[Emulator]:
    with Emulator() as emulator:
        yield emulator


@pytest.fixture
def emu(server: Emulator) -> Emulator:
    """The shared emulator, reset, with ORG (tokens t1..t3 active, t4 inactive), OTHER_ORG (x1) and an owner."""
    server.reset()
    server.add_org(ORG)
    server.add_tokens(ORG, ["t1", "t2", "t3"])
    server.add_tokens(ORG, ["t4"], active=False)
    server.add_org(OTHER_ORG)
    server.add_tokens(OTHER_ORG, ["x1"])
    server.add_api_token(API_TOKEN, user="owner@example.com", roles={ORG: "org_owner", OTHER_ORG: "org_owner"})
    return server


@pytest.fixture
def session(emu: Emulator) -> Iterator[requests.Session]:
    """A session that trusts only the emulator's CA and ignores proxy and CA bundle variables of the environment."""
    with requests.Session() as http:
        http.trust_env = False
        http.verify = emu.ca_path
        yield http


def access_token(emu: Emulator, http: requests.Session, api_token: str = API_TOKEN) -> str:
    response = http.post(emu.url + API_TOKEN_AUTHORIZE, data={"api_token": api_token}, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def change(emu: Emulator, http: requests.Session, token: str, ids: list[str], path: str = "") -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"}
    return http.post(emu.url + (path or deactivate_path()), json={"ids": ids}, headers=headers, timeout=TIMEOUT)


def assert_csp_error(response: requests.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert ERROR_FIELDS <= body.keys()
    assert body["statusCode"] == status
    assert isinstance(body["message"], str)
    assert uuid.UUID(body["requestId"]).version == 4
    assert response.headers["X-Request-Id"] == body["requestId"]
    int(body["traceId"], 16)
    return body


# API token exchange


def test_api_token_exchange_returns_access_token(emu: Emulator, session: requests.Session) -> None:
    response = session.post(emu.url + API_TOKEN_AUTHORIZE, data={"api_token": API_TOKEN}, timeout=TIMEOUT)

    assert response.status_code == 200
    body = response.json()
    assert body["expires_in"] == 1799
    assert body["token_type"] == "bearer"
    assert body["refresh_token"] == API_TOKEN
    assert body["access_token"]
    assert body["id_token"]
    assert body["scope"]
    second = access_token(emu, session)
    assert second != body["access_token"]


def test_api_token_exchange_accepts_refresh_token_field(emu: Emulator, session: requests.Session) -> None:
    response = session.post(emu.url + API_TOKEN_AUTHORIZE, data={"refresh_token": API_TOKEN}, timeout=TIMEOUT)

    assert response.status_code == 200
    assert response.json()["refresh_token"] == API_TOKEN


def test_api_token_in_query_rejected(emu: Emulator, session: requests.Session) -> None:
    response = session.post(emu.url + API_TOKEN_AUTHORIZE, params={"api_token": API_TOKEN}, timeout=TIMEOUT)

    assert_csp_error(response, 400)


def test_unknown_api_token_is_invalid_grant(emu: Emulator, session: requests.Session) -> None:
    response = session.post(emu.url + API_TOKEN_AUTHORIZE, data={"api_token": "nope"}, timeout=TIMEOUT)

    body = assert_csp_error(response, 400)
    assert body["message"] == "invalid_grant: Invalid refresh token"
    assert body["moduleCode"] == "340"


def test_api_token_exchange_needs_form_body(emu: Emulator, session: requests.Session) -> None:
    response = session.post(emu.url + API_TOKEN_AUTHORIZE, json={"api_token": API_TOKEN}, timeout=TIMEOUT)

    assert_csp_error(response, 415)


def test_api_token_passcode(emu: Emulator, session: requests.Session) -> None:
    emu.add_api_token("mfa-token", roles={ORG: "org_owner"}, passcode="123456")
    url = emu.url + API_TOKEN_AUTHORIZE

    missing = session.post(url, data={"api_token": "mfa-token"}, timeout=TIMEOUT)
    wrong = session.post(url, data={"api_token": "mfa-token", "passcode": "000000"}, timeout=TIMEOUT)
    non_ascii = session.post(url, data={"api_token": "mfa-token", "passcode": "１２３４５６"}, timeout=TIMEOUT)
    right = session.post(url, data={"api_token": "mfa-token", "passcode": "123456"}, timeout=TIMEOUT)

    assert "MFA passcode is required" in assert_csp_error(missing, 400)["message"]
    assert "Invalid MFA passcode" in assert_csp_error(wrong, 400)["message"]
    assert "Invalid MFA passcode" in assert_csp_error(non_ascii, 400)["message"]
    assert right.status_code == 200


# Client credentials


@pytest.mark.parametrize("path", [P + "/auth/authorize", P + "/auth/token"])
def test_client_credentials_exchange(emu: Emulator, session: requests.Session, path: str) -> None:
    emu.add_client("svc", "s3cret", roles={ORG: "org_owner"})
    form = {"grant_type": "client_credentials"}

    response = session.post(emu.url + path, data=form, auth=("svc", "s3cret"), timeout=TIMEOUT)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 1799
    assert "refresh_token" not in body


def test_client_credentials_errors(emu: Emulator, session: requests.Session) -> None:
    emu.add_client("svc", "s3cret", roles={ORG: "org_owner"})
    url = emu.url + P + "/auth/authorize"
    form = {"grant_type": "client_credentials"}

    missing = session.post(url, data=form, timeout=TIMEOUT)
    wrong_secret = session.post(url, data=form, auth=("svc", "wrong"), timeout=TIMEOUT)
    non_ascii_secret = session.post(url, data=form, auth=("svc".encode(), "sécret".encode()), timeout=TIMEOUT)
    unknown_client = session.post(url, data=form, auth=("nobody", "s3cret"), timeout=TIMEOUT)
    wrong_grant = session.post(url, data={"grant_type": "password"}, auth=("svc", "s3cret"), timeout=TIMEOUT)
    foreign_org = session.post(url, data={**form, "orgId": OTHER_ORG}, auth=("svc", "s3cret"), timeout=TIMEOUT)
    own_org = session.post(url, data={**form, "orgId": ORG}, auth=("svc", "s3cret"), timeout=TIMEOUT)

    assert_csp_error(missing, 401)
    assert_csp_error(wrong_secret, 401)
    assert_csp_error(non_ascii_secret, 401)
    assert_csp_error(unknown_client, 401)
    assert_csp_error(wrong_grant, 400)
    assert_csp_error(foreign_org, 400)
    assert own_org.status_code == 200


# Deactivate and activate


def test_deactivate_partial_success(emu: Emulator, session: requests.Session) -> None:
    token = access_token(emu, session)

    response = change(emu, session, token, ["t1", "t4", "missing", "x1"])

    assert response.status_code == 200
    assert response.json() == {
        "successes": ["t1"],
        "failures": [
            {"id": "t4", "message": "API token t4 is already deactivated."},
            {"id": "missing", "message": "API token missing was not found."},
            {"id": "x1", "message": "API token x1 was not found."},
        ],
    }
    assert emu.token_active(ORG, "t1") is False
    assert emu.token_active(ORG, "t2") is True
    assert emu.token_active(OTHER_ORG, "x1") is True


def test_activate_partial_success(emu: Emulator, session: requests.Session) -> None:
    token = access_token(emu, session)

    response = change(emu, session, token, ["t4", "t1"], path=activate_path())

    assert response.status_code == 200
    assert response.json() == {
        "successes": ["t4"],
        "failures": [{"id": "t1", "message": "API token t1 is already active."}],
    }
    assert emu.token_active(ORG, "t4") is True


def test_csp_auth_token_header_accepted(emu: Emulator, session: requests.Session) -> None:
    token = access_token(emu, session)
    headers = {"csp-auth-token": token}

    response = session.post(emu.url + deactivate_path(), json={"ids": ["t2"]}, headers=headers, timeout=TIMEOUT)

    assert response.status_code == 200
    assert response.json()["successes"] == ["t2"]


def test_already_changed_as_success(emu: Emulator, session: requests.Session) -> None:
    emu.already_changed_as = "success"
    token = access_token(emu, session)

    response = change(emu, session, token, ["t4", "missing"])

    assert response.json() == {
        "successes": ["t4"],
        "failures": [{"id": "missing", "message": "API token missing was not found."}],
    }


def test_already_changed_as_rejects_unknown_value(emu: Emulator) -> None:
    with pytest.raises(ValueError, match="already_changed_as"):
        emu.already_changed_as = "ignore"


def test_id_limit_is_fifteen(emu: Emulator, session: requests.Session) -> None:
    token = access_token(emu, session)

    fifteen = change(emu, session, token, [f"id-{index}" for index in range(15)])
    sixteen = change(emu, session, token, [f"id-{index}" for index in range(16)])

    assert fifteen.status_code == 200
    assert "At most 15" in assert_csp_error(sixteen, 400)["message"]


@pytest.mark.parametrize(
    "body",
    [["t1"], {"ids": "t1"}, {"ids": [1, 2]}, {"id": ["t1"]}, None],
    ids=["list", "string-ids", "int-ids", "no-ids", "null"],
)
def test_invalid_body_rejected(emu: Emulator, session: requests.Session, body: object) -> None:
    token = access_token(emu, session)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    response = session.post(emu.url + deactivate_path(), data=json.dumps(body), headers=headers, timeout=TIMEOUT)

    assert_csp_error(response, 400)
    assert emu.token_active(ORG, "t1") is True


def test_malformed_json_and_media_type(emu: Emulator, session: requests.Session) -> None:
    token = access_token(emu, session)
    url = emu.url + deactivate_path()
    json_headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    malformed = session.post(url, data="{ids:", headers=json_headers, timeout=TIMEOUT)
    form = session.post(url, data={"ids": "t1"}, headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT)

    assert_csp_error(malformed, 400)
    assert_csp_error(form, 415)


def test_access_token_errors(emu: Emulator, session: requests.Session) -> None:
    url = emu.url + deactivate_path()

    missing = session.post(url, json={"ids": ["t1"]}, timeout=TIMEOUT)
    unknown = change(emu, session, "not-a-token", ["t1"])
    basic = session.post(url, json={"ids": ["t1"]}, auth=("user", "pass"), timeout=TIMEOUT)

    assert_csp_error(missing, 401)
    assert_csp_error(unknown, 401)
    assert_csp_error(basic, 401)
    assert emu.token_active(ORG, "t1") is True


def test_org_errors(emu: Emulator, session: requests.Session) -> None:
    emu.add_api_token("member-token", user="bob", roles={ORG: "org_member"})
    owner = access_token(emu, session)
    member = access_token(emu, session, "member-token")

    unknown_org = change(emu, session, owner, ["t1"], path=deactivate_path("no-such-org"))
    not_owner = change(emu, session, member, ["t1"])

    assert_csp_error(unknown_org, 404)
    assert_csp_error(not_owner, 403)
    assert emu.token_active(ORG, "t1") is True


def test_service_account_forbidden(emu: Emulator, session: requests.Session) -> None:
    emu.add_client("svc", "s3cret", roles={ORG: "org_owner"})
    form = {"grant_type": "client_credentials"}
    issued = session.post(emu.url + P + "/auth/token", data=form, auth=("svc", "s3cret"), timeout=TIMEOUT)

    response = change(emu, session, issued.json()["access_token"], ["t1"])

    assert "Service accounts" in assert_csp_error(response, 403)["message"]
    assert emu.token_active(ORG, "t1") is True


def test_pre_issued_access_token(emu: Emulator, session: requests.Session) -> None:
    emu.add_access_token("pre-issued", user="carol", roles={ORG: "org_owner"})

    response = change(emu, session, "pre-issued", ["t3"])

    assert response.status_code == 200
    assert response.json()["successes"] == ["t3"]


def test_access_token_lifetime(emu: Emulator, session: requests.Session) -> None:
    before = access_token(emu, session)
    emu.access_token_lifetime = 2
    limited = access_token(emu, session)

    first = change(emu, session, limited, ["t1"])
    second = change(emu, session, limited, ["t2"])
    third = change(emu, session, limited, ["t3"])
    unlimited = change(emu, session, before, ["t3"])

    assert first.status_code == 200
    assert second.status_code == 200
    assert_csp_error(third, 401)
    assert unlimited.status_code == 200


# Routing and the error format


def test_unknown_path_and_wrong_method(emu: Emulator, session: requests.Session) -> None:
    unknown = session.get(emu.url + P + "/nothing-here", timeout=TIMEOUT)
    outside = session.get(emu.url + "/", timeout=TIMEOUT)
    wrong_method = session.get(emu.url + deactivate_path(), timeout=TIMEOUT)

    assert_csp_error(unknown, 404)
    assert_csp_error(outside, 404)
    assert_csp_error(wrong_method, 405)
    assert wrong_method.headers["Allow"] == "POST"


# Faults


def test_fault_respond_with_error_body(emu: Emulator, session: requests.Session) -> None:
    token = access_token(emu, session)
    emu.add_fault(Fault(match="deactivate", status=503, headers={"Retry-After": "7"}))

    faulted = change(emu, session, token, ["t1"])
    passed = change(emu, session, token, ["t1"])

    assert_csp_error(faulted, 503)
    assert faulted.headers["Retry-After"] == "7"
    assert passed.status_code == 200
    assert [record.status for record in emu.api_requests("deactivate")] == [503, 200]


def test_fault_respond_with_html_and_hostile_json(emu: Emulator, session: requests.Session) -> None:
    token = access_token(emu, session)
    page = "<html><body><h1>502 Bad Gateway</h1></body></html>"
    emu.add_fault(Fault(match="deactivate", status=502, body=page, content_type="text/html"))
    emu.add_fault(Fault(match="deactivate", status=200, body={"successes": ["t9"]}))

    html = change(emu, session, token, ["t1"])
    hostile = change(emu, session, token, ["t1"])

    assert html.status_code == 502
    assert html.headers["Content-Type"] == "text/html"
    assert html.text == page
    assert hostile.status_code == 200
    assert hostile.json() == {"successes": ["t9"]}
    assert emu.token_active(ORG, "t1") is True


def test_fault_skip_and_count(emu: Emulator, session: requests.Session) -> None:
    token = access_token(emu, session)
    emu.add_fault(Fault(match="deactivate", skip=1, count=2, status=500))

    statuses = [change(emu, session, token, [f"t{index}"]).status_code for index in (1, 2, 3, 4)]

    assert statuses == [200, 500, 500, 200]


def test_fault_count_none_hits_all(emu: Emulator, session: requests.Session) -> None:
    emu.add_fault(Fault(match="authorize", count=None, status=429))

    statuses = [
        session.post(emu.url + API_TOKEN_AUTHORIZE, data={"api_token": API_TOKEN}, timeout=TIMEOUT).status_code
        for _repeat in range(3)
    ]

    assert statuses == [429, 429, 429]


def test_fault_order_one_per_request(emu: Emulator, session: requests.Session) -> None:
    token = access_token(emu, session)
    emu.add_fault(Fault(match="api", status=500))
    emu.add_fault(Fault(match="deactivate", status=502))

    statuses = [change(emu, session, token, ["t1"]).status_code for _repeat in range(3)]

    assert statuses == [500, 502, 200]


def test_fault_match_kinds(emu: Emulator, session: requests.Session) -> None:
    token = access_token(emu, session)
    emu.add_fault(Fault(match="activate", status=500))
    emu.add_fault(Fault(match="any", status=418))

    deactivate = change(emu, session, token, ["t1"])
    activate = change(emu, session, token, ["t1"], path=activate_path())

    assert deactivate.status_code == 418
    assert activate.status_code == 500


def test_fault_delay(emu: Emulator, session: requests.Session) -> None:
    token = access_token(emu, session)
    emu.add_fault(Fault(match="deactivate", action="delay", delay=0.3))

    started = time.monotonic()
    response = change(emu, session, token, ["t1"])
    elapsed = time.monotonic() - started

    assert response.status_code == 200
    assert elapsed >= 0.3


def test_fault_reset_does_not_apply(emu: Emulator, session: requests.Session) -> None:
    token = access_token(emu, session)
    emu.add_fault(Fault(match="deactivate", action="reset"))

    with pytest.raises(requests.ConnectionError):
        change(emu, session, token, ["t1"])

    assert emu.token_active(ORG, "t1") is True
    assert emu.api_requests("deactivate")[-1].status == 0
    assert change(emu, session, token, ["t1"]).status_code == 200


def test_fault_reset_sends_tcp_rst(emu: Emulator) -> None:
    """Read the raw socket under TLS, because Python's ssl module can report a reset as a plain EOF."""
    emu.add_fault(Fault(match="any", action="reset"))
    context = ssl.create_default_context(cafile=emu.ca_path)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    with socket.create_connection(("127.0.0.1", emu.port), timeout=TIMEOUT) as raw:
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                raw.sendall(outgoing.read())
                incoming.write(raw.recv(65536))
        tls.write(b"GET /anything HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        raw.sendall(outgoing.read())

        with pytest.raises(ConnectionResetError):
            while raw.recv(65536):  # TLS session tickets may arrive before the reset
                pass


def test_fault_apply_then_reset(emu: Emulator, session: requests.Session) -> None:
    token = access_token(emu, session)
    emu.add_fault(Fault(match="deactivate", action="apply_then_reset"))

    with pytest.raises(requests.ConnectionError):
        change(emu, session, token, ["t1", "t2"])

    assert emu.token_active(ORG, "t1") is False
    assert emu.token_active(ORG, "t2") is False
    record = emu.api_requests("deactivate")[-1]
    assert record.status == 200
    assert record.ids == ["t1", "t2"]


def test_fault_hang_until_delay(emu: Emulator, session: requests.Session) -> None:
    token = access_token(emu, session)
    emu.add_fault(Fault(match="deactivate", action="hang", delay=0.3))

    started = time.monotonic()
    with pytest.raises(requests.ConnectionError):
        change(emu, session, token, ["t1"])
    elapsed = time.monotonic() - started

    assert elapsed >= 0.3
    assert emu.token_active(ORG, "t1") is True
    assert emu.api_requests("deactivate")[-1].status == 0


def test_fault_hang_released_by_stop(tmp_path: Path) -> None:
    emulator = Emulator(state_dir=tmp_path).start()
    emulator.add_fault(Fault(match="any", action="hang"))
    with requests.Session() as http:
        http.trust_env = False
        with pytest.raises(requests.ReadTimeout):
            http.get(emulator.url + "/anything", verify=emulator.ca_path, timeout=0.3)

    started = time.monotonic()
    emulator.stop()

    assert time.monotonic() - started < 2


def test_fault_validation() -> None:
    with pytest.raises(ValueError, match="match"):
        Fault(match="everything", status=500)
    with pytest.raises(ValueError, match="action"):
        Fault(match="any", action="explode")
    with pytest.raises(ValueError, match="status"):
        Fault(match="any")
    with pytest.raises(ValueError, match="count"):
        Fault(match="any", status=500, count=0)


# Request log, connections and latency


def test_request_log_contents(emu: Emulator, session: requests.Session) -> None:
    token = access_token(emu, session)
    change(emu, session, token, ["t1", "t2"])

    authorize, deactivate = emu.requests

    assert authorize.kind == "authorize"
    assert authorize.method == "POST"
    assert authorize.form == {"api_token": API_TOKEN}
    assert authorize.json is None
    assert authorize.ids is None
    assert authorize.status == 200
    assert deactivate.path == deactivate_path()
    assert deactivate.json == {"ids": ["t1", "t2"]}
    assert deactivate.ids == ["t1", "t2"]
    assert deactivate.form is None
    assert deactivate.headers["authorization"] == f"Bearer {token}"
    assert deactivate.time >= authorize.time
    assert emu.api_requests("authorize") == [authorize]
    assert emu.api_requests("deactivate") == [deactivate]
    assert emu.api_requests("activate") == []


def test_request_log_is_a_copy(emu: Emulator, session: requests.Session) -> None:
    access_token(emu, session)

    emu.requests.clear()

    assert len(emu.requests) == 1


def test_keep_alive_reuses_connection(emu: Emulator, session: requests.Session) -> None:
    token = access_token(emu, session)
    change(emu, session, token, ["t1"])

    assert emu.connection_count == 1

    with requests.Session() as other:
        other.trust_env = False
        other.get(emu.url + "/_emulator/state", verify=emu.ca_path, timeout=TIMEOUT)
    assert emu.connection_count == 2


def test_keep_alive_has_no_ack_stall(emu: Emulator, session: requests.Session) -> None:
    """A delayed-ACK stall costs about 40 ms per request on Linux, so the median must stay far below that."""
    token = access_token(emu, session)
    durations = []
    for _repeat in range(15):
        started = time.monotonic()
        change(emu, session, token, ["t1"], path=activate_path())
        durations.append(time.monotonic() - started)

    assert sorted(durations)[len(durations) // 2] < 0.03
    assert emu.connection_count == 1


def test_latency_applies_to_api_only(tmp_path: Path) -> None:
    with Emulator(latency=0.2, state_dir=tmp_path) as emulator, requests.Session() as http:
        http.trust_env = False
        http.verify = emulator.ca_path
        http.get(emulator.url + "/_emulator/state", timeout=TIMEOUT)  # opens the connection

        started = time.monotonic()
        http.get(emulator.url + "/_emulator/state", timeout=TIMEOUT)
        control_elapsed = time.monotonic() - started
        started = time.monotonic()
        http.post(emulator.url + API_TOKEN_AUTHORIZE, data={"api_token": "x"}, timeout=TIMEOUT)
        api_elapsed = time.monotonic() - started

    assert control_elapsed < 0.2
    assert api_elapsed >= 0.2
    assert (tmp_path / "ca.pem").is_file()


def test_reset_clears_everything(emu: Emulator, session: requests.Session) -> None:
    token = access_token(emu, session)
    emu.access_token_lifetime = 5
    emu.already_changed_as = "success"
    emu.add_fault(Fault(match="any", status=500))

    emu.reset()

    assert emu.requests == []
    assert emu.connection_count == 0
    assert emu.access_token_lifetime is None
    assert emu.already_changed_as == "failure"
    assert emu.state()["orgs"] == []
    assert emu.state()["pending_faults"] == 0
    assert_csp_error(change(emu, session, token, ["t1"]), 401)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::", "example.com"])
def test_non_loopback_host_rejected(host: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        Emulator(host=host)


# Control endpoints


def test_control_endpoints(emu: Emulator, session: requests.Session) -> None:
    seed = {
        "orgs": [{"id": "seeded", "tokens": [{"id": "s1", "active": True}, {"id": "s2", "active": False}]}],
        "api_tokens": [{"token": "seeded-token", "user": "dave", "roles": {"seeded": "org_owner"}, "passcode": None}],
        "clients": [{"client_id": "c", "client_secret": "cs", "roles": {"seeded": "org_owner"}}],
        "access_tokens": [{"token": "seeded-access", "user": "erin", "roles": {"seeded": "org_owner"}}],
    }
    faults = [{"match": "deactivate", "status": 500}]

    reset = session.post(emu.url + "/_emulator/reset", timeout=TIMEOUT)
    seeded = session.post(emu.url + "/_emulator/seed", json=seed, timeout=TIMEOUT)
    armed = session.post(emu.url + "/_emulator/faults", json=faults, timeout=TIMEOUT)
    state = session.get(emu.url + "/_emulator/state", timeout=TIMEOUT).json()
    faulted = change(emu, session, "seeded-access", ["s1"], path=deactivate_path("seeded"))
    applied = change(emu, session, "seeded-access", ["s1"], path=deactivate_path("seeded"))
    log = session.get(emu.url + "/_emulator/requests", timeout=TIMEOUT).json()

    assert reset.status_code == 200
    assert seeded.status_code == 200
    assert armed.status_code == 200
    assert state["orgs"] == [
        {"id": "seeded", "tokens": [{"id": "s1", "active": True}, {"id": "s2", "active": False}]}
    ]
    assert state["pending_faults"] == 1
    assert faulted.status_code == 500
    assert applied.status_code == 200
    assert emu.token_active("seeded", "s1") is False
    assert [entry["status"] for entry in log] == [500, 200]
    assert log[1]["ids"] == ["s1"]
    assert all(not entry["path"].startswith("/_emulator/") for entry in log)


def test_control_endpoints_reject_bad_input(emu: Emulator, session: requests.Session) -> None:
    bad_seed = session.post(emu.url + "/_emulator/seed", json={"orgz": []}, timeout=TIMEOUT)
    bad_fault = session.post(emu.url + "/_emulator/faults", json=[{"match": "nope"}], timeout=TIMEOUT)
    unknown_key = session.post(emu.url + "/_emulator/faults", json=[{"match": "any", "bogus": 1}], timeout=TIMEOUT)
    not_json = session.post(emu.url + "/_emulator/seed", data="{", timeout=TIMEOUT)
    wrong_method = session.get(emu.url + "/_emulator/reset", timeout=TIMEOUT)
    unknown = session.get(emu.url + "/_emulator/nothing", timeout=TIMEOUT)

    assert_csp_error(bad_seed, 400)
    assert_csp_error(bad_fault, 400)
    assert_csp_error(unknown_key, 400)
    assert_csp_error(not_json, 400)
    assert_csp_error(wrong_method, 405)
    assert_csp_error(unknown, 404)
    assert emu.requests == []


@pytest.mark.parametrize(
    "seed",
    [
        {"orgs": [{"id": "new"}], "api_tokens": [{"user": "no-token-field"}]},
        {"orgs": [{"id": "new", "tokens": [{"id": "n1", "active": "yes"}]}]},
        {"orgs": [{"id": "new"}], "settings": {"already_changed_as": "maybe"}},
    ],
    ids=["missing-field", "wrong-type", "bad-setting"],
)
def test_invalid_seed_changes_nothing(emu: Emulator, seed: dict) -> None:
    before = emu.state()

    with pytest.raises(ValueError):
        emu.seed(seed)

    assert emu.state() == before


def test_seed_settings(emu: Emulator) -> None:
    emu.seed({"settings": {"already_changed_as": "success", "access_token_lifetime": 3}})

    assert emu.already_changed_as == "success"
    assert emu.access_token_lifetime == 3


def test_seed_lifetime_applies_to_seeded_access_tokens(emu: Emulator, session: requests.Session) -> None:
    emu.seed(
        {
            "settings": {"access_token_lifetime": 1},
            "access_tokens": [{"token": "seeded-access-token", "roles": {ORG: "org_owner"}}],
        }
    )

    first = change(emu, session, "seeded-access-token", ["t1"])
    second = change(emu, session, "seeded-access-token", ["t2"])

    assert first.status_code == 200
    assert_csp_error(second, 401)


# Command line


def read_ready_file(path: Path, process: subprocess.Popen[str], deadline: float) -> dict:
    while time.monotonic() < deadline:
        if path.exists():
            return json.loads(path.read_text())
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        time.sleep(0.05)
    raise AssertionError(f"{path} did not appear in time")


def test_cli_start_ready_file_and_sigterm(tmp_path: Path) -> None:
    seed = {
        "orgs": [{"id": ORG, "tokens": [{"id": "t1", "active": True}]}],
        "api_tokens": [{"token": "cli-secret-token", "roles": {ORG: "org_owner"}}],
    }
    seed_path = tmp_path / "seed.json"
    seed_path.write_text(json.dumps(seed))
    state_dir = tmp_path / "state"
    env = {**os.environ, "PYTHONPATH": str(TESTS_DIR)}
    command = [sys.executable, "-m", "csp_emulator", "--port", "0", "--seed", str(seed_path)]
    command += ["--state-dir", str(state_dir), "--latency", "0.01"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready = read_ready_file(state_dir / "emulator.json", process, time.monotonic() + 15)
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        with requests.Session() as http:
            http.trust_env = False
            http.verify = ready["ca_path"]
            issued = http.post(ready["url"] + API_TOKEN_AUTHORIZE, data={"api_token": "cli-secret-token"}, timeout=5)
            token = issued.json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            deactivated = http.post(
                ready["url"] + deactivate_path(), json={"ids": ["t1"]}, headers=headers, timeout=TIMEOUT
            )
        process.send_signal(signal.SIGTERM)
        _stdout, stderr = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)

    assert line == f"CSP emulator listening on {ready['url']}"
    assert ready["url"] == f"https://{ready['api_host']}"
    assert ready["api_host"].startswith("127.0.0.1:")
    assert ready["ca_path"] == str(state_dir / "ca.pem")
    assert ready["pid"] == process.pid
    assert deactivated.json()["successes"] == ["t1"]
    assert process.returncode == 0
    assert not (state_dir / "emulator.json").exists()
    assert f"POST {deactivate_path()} -> 200, 1 ids" in stderr
    assert "cli-secret-token" not in stderr
    assert token not in stderr


def test_cli_rejects_non_loopback_host(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(TESTS_DIR)}
    command = [sys.executable, "-m", "csp_emulator", "--host", "0.0.0.0", "--state-dir", str(tmp_path)]

    process = subprocess.run(command, env=env, capture_output=True, text=True, timeout=15, check=False)

    assert process.returncode == 2
    assert "loopback" in process.stderr
    assert not (tmp_path / "emulator.json").exists()
