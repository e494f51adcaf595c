"""Unit tests of the HTTP client against the local CSP emulator, without Ansible."""

from __future__ import annotations

import email.utils
import socket
import threading
import time

import pytest

from ansible_collections.csp.iam.plugins.module_utils._auth import AccessTokenAuth, ApiTokenAuth, ClientCredentialsAuth
from ansible_collections.csp.iam.plugins.module_utils._client import CspClient
from ansible_collections.csp.iam.plugins.module_utils._errors import CspApiError, CspAuthError, CspConnectionError
from ansible_collections.csp.iam.plugins.module_utils._retry import RetryPolicy
from conftest import API_TOKEN, ORG_ID
from csp_emulator import Fault

DEACTIVATE_PATH = f"/csp/gateway/am/api/orgs/{ORG_ID}/api-tokens/deactivate"
HTML_PAGE = "<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>"


class RecordingSleep:
    """Stands in for time.sleep and time.monotonic: records each wait and advances a fake clock at once."""

    def __init__(self):
        self.waits = []
        self.now = 1000.0

    def __call__(self, seconds):
        self.waits.append(seconds)
        self.now += seconds

    def clock(self):
        return self.now


@pytest.fixture
def sleep():
    return RecordingSleep()


@pytest.fixture
def make_client(emulator, sleep):
    clients = []

    def make(authenticator=None, **options):
        options.setdefault("verify", emulator.ca_path)
        options.setdefault("timeout", 5)
        options.setdefault("sleep", sleep)
        options.setdefault("clock", sleep.clock)
        options.setdefault("rng", lambda: 1.0)
        client = CspClient(emulator.url, authenticator or ApiTokenAuth(API_TOKEN), **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def test_api_token_exchange_then_bearer(emulator, make_client):
    emulator.add_tokens(ORG_ID, ["a"])
    response = make_client().post_json(DEACTIVATE_PATH, {"ids": ["a"]})

    assert response.status == 200
    assert response.data["successes"] == ["a"]
    authorize, deactivate = emulator.requests
    assert authorize.form == {"api_token": API_TOKEN}
    assert authorize.query == {}
    assert deactivate.headers["authorization"].startswith("Bearer ")
    assert deactivate.json == {"ids": ["a"]}
    assert not emulator.token_active(ORG_ID, "a")


def test_passcode_sent_in_form(emulator, make_client):
    emulator.add_api_token("mfa-api-token-0001", roles={ORG_ID: "org_owner"}, passcode="123456")
    emulator.add_tokens(ORG_ID, ["a"])
    make_client(ApiTokenAuth("mfa-api-token-0001", "123456")).post_json(DEACTIVATE_PATH, {"ids": ["a"]})
    assert emulator.api_requests("authorize")[0].form == {"api_token": "mfa-api-token-0001", "passcode": "123456"}


def test_client_credentials_grant(emulator, make_client):
    emulator.add_client("ci-app", "client-secret-0001", roles={ORG_ID: "org_owner"})
    client = make_client(ClientCredentialsAuth("ci-app", "client-secret-0001", ORG_ID))
    client.authenticate()
    request = emulator.api_requests("authorize")[0]
    assert request.form == {"grant_type": "client_credentials", "orgId": ORG_ID}
    assert request.headers["authorization"].startswith("Basic ")


def test_access_token_used_as_is(emulator, make_client):
    emulator.add_access_token("given-access-token-01", roles={ORG_ID: "org_owner"})
    emulator.add_tokens(ORG_ID, ["a"])
    make_client(AccessTokenAuth("given-access-token-01")).post_json(DEACTIVATE_PATH, {"ids": ["a"]})
    assert emulator.api_requests("authorize") == []
    assert emulator.requests[0].headers["authorization"] == "Bearer given-access-token-01"


def test_invalid_api_token_rejected(emulator, make_client):
    with pytest.raises(CspAuthError) as error:
        make_client(ApiTokenAuth("wrong-api-token-000")).authenticate()
    assert error.value.status == 400
    assert "invalid_grant" in str(error.value)
    assert "Generate a new API token" in str(error.value)
    assert "wrong-api-token-000" not in str(error.value)


def test_expired_access_token_renewed_once(emulator, make_client):
    emulator.access_token_lifetime = 1
    emulator.add_tokens(ORG_ID, ["a", "b"])
    client = make_client()
    client.post_json(DEACTIVATE_PATH, {"ids": ["a"]})
    response = client.post_json(DEACTIVATE_PATH, {"ids": ["b"]})

    assert response.data["successes"] == ["b"]
    assert client.reauthentication_count == 1
    assert [record.kind for record in emulator.requests] == [
        "authorize", "deactivate", "deactivate", "authorize", "deactivate"
    ]


def test_second_401_fails_without_loop(emulator, make_client):
    emulator.add_fault(Fault(match="deactivate", status=401, count=None))
    with pytest.raises(CspAuthError) as error:
        make_client().post_json(DEACTIVATE_PATH, {"ids": ["a"]})
    assert error.value.status == 401
    assert len(emulator.api_requests("authorize")) == 2
    assert len(emulator.api_requests("deactivate")) == 2


def test_expired_given_access_token_not_renewed(emulator, make_client):
    with pytest.raises(CspAuthError) as error:
        make_client(AccessTokenAuth("unknown-access-token")).post_json(DEACTIVATE_PATH, {"ids": ["a"]})
    assert "Pass a fresh access_token" in str(error.value)
    assert len(emulator.requests) == 1


def test_429_retry_after_seconds_honoured(emulator, make_client, sleep):
    emulator.add_tokens(ORG_ID, ["a"])
    emulator.add_fault(Fault(match="deactivate", status=429, headers={"Retry-After": "3"}))
    client = make_client()
    response = client.post_json(DEACTIVATE_PATH, {"ids": ["a"]})
    assert response.data["successes"] == ["a"]
    assert sleep.waits == [3.0]
    assert client.retry_count == 1
    assert response.may_have_applied_earlier is False


def test_429_retry_after_http_date_honoured(emulator, make_client, sleep):
    emulator.add_tokens(ORG_ID, ["a"])
    header = email.utils.formatdate(time.time() + 20, usegmt=True)
    emulator.add_fault(Fault(match="deactivate", status=429, headers={"Retry-After": header}))
    make_client().post_json(DEACTIVATE_PATH, {"ids": ["a"]})
    assert len(sleep.waits) == 1
    assert 18 <= sleep.waits[0] <= 21


def test_429_without_retry_after_backs_off(emulator, make_client, sleep):
    emulator.add_fault(Fault(match="deactivate", status=429, count=3))
    emulator.add_tokens(ORG_ID, ["a"])
    make_client(retry_policy=RetryPolicy(retries=5, backoff_base=0.5)).post_json(DEACTIVATE_PATH, {"ids": ["a"]})
    assert sleep.waits == [0.5, 1.0, 2.0]


def test_429_every_time_gives_up_after_retries(emulator, make_client, sleep):
    emulator.add_fault(Fault(match="deactivate", status=429, count=None))
    with pytest.raises(CspApiError) as error:
        make_client(retry_policy=RetryPolicy(retries=2)).post_json(DEACTIVATE_PATH, {"ids": ["a"]})
    assert error.value.status == 429
    assert error.value.attempts == 3
    assert "after 3 attempts" in str(error.value)
    assert "rate-limiting" in str(error.value)
    assert len(emulator.api_requests("deactivate")) == 3


def test_long_retry_after_ends_retries(emulator, make_client, sleep):
    emulator.add_fault(Fault(match="deactivate", status=429, headers={"Retry-After": "3600"}))
    with pytest.raises(CspApiError) as error:
        make_client().post_json(DEACTIVATE_PATH, {"ids": ["a"]})
    assert sleep.waits == []
    assert "Retry-After" in str(error.value)


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_errors_retried(emulator, make_client, status):
    emulator.add_tokens(ORG_ID, ["a"])
    emulator.add_fault(Fault(match="deactivate", status=status, body=HTML_PAGE, content_type="text/html"))
    response = make_client().post_json(DEACTIVATE_PATH, {"ids": ["a"]})
    assert response.data["successes"] == ["a"]
    assert response.may_have_applied_earlier is (status != 503)


@pytest.mark.parametrize("status", [400, 403, 404, 409, 500])
def test_client_errors_not_retried(emulator, make_client, status):
    emulator.add_fault(Fault(match="deactivate", status=status))
    with pytest.raises(CspApiError) as error:
        make_client().post_json(DEACTIVATE_PATH, {"ids": ["a"]})
    assert error.value.status == status
    assert len(emulator.api_requests("deactivate")) == 1


def test_error_names_status_message_and_ids(emulator, make_client):
    body = {"statusCode": 409, "message": "Conflict on token", "requestId": "req-42", "traceId": "trace-7"}
    emulator.add_fault(Fault(match="deactivate", status=409, body=body))
    with pytest.raises(CspApiError) as error:
        make_client().post_json(DEACTIVATE_PATH, {"ids": ["a"]})
    message = str(error.value)
    assert "HTTP 409" in message
    assert "Conflict on token" in message
    assert "requestId req-42" in message
    assert "traceId trace-7" in message
    assert error.value.request_id == "req-42"


def test_html_error_page_gives_snippet(emulator, make_client):
    emulator.add_fault(Fault(match="deactivate", status=502, body=HTML_PAGE, content_type="text/html", count=None))
    with pytest.raises(CspApiError) as error:
        make_client(retry_policy=RetryPolicy(retries=1)).post_json(DEACTIVATE_PATH, {"ids": ["a"]})
    assert "502 Bad Gateway" in str(error.value)
    assert "<html>" not in str(error.value)
    assert error.value.may_have_applied is True


def test_echoed_secret_scrubbed(emulator, make_client):
    body = {"message": f"bad token {API_TOKEN} and access_token=abcdef123456", "requestId": "r"}
    emulator.add_fault(Fault(match="deactivate", status=400, body=body))
    with pytest.raises(CspApiError) as error:
        make_client().post_json(DEACTIVATE_PATH, {"ids": ["a"]})
    assert API_TOKEN not in str(error.value)
    assert "abcdef123456" not in str(error.value)


def test_reset_after_apply_marks_may_have_applied(emulator, make_client):
    emulator.add_tokens(ORG_ID, ["a"])
    emulator.add_fault(Fault(match="deactivate", action="apply_then_reset"))
    response = make_client().post_json(DEACTIVATE_PATH, {"ids": ["a"]})
    assert response.may_have_applied_earlier is True
    assert response.data["failures"][0]["id"] == "a"
    assert len(emulator.api_requests("deactivate")) == 2


def test_read_timeout_retried_then_fails(emulator, make_client):
    emulator.add_fault(Fault(match="deactivate", action="hang", count=None, delay=3))
    started = time.monotonic()
    with pytest.raises(CspConnectionError) as error:
        make_client(timeout=0.5, retry_policy=RetryPolicy(retries=1)).post_json(DEACTIVATE_PATH, {"ids": ["a"]})
    assert time.monotonic() - started < 3
    assert "after 2 attempts" in str(error.value)
    assert "0.5 s timeout" in str(error.value)
    assert error.value.may_have_applied is True


def test_connection_refused_not_applied(make_client, sleep):
    client = CspClient(
        "https://127.0.0.1:9",
        ApiTokenAuth(API_TOKEN),
        timeout=2,
        sleep=sleep,
        clock=sleep.clock,
        retry_policy=RetryPolicy(retries=2),
    )
    with pytest.raises(CspConnectionError) as error:
        client.authenticate()
    assert "refused" in str(error.value).lower()
    assert "object at 0x" not in str(error.value)
    assert error.value.may_have_applied is False
    assert len(sleep.waits) == 2


def test_untrusted_certificate_names_ca_path(emulator, make_client):
    with pytest.raises(CspConnectionError) as error:
        make_client(verify=True).authenticate()
    assert "CERTIFICATE_VERIFY_FAILED" in str(error.value)
    assert "ca_path" in str(error.value)


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_validate_certs_false_connects(emulator, make_client):
    make_client(verify=False).authenticate()
    assert len(emulator.api_requests("authorize")) == 1


def test_ca_bundle_env_ignored_by_default(emulator, make_client, monkeypatch):
    # The emulator's CA in the environment must not make verify=True trust the emulator.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", emulator.ca_path)
    monkeypatch.setenv("CURL_CA_BUNDLE", emulator.ca_path)
    with pytest.raises(CspConnectionError):
        make_client(verify=True).authenticate()


def test_ca_path_wins_over_ca_bundle_env(emulator, make_client, monkeypatch, tmp_path):
    unrelated_bundle = tmp_path / "unrelated.pem"
    unrelated_bundle.write_text("")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(unrelated_bundle))
    monkeypatch.setenv("CURL_CA_BUNDLE", str(unrelated_bundle))
    make_client(verify=emulator.ca_path).authenticate()
    assert len(emulator.api_requests("authorize")) == 1


