"""End-to-end runs of csp_api_token_deactivate against emulator faults: rate limits, 5xx, broken connections,
expired access tokens and malformed 200 responses. Each test checks the module result and what the emulator received.
"""

from __future__ import annotations

import email.utils
import socket
import time

import pytest

from conftest import ORG_ID, token_ids
from csp_emulator import Fault

HTML_PAGE = "<html><head><title>{status} Service Unavailable</title></head><body><h1>Try later</h1></body></html>"
# Seconds allowed for one ansible-playbook run on top of the module's own waits, in the timing checks. This is an
# estimate with a wide margin: a run without waits takes about 3 s on an idle development machine.
ANSIBLE_OVERHEAD = 15.0


def run_case(run_playbook, ids, **options):
    """Run the module once with ``options`` and return the process, its single case result and the seconds it took."""
    started = time.monotonic()
    run = run_playbook("deactivate_cases.yml", {"org_id": ORG_ID, "token_ids": ids, "cases": [{"name": "case", **options}]})
    elapsed = time.monotonic() - started
    assert run.result is not None, run.output
    return run, run.result["results"][0], elapsed


def failed_ids(result):
    return [failure["id"] for failure in result["failures"]]


def deactivate_records(emulator):
    return emulator.api_requests("deactivate")


def assert_accounted(result, requested):
    """Check that deactivated, already_inactive and failures are disjoint and together equal the requested ids."""
    groups = [result["deactivated"], result["already_inactive"], failed_ids(result)]
    combined = sum(groups, [])
    assert len(combined) == len(set(combined)), groups
    assert set(combined) == set(requested)


# 429: Retry-After in seconds, as an HTTP date, absent, and on every request


def test_429_retry_after_seconds(emulator, run_playbook):
    ids = token_ids(3)
    emulator.add_tokens(ORG_ID, ids)
    emulator.add_fault(Fault(match="deactivate", status=429, headers={"Retry-After": "1"}))

    run, result, _elapsed = run_case(run_playbook, ids, retries=2)

    assert result["failed"] is False, run.output
    assert result["deactivated"] == ids
    assert result["retries"] == 1
    first, second = deactivate_records(emulator)
    assert first.status == 429
    assert second.status == 200
    assert 0.9 <= second.time - first.time < 3


def test_429_retry_after_http_date(emulator, run_playbook):
    ids = token_ids(3)
    emulator.add_tokens(ORG_ID, ids)
    # The date lies beyond the few seconds that Ansible needs to start, so the wait it requests is not zero.
    retry_at = int(time.time()) + 8
    retry_at_monotonic = time.monotonic() + (retry_at - time.time())
    header = email.utils.formatdate(retry_at, usegmt=True)
    emulator.add_fault(Fault(match="deactivate", status=429, headers={"Retry-After": header}))

    run, result, _elapsed = run_case(run_playbook, ids, retries=2)

    assert result["failed"] is False, run.output
    assert result["deactivated"] == ids
    assert result["retries"] == 1
    first, second = deactivate_records(emulator)
    assert first.time < retry_at_monotonic
    assert second.time >= retry_at_monotonic - 0.1
    assert second.time < retry_at_monotonic + 1.5


def test_429_without_retry_after_backs_off(emulator, run_playbook):
    ids = token_ids(3)
    emulator.add_tokens(ORG_ID, ids)
    emulator.add_fault(Fault(match="deactivate", status=429, count=2))

    run, result, _elapsed = run_case(run_playbook, ids, retries=3)

    assert result["failed"] is False, run.output
    assert result["deactivated"] == ids
    assert result["retries"] == 2
    first, second, third = deactivate_records(emulator)
    # Equal jitter: the first backoff is 0.25 to 0.5 s, the second 0.5 to 1 s.
    assert 0.2 <= second.time - first.time < 1.5
    assert 0.45 <= third.time - second.time < 2


