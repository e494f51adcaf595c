"""Unit tests of parallel batches (max_concurrency) with the real client against the emulator."""

from __future__ import annotations

import pytest

from ansible_collections.csp.iam.plugins.module_utils._auth import ApiTokenAuth
from ansible_collections.csp.iam.plugins.module_utils._client import CspClient
from ansible_collections.csp.iam.plugins.module_utils._retry import RetryPolicy
from ansible_collections.csp.iam.plugins.module_utils._token_state import DEACTIVATE, change_token_state
from conftest import API_TOKEN, ORG_ID, token_ids
from csp_emulator import Fault


@pytest.fixture
def client(emulator):
    client = CspClient(emulator.url, ApiTokenAuth(API_TOKEN), verify=emulator.ca_path, timeout=10)
    yield client
    client.close()


def assert_accounted(result, ids):
    failed = [failure["id"] for failure in result.failures]
    assert sorted(result.changed + result.already + failed) == sorted(ids)
    assert len(set(result.changed) | set(result.already) | set(failed)) == len(ids)
    for group in (result.changed, result.already, failed):
        assert group == [token_id for token_id in ids if token_id in set(group)], "a group lost the request order"


def test_parallel_batches_all_accounted(emulator, client):
    ids = token_ids(150)
    emulator.add_tokens(ORG_ID, ids)

    result = change_token_state(client, ORG_ID, ids, DEACTIVATE, max_concurrency=4)

    assert result.changed == ids
    assert result.failures == []
    assert result.requests_sent == 10
    sent = [record.ids for record in emulator.api_requests("deactivate")]
    assert len(sent) == 10
    assert all(len(batch) <= 15 for batch in sent)
    assert sorted(sum(sent, [])) == sorted(ids)


def test_slow_first_batch_keeps_order(emulator, client):
    ids = token_ids(60)
    emulator.add_tokens(ORG_ID, ids)
    emulator.add_fault(Fault(match="deactivate", action="delay", delay=0.5))

    result = change_token_state(client, ORG_ID, ids, DEACTIVATE, max_concurrency=4)

    assert result.changed == ids
    assert result.requests_sent == 4


def test_429_on_one_worker_pauses_all(emulator, client):
    ids = token_ids(120)
    emulator.add_tokens(ORG_ID, ids)
    emulator.add_fault(Fault(match="deactivate", skip=2, status=429, headers={"Retry-After": "1"}))

    result = change_token_state(client, ORG_ID, ids, DEACTIVATE, max_concurrency=4)

    assert result.changed == ids
    records = emulator.api_requests("deactivate")
    limited_at = next(record.time for record in records if record.status == 429)
    # Requests already in flight arrive within a few milliseconds; nothing new may start during the wait.
    during_wait = [record for record in records if limited_at + 0.2 < record.time < limited_at + 0.9]
    assert during_wait == []
    assert client.retry_count == 1


def test_failed_batch_stops_new_batches(emulator, client):
    ids = token_ids(150)
    emulator.add_tokens(ORG_ID, ids)
    # The first request to arrive fails while the other is in flight. Latency keeps that worker busy long enough
    # that it can start at most one more batch before the failure is recorded.
    emulator.latency = 0.1
    emulator.add_fault(Fault(match="deactivate", status=500))

    try:
        result = change_token_state(client, ORG_ID, ids, DEACTIVATE, max_concurrency=2)
    finally:
        emulator.latency = 0

    assert_accounted(result, ids)
    assert result.error is not None
    assert result.error.status == 500
    assert 15 <= len(result.changed) <= 30
    assert len(emulator.api_requests("deactivate")) <= 3
    not_sent = [failure for failure in result.failures if failure["message"].startswith("Not sent")]
    assert len(not_sent) >= 105, "queued batches after the failure must not be sent"
    for token_id in result.changed:
        assert not emulator.token_active(ORG_ID, token_id)
    for failure in not_sent:
        assert emulator.token_active(ORG_ID, failure["id"])


def test_expiry_renewed_once_across_workers(emulator):
    ids = token_ids(120)
    emulator.add_tokens(ORG_ID, ids)
    emulator.access_token_lifetime = 4
    client = CspClient(emulator.url, ApiTokenAuth(API_TOKEN), verify=emulator.ca_path, timeout=10)

    result = change_token_state(client, ORG_ID, ids, DEACTIVATE, max_concurrency=4)

    client.close()
    assert result.changed == ids
    assert client.reauthentication_count >= 1
    # Eight requests of four uses per token need two tokens; racing workers may need one more.
    assert len(emulator.api_requests("authorize")) <= 4


def test_gate_wait_uses_policy_backoff(emulator):
    ids = token_ids(45)
    emulator.add_tokens(ORG_ID, ids)
    emulator.add_fault(Fault(match="deactivate", status=503, count=2))
    waits = []
    client = CspClient(
        emulator.url,
        ApiTokenAuth(API_TOKEN),
        verify=emulator.ca_path,
        timeout=10,
        retry_policy=RetryPolicy(backoff_base=0.05),
        sleep=waits.append,
        rng=lambda: 1.0,
    )

    result = change_token_state(client, ORG_ID, ids, DEACTIVATE, max_concurrency=3)

    client.close()
    assert result.changed == ids
    assert client.retry_count == 2
    assert waits, "a retry must wait before it is sent again"
    assert max(waits) <= 0.1


def test_rejected_login_not_repeated_by_workers(emulator):
    ids = token_ids(120)
    emulator.add_tokens(ORG_ID, ids)
    client = CspClient(emulator.url, ApiTokenAuth("wrong-api-token-000"), verify=emulator.ca_path, timeout=10)

    result = change_token_state(client, ORG_ID, ids, DEACTIVATE, max_concurrency=8)

    client.close()
    assert result.changed == []
    assert sorted(failure["id"] for failure in result.failures) == sorted(ids)
    assert result.requests_sent == 0
    assert len(emulator.api_requests("authorize")) == 1
    assert emulator.api_requests("deactivate") == []
