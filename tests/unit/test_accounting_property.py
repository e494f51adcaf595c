"""Property-based tests of the accounting: every requested id ends up in exactly one group.

The first test drives change_token_state with a scripted client over random batch outcomes and request errors.
The second drives the real client against the in-process emulator with random token states and injected faults,
and also checks each reported id against the token's state in the emulator afterwards.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.csp.iam.plugins.module_utils._auth import ApiTokenAuth
from ansible_collections.csp.iam.plugins.module_utils._client import ApiResponse, CspClient
from ansible_collections.csp.iam.plugins.module_utils._errors import CspApiError, CspConnectionError
from ansible_collections.csp.iam.plugins.module_utils._retry import RetryPolicy
from ansible_collections.csp.iam.plugins.module_utils._token_state import DEACTIVATE, change_token_state, chunk
from ansible_collections.csp.iam.plugins.module_utils._validation import normalize_token_ids
from conftest import API_TOKEN, ORG_ID, token_ids
from csp_emulator import Fault

ID_POOL = token_ids(40, prefix="property")
UNREQUESTED_ID = "ffffffff-0000-4000-8000-00000000ffff"
ID_OUTCOMES = ("success", "success_object", "already", "not_found", "omitted", "both")

requested_ids = st.lists(st.sampled_from(ID_POOL), max_size=70)


def assert_partition(result, requested: list) -> None:
    """Check that the three groups are disjoint, cover the de-duplicated request, and keep request order."""
    failed = [failure["id"] for failure in result.failures]
    groups = [result.changed, result.already, failed]
    combined = sum(groups, [])
    expected = list(dict.fromkeys(requested))

    assert len(combined) == len(set(combined)), groups
    assert set(combined) == set(expected)
    for group in groups:
        assert group == [token_id for token_id in expected if token_id in set(group)]
    assert set(result.uncertain) <= set(result.changed)
    assert all(isinstance(failure["message"], str) and failure["message"] for failure in result.failures)


class PlannedClient:
    """A fake client that responds to each batch as the drawn plan specifies.

    A plan is a request error, a 200 body that is not JSON, or an outcome for each id of the batch.
    """

    def __init__(self, plans):
        self.plans = list(plans)
        self.batches = []
        self.reported_changed = set()
        self.reported_already_after_retry = set()

    def post_json(self, path, payload):
        batch = payload["ids"]
        self.batches.append(batch)
        plan = self.plans.pop(0)
        if plan["kind"] == "api_error":
            raise CspApiError("HTTP 500 from the plan.", status=500, may_have_applied=plan["may_have_applied"])
        if plan["kind"] == "connection_error":
            raise CspConnectionError("Connection reset by the plan.", may_have_applied=plan["may_have_applied"])
        if plan["kind"] == "not_json":
            return ApiResponse(200, None, "Maintenance", None, 1, plan["may_have_applied"])

        successes, failures = [], []
        for token_id, outcome in zip(batch, plan["outcomes"]):
            if outcome in ("success", "both"):
                successes.append(token_id)
                self.reported_changed.add(token_id)
            if outcome == "success_object":
                successes.append({"id": token_id})
                self.reported_changed.add(token_id)
            if outcome in ("already", "both"):
                failures.append({"id": token_id, "message": f"API token {token_id} is already deactivated."})
                if outcome == "already" and plan["may_have_applied"]:
                    self.reported_already_after_retry.add(token_id)
            if outcome == "not_found":
                failures.append({"id": token_id, "message": f"API token {token_id} was not found."})
        if plan["unrequested"]:
            successes.append(UNREQUESTED_ID)
        data = {"successes": successes, "failures": failures}
        for key in plan["missing_keys"]:
            del data[key]
        return ApiResponse(200, data, "", "req", 1, plan["may_have_applied"])


def batch_plan(size: int):
    return st.fixed_dictionaries(
        {
            "kind": st.sampled_from(["json", "json", "json", "not_json", "api_error", "connection_error"]),
            "may_have_applied": st.booleans(),
            "outcomes": st.lists(st.sampled_from(ID_OUTCOMES), min_size=size, max_size=size),
            "unrequested": st.booleans(),
            "missing_keys": st.sampled_from([(), (), ("successes",), ("failures",)]),
        }
    )


@settings(max_examples=300, deadline=None)
@given(requested=requested_ids, data=st.data())
def test_scripted_outcomes_partition_ids(requested, data):
    unique = normalize_token_ids(requested)
    batches = chunk(unique)
    plans = [data.draw(batch_plan(len(batch))) for batch in batches]
    client = PlannedClient(plans)

    result = change_token_state(client, ORG_ID, unique, DEACTIVATE)

    assert_partition(result, requested)
    assert UNREQUESTED_ID not in result.changed
    # Only ids the service listed as successes, or as already inactive after a retry, count as changed.
    assert set(result.changed) <= client.reported_changed | client.reported_already_after_retry
    first_error = next((index for index, plan in enumerate(plans) if plan["kind"].endswith("_error")), None)
    if first_error is None:
        assert result.requests_sent == len(batches)
        assert result.error is None
    else:
        assert result.requests_sent == first_error + 1
        assert result.error is not None
        assert client.batches == batches[: first_error + 1]


# Faults that end without a wait: Retry-After 0 for the retried statuses, and no-op sleeps in the client.
FAULTS = {
    "none": None,
    "429": {"status": 429, "headers": {"Retry-After": "0"}},
    "502_html": {"status": 502, "body": "<title>Bad Gateway</title>", "content_type": "text/html"},
    "503": {"status": 503, "headers": {"Retry-After": "0"}},
    "500": {"status": 500},
    "401": {"status": 401},
    "reset": {"action": "reset"},
    "apply_then_reset": {"action": "apply_then_reset"},
    "200_not_json": {"status": 200, "body": "<html>Maintenance</html>", "content_type": "text/html"},
    "200_empty_object": {"status": 200, "body": {}},
}
TOKEN_STATES = ("active", "inactive", "unknown")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    requested=requested_ids,
    states=st.lists(st.sampled_from(TOKEN_STATES), min_size=len(ID_POOL), max_size=len(ID_POOL)),
    fault_name=st.sampled_from(sorted(FAULTS)),
    fault_skip=st.integers(min_value=0, max_value=4),
    fault_count=st.sampled_from([1, 2, None]),
)
def test_emulator_outcomes_partition_ids(emulator_server, requested, states, fault_name, fault_skip, fault_count):
    emulator = emulator_server
    emulator.reset()
    emulator.add_org(ORG_ID)
    emulator.add_api_token(API_TOKEN, user="owner@example.com", roles={ORG_ID: "org_owner"})
    state_of = dict(zip(ID_POOL, states))
    emulator.add_tokens(ORG_ID, [token_id for token_id in ID_POOL if state_of[token_id] == "active"])
    emulator.add_tokens(ORG_ID, [token_id for token_id in ID_POOL if state_of[token_id] == "inactive"], active=False)
    if FAULTS[fault_name] is not None:
        emulator.add_fault(Fault(match="deactivate", skip=fault_skip, count=fault_count, **FAULTS[fault_name]))
    client = CspClient(
        emulator.url,
        ApiTokenAuth(API_TOKEN),
        verify=emulator.ca_path,
        timeout=5,
        retry_policy=RetryPolicy(retries=1),
        sleep=lambda seconds: None,
    )

    try:
        result = change_token_state(client, ORG_ID, normalize_token_ids(requested), DEACTIVATE)
    finally:
        client.close()

    assert_partition(result, requested)
    for token_id in result.changed:
        assert not emulator.token_active(ORG_ID, token_id)
        # After an ambiguous retry, an id that was inactive before the run cannot be distinguished from one this run changed.
        if token_id not in result.uncertain:
            assert state_of[token_id] == "active"
    for token_id in result.already:
        assert state_of[token_id] == "inactive"
    for failure in result.failures:
        if state_of[failure["id"]] == "active" and "was not deactivated" in failure["message"]:
            assert emulator.token_active(ORG_ID, failure["id"])
    # Each request has at most two attempts (retries=1), twice over when a 401 makes the client authenticate again.
    assert len(emulator.api_requests("deactivate")) <= 4 * result.requests_sent