def test_one_connection_for_many_requests(emulator, make_client):
    emulator.add_tokens(ORG_ID, [f"t{index}" for index in range(30)])
    client = make_client()
    for start in (0, 15):
        client.post_json(DEACTIVATE_PATH, {"ids": [f"t{index}" for index in range(start, start + 15)]})
    assert emulator.connection_count == 1


def test_broken_tls_retried_as_connection_failure(sleep):
    # A server that replies to a TLS handshake with plain text breaks the connection without a certificate error.
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    accepted = []

    def answer_in_plain_text():
        for _attempt in range(3):
            try:
                connection, _address = listener.accept()
            except OSError:
                return
            accepted.append(connection)
            connection.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            connection.close()

    thread = threading.Thread(target=answer_in_plain_text, daemon=True)
    thread.start()
    port = listener.getsockname()[1]
    client = CspClient(
        f"https://127.0.0.1:{port}",
        ApiTokenAuth(API_TOKEN),
        timeout=5,
        sleep=sleep,
        clock=sleep.clock,
        retry_policy=RetryPolicy(retries=2),
    )

    with pytest.raises(CspConnectionError) as error:
        client.authenticate()

    thread.join(timeout=10)
    listener.close()
    assert len(accepted) == 3
    assert "TLS connection broke" in str(error.value)
    assert "ca_path" not in str(error.value)
    assert "after 3 attempts" in str(error.value)


