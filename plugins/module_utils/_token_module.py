# -*- coding: utf-8 -*-
# Copyright: csp.iam contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The steps that the API token modules share. Private to this collection: not a public API."""

from __future__ import annotations

from ansible.module_utils.basic import env_fallback

from ._csp_module import build_client, connection_argument_spec, require_requests
from ._errors import CspError
from ._token_state import MAX_IDS_PER_REQUEST, change_token_state, chunk, describe_request_error
from ._validation import normalize_token_ids, validate_max_concurrency, validate_org_id


def token_argument_spec() -> dict:
    """Return the argument spec of a module that changes the state of API tokens."""
    spec = connection_argument_spec()
    spec["org_id"] = {"type": "str", "required": True, "fallback": (env_fallback, ["CSP_ORG_ID"])}
    # The type is raw, because Ansible's list conversion would turn a bare number into a one-id list
    # before normalize_token_ids could reject it. Token ids grant nothing, so they are logged like any value.
    spec["token_ids"] = {"type": "raw", "required": True, "aliases": ["ids"], "no_log": False}
    spec["max_concurrency"] = {"type": "int", "default": 1}
    return spec


def run_token_state_module(module, action) -> None:
    """Apply ``action`` to the requested tokens and exit the module with the accounted result."""
    require_requests(module)
    token_ids = []
    try:
        token_ids = normalize_token_ids(module.params["token_ids"])
        org_id = validate_org_id(module.params["org_id"])
        max_concurrency = validate_max_concurrency(module.params["max_concurrency"])
        if not token_ids:
            module.exit_json(**_empty_result(action))
        client = build_client(module, org_id)
    except CspError as error:
        module.fail_json(**_failed_before_sending(action, token_ids, str(error)))

    try:
        if module.check_mode:
            result = _check_mode_result(client, token_ids, action, module)
        else:
            result = _apply(client, org_id, token_ids, action, module, max_concurrency)
    except CspError as error:
        module.fail_json(**_failed_before_sending(action, token_ids, str(error), client.retry_count))
    finally:
        client.close()

    if result["failures"]:
        module.fail_json(**result)
    module.exit_json(**result)


def _apply(client, org_id: str, token_ids: list, action, module, max_concurrency: int) -> dict:
    outcome = change_token_state(client, org_id, token_ids, action, max_concurrency=max_concurrency)
    for warning in outcome.warnings:
        module.warn(warning)
    if outcome.uncertain:
        module.warn(
            f"{len(outcome.uncertain)} token(s) were reported as {action.already_words} after a retry of a request "
            f"whose earlier attempt may have been applied. They are counted as {action.past_tense} by this run: "
            + ", ".join(outcome.uncertain[:5])
            + (", ..." if len(outcome.uncertain) > 5 else "")
        )

    summary = (
        f"{action.past_tense.capitalize()} {len(outcome.changed)} of {len(token_ids)} API tokens: "
        f"{len(outcome.already)} {action.already_words}, {len(outcome.failures)} failed."
    )
    if outcome.error is not None:
        summary += f" The run stopped after a request failed: {describe_request_error(outcome.error)}"
    elif outcome.failures:
        summary += " See failures for each token's reason."

    return {
        "changed": bool(outcome.changed),
        action.changed_key: outcome.changed,
        action.already_key: outcome.already,
        "failures": outcome.failures,
        "requests": outcome.requests_sent,
        "retries": client.retry_count,
        "msg": summary,
    }


def _check_mode_result(client, token_ids: list, action, module) -> dict:
    # No API reads a token's state, so check mode can only verify the credentials and predict the requests.
    # A one-time MFA passcode is not spent on that check, because the real run needs it.
    if client.credential_kind == "client_credentials":
        module.warn(
            f"client_id and client_secret are service-account credentials, which the API reference does not allow "
            f"to {action.name} API tokens. The real run will most likely fail with HTTP 403."
        )
    if client.verify_credentials():
        checked = "The token exchange accepted the credentials, but the organization and the role were not checked."
    elif client.credential_kind == "access_token":
        checked = "The access token was not checked."
    else:
        checked = "The credentials were not checked, so that the one-time passcode stays unused for the real run."

    request_count = len(chunk(token_ids, MAX_IDS_PER_REQUEST))
    return {
        "changed": True,
        action.changed_key: token_ids,
        action.already_key: [],
        "failures": [],
        "requests": 0,
        "retries": client.retry_count,
        "msg": (
            f"Check mode: would send {request_count} {action.name} request(s) for {len(token_ids)} API tokens. "
            f"Token state cannot be read, so tokens that are {action.already_words} are counted too. {checked}"
        ),
    }


def _failed_before_sending(action, token_ids: list, message: str, retries: int = 0) -> dict:
    """Return the result of a run that failed before any token changed: every id is a failure."""
    return {
        "msg": message,
        "changed": False,
        action.changed_key: [],
        action.already_key: [],
        "failures": [{"id": token_id, "message": message} for token_id in token_ids],
        "requests": 0,
        "retries": retries,
    }


def _empty_result(action) -> dict:
    return {
        "changed": False,
        action.changed_key: [],
        action.already_key: [],
        "failures": [],
        "requests": 0,
        "retries": 0,
        "msg": "No API token ids were given, so no request was sent.",
    }
