"""Unit tests of batching and accounting, with a scripted client in place of HTTP."""

from __future__ import annotations

import pytest

from ansible_collections.csp.iam.plugins.module_utils._client import ApiResponse
from ansible_collections.csp.iam.plugins.module_utils._errors import CspApiError, CspAuthError, CspConnectionError
from ansible_collections.csp.iam.plugins.module_utils._redact import MASK, Redactor
from ansible_collections.csp.iam.plugins.module_utils._token_state import (
    ACTIVATE,
    DEACTIVATE,
    change_token_state,
    chunk,
)

ORG_ID = "8a3c1f52-3c57-4a5e-9d4b-1f0e2d7c6b5a"


class ScriptedClient:
    """A client that returns the next scripted item for each post_json call.

    An item is an ApiResponse, a callable that builds one from the ids, or an exception to raise.
    """

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls = []

    def post_json(self, path, payload):
        self.calls.append((path, payload))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        if callable(answer):
            return answer(payload["ids"])
        return answer


def ok(data, *, may_have_applied_earlier=False, status=200, snippet=""):
    return ApiResponse(status, data, snippet, "req-1", 1, may_have_applied_earlier)


def all_succeed(ids):
    return ok({"successes": list(ids), "failures": []})


def ids(count):
    return [f"id-{index:03d}" for index in range(count)]


def test_chunk_keeps_order_and_limit():
    batches = chunk(ids(31))
    assert [len(batch) for batch in batches] == [15, 15, 1]
    assert sum(batches, []) == ids(31)


def test_batches_sent_in_order():
    client = ScriptedClient(all_succeed, all_succeed, all_succeed)
    result = change_token_state(client, ORG_ID, ids(40), DEACTIVATE)
    assert [len(payload["ids"]) for _path, payload in client.calls] == [15, 15, 10]
    assert client.calls[0][0] == f"/csp/gateway/am/api/orgs/{ORG_ID}/api-tokens/deactivate"
    assert result.changed == ids(40)
    assert result.already == []
    assert result.failures == []
    assert result.requests_sent == 3


def test_activate_uses_activate_path():
    client = ScriptedClient(all_succeed)
    change_token_state(client, ORG_ID, ["a"], ACTIVATE)
    assert client.calls[0][0].endswith("/api-tokens/activate")


def test_partial_success_accounted():
    response = ok(
        {
            "successes": ["a"],
            "failures": [
                {"id": "b", "message": "API token b is already deactivated."},
                {"id": "c", "message": "API token c was not found."},
            ],
        }
    )
    result = change_token_state(ScriptedClient(response), ORG_ID, ["a", "b", "c", "d"], DEACTIVATE)
    assert result.changed == ["a"]
    assert result.already == ["b"]
    assert result.failures[0] == {"id": "c", "message": "API token c was not found."}
    assert result.failures[1]["id"] == "d"
    assert "did not mention" in result.failures[1]["message"]


@pytest.mark.parametrize("data", [{}, {"successes": None, "failures": None}, {"successes": "x", "failures": {}}])
def test_missing_or_null_lists_fail_every_id(data):
    result = change_token_state(ScriptedClient(ok(data)), ORG_ID, ["a", "b"], DEACTIVATE)
    assert result.changed == []
    assert [failure["id"] for failure in result.failures] == ["a", "b"]


def test_non_json_body_fails_batch():
    response = ok(None, snippet="Service Unavailable")
    result = change_token_state(ScriptedClient(response), ORG_ID, ["a"], DEACTIVATE)
    assert result.changed == []
    assert "not a JSON object" in result.failures[0]["message"]
    assert "Service Unavailable" in result.failures[0]["message"]


def test_unrequested_ids_ignored_with_warning():
    response = ok({"successes": ["a", "intruder"], "failures": [{"id": "ghost", "message": "x"}]})
    result = change_token_state(ScriptedClient(response), ORG_ID, ["a"], DEACTIVATE)
    assert result.changed == ["a"]
    assert result.failures == []
    assert len(result.warnings) == 1
    assert "ghost, intruder" in result.warnings[0]