def test_429_every_request_keeps_earlier_batch(emulator, run_playbook):
    ids = token_ids(40)
    emulator.add_tokens(ORG_ID, ids)
    emulator.add_fault(Fault(match="deactivate", skip=1, count=None, status=429, headers={"Retry-After": "0"}))

    run, result, _elapsed = run_case(run_playbook, ids, retries=2)

    assert result["failed"] is True
    assert result["changed"] is True
    assert result["deactivated"] == ids[:15]
    assert failed_ids(result) == ids[15:]
    assert "rate-limiting" in result["msg"]
    assert "after 3 attempts" in result["msg"]
    assert "HTTP 429" in result["msg"]
    assert result["retries"] == 2
    assert [record.status for record in deactivate_records(emulator)] == [200, 429, 429, 429]
    assert all(emulator.token_active(ORG_ID, token_id) for token_id in ids[15:])
    assert_accounted(result, ids)


# 500, 502, 503 and 504, each with a JSON body and with an HTML page


@pytest.mark.parametrize("body_kind", ["json", "html"])
@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_error_after_first_batch(emulator, run_playbook, status, body_kind):
    ids = token_ids(20)
    emulator.add_tokens(ORG_ID, ids)
    if body_kind == "json":
        body = {"statusCode": status, "message": f"Injected failure {status}", "requestId": "req-5xx"}
        emulator.add_fault(Fault(match="deactivate", skip=1, count=None, status=status, body=body))
        service_words = f"Injected failure {status}"
    else:
        page = HTML_PAGE.format(status=status)
        emulator.add_fault(
            Fault(match="deactivate", skip=1, count=None, status=status, body=page, content_type="text/html")
        )
        service_words = f"{status} Service Unavailable"
    retried = status != 500

    run, result, _elapsed = run_case(run_playbook, ids, retries=1)

    assert result["failed"] is True
    assert result["deactivated"] == ids[:15]
    assert failed_ids(result) == ids[15:]
    assert f"HTTP {status}" in result["msg"]
    assert service_words in result["msg"]
    assert "<html>" not in result["msg"]
    assert "<title>" not in result["msg"]
    assert ("after 2 attempts" in result["msg"]) is retried
    assert len(deactivate_records(emulator)) == (3 if retried else 2)
    outcome = "may or may not have been deactivated" if status != 503 else "was not deactivated"
    assert outcome in result["failures"][0]["message"]
    assert_accounted(result, ids)


# Broken connections: refused, reset, reset in the middle of a response, and no response at all