def test_single_attempt_message_is_singular(sleep):
    client = CspClient(
        "https://127.0.0.1:9", ApiTokenAuth(API_TOKEN), timeout=2, sleep=sleep, retry_policy=RetryPolicy(retries=0)
    )
    with pytest.raises(CspConnectionError) as error:
        client.authenticate()
    assert "after 1 attempt:" in str(error.value)


def test_slow_body_ends_at_timeout(sleep):
    # A server that sends its body one byte at a time never trips the timeout of a single socket read.
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    stop = threading.Event()

    def drip_one_response():
        try:
            connection, _address = listener.accept()
        except OSError:
            return
        with connection:
            connection.recv(65536)
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n")
            for _byte in range(50):
                if stop.wait(0.2):
                    return
                connection.sendall(b" ")

    thread = threading.Thread(target=drip_one_response, daemon=True)
    thread.start()
    client = CspClient(
        f"http://127.0.0.1:{listener.getsockname()[1]}",
        AccessTokenAuth("given-access-token-01"),
        timeout=1,
        sleep=sleep,
        retry_policy=RetryPolicy(retries=0),
    )

    started = time.monotonic()
    with pytest.raises(CspConnectionError) as error:
        client.post_json(DEACTIVATE_PATH, {"ids": ["a"]})
    elapsed = time.monotonic() - started

    stop.set()
    thread.join(timeout=10)
    listener.close()
    assert elapsed < 3
    assert "did not arrive completely within the 1 s timeout" in str(error.value)
    assert error.value.may_have_applied is True