def test_success_objects_with_id_accepted():
    response = ok({"successes": [{"id": "a"}], "failures": [{"id": "b"}]})
    result = change_token_state(ScriptedClient(response), ORG_ID, ["a", "b"], DEACTIVATE)
    assert result.changed == ["a"]
    assert result.failures == [{"id": "b", "message": "The service gave no reason."}]


def test_later_batch_failure_keeps_earlier_successes():
    error = CspApiError("Request failed with HTTP 500.", status=500, may_have_applied=True)
    client = ScriptedClient(all_succeed, error)
    result = change_token_state(client, ORG_ID, ids(40), DEACTIVATE)
    assert result.changed == ids(15)
    assert [failure["id"] for failure in result.failures] == ids(40)[15:]
    assert "may or may not have been deactivated" in result.failures[0]["message"]
    assert "Not sent" in result.failures[-1]["message"]
    assert result.error is error
    assert len(client.calls) == 2


def test_refused_connection_says_not_deactivated():
    error = CspConnectionError("connection refused", may_have_applied=False)
    result = change_token_state(ScriptedClient(error), ORG_ID, ["a"], DEACTIVATE)
    assert "was not deactivated" in result.failures[0]["message"]


def test_forbidden_names_owner_role():
    error = CspApiError("Request failed with HTTP 403.", status=403)
    result = change_token_state(ScriptedClient(error), ORG_ID, ["a"], DEACTIVATE)
    assert "Organization Owner" in result.failures[0]["message"]


def test_already_after_ambiguous_retry_counts_as_changed():
    response = ok(
        {"successes": [], "failures": [{"id": "a", "message": "API token a is already deactivated."}]},
        may_have_applied_earlier=True,
    )
    result = change_token_state(ScriptedClient(response), ORG_ID, ["a"], DEACTIVATE)
    assert result.changed == ["a"]
    assert result.uncertain == ["a"]
    assert result.already == []


@pytest.mark.parametrize(
    "message",
    [
        "API token a is already deactivated.",
        "Token already in inactive state",
        "ALREADY REVOKED",
        "The token has already been disabled",
        "api token is already deactivated",
    ],
)
def test_already_inactive_wording_recognised(message):
    assert DEACTIVATE.is_already_done(message)


@pytest.mark.parametrize(
    "message",
    [
        "",
        "API token a was not found.",
        "Token is active",
        "already exists",
        "not deactivated: already locked by admin",
        "Token is already scheduled to be deactivated.",
        "Token was not already deactivated: deactivation is locked by policy.",
        "Token is already pending deactivation and not deactivated",
        "Token is already being deactivated",
        "Token can never already be revoked",
    ],
)
def test_other_wording_not_already_inactive(message):
    assert not DEACTIVATE.is_already_done(message)


@pytest.mark.parametrize("message", ["API token a is already active.", "already activated", "already enabled"])
def test_already_active_wording_recognised(message):
    assert ACTIVATE.is_already_done(message)


def test_already_inactive_not_taken_as_already_active():
    assert not ACTIVATE.is_already_done("API token a is already inactive.")
    assert not ACTIVATE.is_already_done("API token a is already deactivated.")


def test_failed_token_exchange_says_not_sent():
    error = CspAuthError("Authentication POST /auth failed with HTTP 400.", status=400, may_have_applied=True)
    error.api_request_sent = False
    result = change_token_state(ScriptedClient(error), ORG_ID, ids(20), DEACTIVATE)

    assert result.requests_sent == 0
    assert [failure["id"] for failure in result.failures] == ids(20)
    assert "token exchange failed before its deactivate request was sent" in result.failures[0]["message"]
    assert "may or may not" not in result.failures[0]["message"]
    assert result.failures[-1]["message"] == "Not sent, because the token exchange failed. The token was not deactivated."


def test_per_id_messages_redacted():
    client = ScriptedClient(
        ok({"successes": [], "failures": [{"id": "a", "message": "echo s3cret-value-1 and refresh_token=zz9 rejected"}]})
    )
    client.redactor = Redactor(["s3cret-value-1"])

    result = change_token_state(client, ORG_ID, ["a"], DEACTIVATE)

    assert result.failures == [{"id": "a", "message": f"echo {MASK} and refresh_token={MASK} rejected"}]