def closed_loopback_port() -> int:
    """Return a port on 127.0.0.1 that was bound and closed, so that connecting to it is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_connection_refused_bounded(emulator, run_playbook):
    ids = token_ids(20)
    port = closed_loopback_port()

    run, result, elapsed = run_case(run_playbook, ids, api_host=f"127.0.0.1:{port}", timeout=1, retries=2)

    assert result["failed"] is True
    assert result["changed"] is False
    assert result["deactivated"] == []
    assert "refused" in result["msg"].lower()
    assert "after 3 attempts" in result["msg"]
    assert "object at 0x" not in result["msg"]
    assert "was not deactivated" in result["failures"][0]["message"]
    assert "Not sent" in result["failures"][15]["message"]
    assert_accounted(result, ids)
    # Backoff of 0.5 s and 1 s at most, and refused connections return at once.
    assert elapsed < 1.5 + ANSIBLE_OVERHEAD
    assert emulator.requests == []


def test_reset_every_attempt_fails_clearly(emulator, run_playbook):
    ids = token_ids(20)
    emulator.add_tokens(ORG_ID, ids)
    emulator.add_fault(Fault(match="deactivate", skip=1, count=None, action="reset"))

    run, result, _elapsed = run_case(run_playbook, ids, retries=1)

    assert result["failed"] is True
    assert result["deactivated"] == ids[:15]
    assert failed_ids(result) == ids[15:]
    assert "after 2 attempts" in result["msg"]
    assert "closed connection without response" in result["msg"]
    assert "may or may not have been deactivated" in result["failures"][0]["message"]
    assert len(deactivate_records(emulator)) == 3
    assert_accounted(result, ids)


def test_reset_once_then_retried(emulator, run_playbook):
    ids = token_ids(3)
    emulator.add_tokens(ORG_ID, ids)
    emulator.add_fault(Fault(match="deactivate", action="reset"))

    run, result, _elapsed = run_case(run_playbook, ids, retries=1)

    assert result["failed"] is False, run.output
    assert result["deactivated"] == ids
    assert result["retries"] == 1
    assert [record.status for record in deactivate_records(emulator)] == [0, 200]


def test_truncated_response_is_connection_failure(emulator, run_playbook):
    ids = token_ids(3)
    emulator.add_tokens(ORG_ID, ids)
    # The headers promise 4096 bytes, then the connection closes after a few: a reset in the middle of a response.
    emulator.add_fault(
        Fault(match="deactivate", count=None, status=200, body='{"successes": [', headers={"Content-Length": "4096"})
    )

    run, result, _elapsed = run_case(run_playbook, ids, retries=1)

    assert result["failed"] is True
    assert result["deactivated"] == []
    assert "Traceback" not in run.output
    assert "broke in the middle of the response" in result["msg"]
    assert "after 2 attempts" in result["msg"]
    assert "may or may not have been deactivated" in result["failures"][0]["message"]
    assert len(deactivate_records(emulator)) == 2
    assert_accounted(result, ids)


def test_hang_ends_within_timeout(emulator, run_playbook):
    ids = token_ids(3)
    emulator.add_tokens(ORG_ID, ids)
    emulator.add_fault(Fault(match="deactivate", count=None, action="hang", delay=20))

    run, result, elapsed = run_case(run_playbook, ids, timeout=0.5, retries=1)

    assert result["failed"] is True
    assert "0.5 s timeout" in result["msg"]
    assert "after 2 attempts" in result["msg"]
    assert "may or may not have been deactivated" in result["failures"][0]["message"]
    assert len(deactivate_records(emulator)) == 2
    # Two attempts of 0.5 s and one backoff of at most 0.5 s, far below the 20 s the emulator would hold.
    assert elapsed < 1.5 + ANSIBLE_OVERHEAD


# Expiry of the access token during a run


def test_expiry_mid_run_reauthenticates_once(emulator, run_playbook):
    ids = token_ids(60)
    emulator.add_tokens(ORG_ID, ids)
    emulator.access_token_lifetime = 2

    run, result, _elapsed = run_case(run_playbook, ids)

    assert result["failed"] is False, run.output
    assert result["deactivated"] == ids
    assert len(emulator.api_requests("authorize")) == 2
    assert [record.status for record in deactivate_records(emulator)] == [200, 200, 401, 200, 200]


def test_401_after_reauthentication_fails(emulator, run_playbook):
    ids = token_ids(40)
    emulator.add_tokens(ORG_ID, ids)
    emulator.access_token_lifetime = 1
    # The first request succeeds, the second finds the token expired, and every request after that gets 401.
    emulator.add_fault(Fault(match="deactivate", skip=2, count=None, status=401))

    run, result, _elapsed = run_case(run_playbook, ids, retries=2)

    assert result["failed"] is True
    assert result["deactivated"] == ids[:15]
    assert failed_ids(result) == ids[15:]
    assert "HTTP 401" in result["msg"]
    assert "freshly issued access token" in result["msg"]
    assert "Not sent" in result["failures"][-1]["message"]
    assert len(emulator.api_requests("authorize")) == 2
    assert [record.status for record in deactivate_records(emulator)] == [200, 401, 401]
    assert_accounted(result, ids)


# Malformed 200 responses


def malformed_body(kind, ids):
    if kind == "not_json":
        return "<html><body>Maintenance</body></html>"
    if kind == "no_successes":
        return {"failures": [{"id": ids[0], "message": f"API token {ids[0]} was not found."}]}
    if kind == "no_failures":
        return {"successes": [ids[0]]}
    if kind == "omits_ids":
        return {"successes": [ids[0]], "failures": []}
    if kind == "unrequested_ids":
        return {"successes": [ids[0], "ffffffff-0000-4000-8000-000000000001"], "failures": [
            {"id": "ffffffff-0000-4000-8000-000000000002", "message": "API token was not found."}
        ]}
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["not_json", "no_successes", "no_failures", "omits_ids", "unrequested_ids"])
def test_malformed_200_reported(emulator, run_playbook, kind):
    ids = token_ids(3)
    emulator.add_tokens(ORG_ID, ids)
    body = malformed_body(kind, ids)
    content_type = "text/html" if isinstance(body, str) else "application/json"
    emulator.add_fault(Fault(match="deactivate", status=200, body=body, content_type=content_type))

    run, result, _elapsed = run_case(run_playbook, ids, retries=0)

    assert result["failed"] is True
    assert_accounted(result, ids)
    reported_deactivated = [] if kind in ("not_json", "no_successes") else [ids[0]]
    assert result["deactivated"] == reported_deactivated
    assert result["already_inactive"] == []
    assert len(deactivate_records(emulator)) == 1
    messages = [failure["message"] for failure in result["failures"]]
    if kind == "not_json":
        assert all("not a JSON object" in message for message in messages)
        assert all("Maintenance" in message for message in messages)
    elif kind == "no_successes":
        assert "not found" in messages[0]
        assert all("did not mention this id" in message for message in messages[1:])
    else:
        assert all("did not mention this id" in message for message in messages)
    if kind == "unrequested_ids":
        assert "named 2 id(s) that were not in the request" in run.output
        assert "ffffffff-0000-4000-8000-000000000001" not in result["deactivated"]


# The ambiguous retry: applied, then the connection dropped before the response


def test_ambiguous_retry_reports_changed(emulator, run_playbook):
    ids = token_ids(20)
    emulator.add_tokens(ORG_ID, ids)
    emulator.add_tokens(ORG_ID, ids[:2], active=False)
    emulator.add_fault(Fault(match="deactivate", action="apply_then_reset"))

    run, result, _elapsed = run_case(run_playbook, ids, retries=1)

    assert result["failed"] is False, run.output
    assert result["changed"] is True
    # The first attempt applied the batch, so the retry finds every id of it inactive. The two that were
    # inactive before the run cannot be distinguished from the ones this run deactivated.
    assert result["deactivated"] == ids
    assert result["already_inactive"] == []
    assert result["failures"] == []
    assert "15 token(s) were reported as already inactive after a retry" in run.output
    assert "may have been applied" in run.output
    first, second, third = deactivate_records(emulator)
    # The emulator logs an applied request with the status it would have sent before it reset the connection.
    assert first.status == 200
    assert first.ids == second.ids == ids[:15]
    assert third.ids == ids[15:]
    assert not any(emulator.token_active(ORG_ID, token_id) for token_id in ids)


# Scale


@pytest.mark.slow
def test_fifteen_thousand_ids(emulator, run_playbook):
    ids = token_ids(15000)
    emulator.add_tokens(ORG_ID, ids)
    known_inactive = ids[100:130]
    emulator.add_tokens(ORG_ID, known_inactive, active=False)
    unknown = token_ids(5, prefix="unknown")

    run, result, _elapsed = run_case(run_playbook, ids + unknown + ids[:50])

    assert result["failed"] is True
    assert result["requests"] == 1001
    assert len(deactivate_records(emulator)) == 1001
    assert len(result["deactivated"]) == 15000 - 30
    assert result["already_inactive"] == known_inactive
    assert failed_ids(result) == unknown
    assert_accounted(result, ids + unknown)
    assert not any(emulator.token_active(ORG_ID, token_id) for token_id in ids)


# Bodies that break the HTTP or JSON libraries themselves


@pytest.mark.parametrize(
    "fault",
    [
        Fault(match="deactivate", skip=1, count=None, status=200, headers={"Content-Encoding": "gzip"}, body="not gzip"),
        Fault(match="deactivate", skip=1, count=None, status=200, body="[" * 100_000 + "]" * 100_000),
    ],
    ids=["undecodable gzip", "json nested too deep"],
)
def test_broken_body_keeps_earlier_batch(emulator, run_playbook, fault):
    ids = token_ids(20)
    emulator.add_tokens(ORG_ID, ids)
    emulator.add_fault(fault)

    run, result, _elapsed = run_case(run_playbook, ids, retries=1)

    assert result["failed"] is True, run.output
    assert result["changed"] is True
    assert result["deactivated"] == ids[:15]
    assert failed_ids(result) == ids[15:]
    assert "Traceback" not in run.output
    assert_accounted(result, ids)