def test_broken_token_exchange_marks_api_request_unsent(emulator, make_client):
    emulator.add_fault(Fault(match="authorize", action="reset", count=None))
    with pytest.raises(CspConnectionError) as error:
        make_client(retry_policy=RetryPolicy(retries=1)).post_json(DEACTIVATE_PATH, {"ids": ["a"]})
    assert error.value.api_request_sent is False
    assert error.value.may_have_applied is False
    assert emulator.api_requests("deactivate") == []


def test_renewal_with_spent_passcode_explains(emulator, make_client):
    emulator.add_api_token("mfa-api-token-0001", roles={ORG_ID: "org_owner"}, passcode="123456")
    emulator.add_tokens(ORG_ID, ["a", "b"])
    emulator.access_token_lifetime = 1
    client = make_client(ApiTokenAuth("mfa-api-token-0001", "123456"))
    client.post_json(DEACTIVATE_PATH, {"ids": ["a"]})
    emulator.add_fault(Fault(match="authorize", status=400))

    with pytest.raises(CspAuthError) as error:
        client.post_json(DEACTIVATE_PATH, {"ids": ["b"]})

    assert "one-time passcode was already spent" in str(error.value)
    assert error.value.api_request_sent is True
    assert error.value.may_have_applied is False


def test_refused_proxy_named_and_not_applied(emulator, make_client, monkeypatch, sleep):
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("NO_PROXY", "")
    monkeypatch.delenv("no_proxy", raising=False)

    with pytest.raises(CspConnectionError) as error:
        make_client(retry_policy=RetryPolicy(retries=1)).authenticate()

    assert "HTTPS_PROXY" in str(error.value)
    assert "NewConnectionError(" not in str(error.value)
    assert error.value.may_have_applied is False
    assert emulator.requests == []
