# -*- coding: utf-8 -*-
# Copyright: csp.iam contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Batched activation and deactivation of API tokens, with exact accounting of each id.

Private to this collection: not a public API. Independent of Ansible.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

from ._errors import CspApiError, CspError, CspRequestError

# The API rejects a request with more than 15 ids.
MAX_IDS_PER_REQUEST = 15

_UNMENTIONED = "The service's response did not mention this id, so its state is unknown."

# Words that turn "already ... deactivated" into something not yet done, as in "not already deactivated" or
# "already scheduled to be deactivated". A false "already inactive" would hide a token that is still active.
_NEGATING_WORDS = frozenset({"not", "never", "no", "cannot", "can't", "won't", "scheduled", "pending", "being", "to"})
_WORD = re.compile(r"[\w']+")


@dataclass(frozen=True)
class TokenAction:
    """One of the two token state changes, with the words the results and messages use for it."""

    name: str
    path_suffix: str
    changed_key: str
    already_key: str
    past_tense: str
    already_words: str
    already_pattern: re.Pattern

    def path(self, org_id: str) -> str:
        return f"/csp/gateway/am/api/orgs/{org_id}/api-tokens/{self.path_suffix}"

    def is_already_done(self, message: str) -> bool:
        for match in self.already_pattern.finditer(message or ""):
            between = _WORD.findall(match.group("between").lower())
            preceding = _WORD.findall(message[: match.start()].lower())[-1:]
            if not _NEGATING_WORDS.intersection(between + preceding):
                return True
        return False


# The wording of the service's failure message for a token that is already in the requested state is not
# documented. These patterns accept "already" followed within a few words by a word for that state, such as
# "API token X is already deactivated." or "Token already in inactive state", unless a negating word comes
# right before "already" or between the two.
DEACTIVATE = TokenAction(
    name="deactivate",
    path_suffix="deactivate",
    changed_key="deactivated",
    already_key="already_inactive",
    past_tense="deactivated",
    already_words="already inactive",
    already_pattern=re.compile(
        r"\balready\b(?P<between>(?:\W+[\w']+){0,3}?)\W+(?:deactivated|inactive|revoked|disabled)\b", re.IGNORECASE
    ),
)
ACTIVATE = TokenAction(
    name="activate",
    path_suffix="activate",
    changed_key="activated",
    already_key="already_active",
    past_tense="activated",
    already_words="already active",
    already_pattern=re.compile(
        r"\balready\b(?P<between>(?:\W+[\w']+){0,3}?)\W+(?:active|activated|enabled)\b", re.IGNORECASE
    ),
)


@dataclass
class TokenStateResult:
    """The fate of every requested id: changed, already in the requested state, or failed.

    The three groups are disjoint and together hold every requested id once, in request order.
    ``uncertain`` lists the changed ids that the service reported as already done after a retry of a
    request whose earlier attempt may have been applied: this run most likely changed them.
    """

    changed: list = field(default_factory=list)
    already: list = field(default_factory=list)
    failures: list = field(default_factory=list)
    uncertain: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    error: CspError | None = None
    requests_sent: int = 0


def chunk(token_ids: list, size: int = MAX_IDS_PER_REQUEST) -> list:
    """Split ids into consecutive batches of at most ``size``, keeping their order."""
    return [token_ids[start:start + size] for start in range(0, len(token_ids), size)]


def change_token_state(
    client, org_id: str, token_ids: list, action: TokenAction, batch_size=MAX_IDS_PER_REQUEST, max_concurrency=1
):
    """Apply ``action`` to the ids in batches and account for each id, in request order.

    The first request that fails as a whole stops the run, because the same error would most likely
    meet every later batch. The ids of that batch are reported as failures, and so are those of every
    batch not sent yet. With ``max_concurrency`` above 1, batches already in flight still complete and
    are accounted for. Everything that other batches changed stays in the result.
    """
    batches = chunk(token_ids, batch_size)
    path = action.path(org_id)
    if max_concurrency > 1 and len(batches) > 1:
        outcomes = _send_concurrently(client, path, batches, max_concurrency)
    else:
        outcomes = _send_in_sequence(client, path, batches)

    result = TokenStateResult()
    redact = getattr(getattr(client, "redactor", None), "redact", str)
    for batch, outcome in zip(batches, outcomes):
        if outcome is None:
            _record_not_sent(result, batch, action, result.error)
            continue
        if getattr(outcome, "api_request_sent", True):
            result.requests_sent += 1
        if isinstance(outcome, CspError):
            result.error = result.error or outcome
            _record_failed_request(result, batch, outcome, action)
        else:
            _record_batch(result, batch, outcome, action, redact)
    return result


def _send_batch(client, path: str, batch: list):
    """Return the batch's response, or the CspError that its request ended with."""
    try:
        return client.post_json(path, {"ids": batch})
    except CspError as error:
        return error
    except Exception as error:  # pylint: disable=broad-exception-caught
        # Any other error must still leave the successes of earlier batches in the result, so it becomes a
        # failed request that may have been applied.
        redactor = getattr(client, "redactor", None)
        detail = redactor.redact(str(error)) if redactor else str(error)
        return CspRequestError(f"Unexpected {type(error).__name__}: {detail}", may_have_applied=True)


def _send_in_sequence(client, path: str, batches: list) -> list:
    """Send the batches one by one until a request fails. Batches not sent get None."""
    outcomes = [None] * len(batches)
    for index, batch in enumerate(batches):
        outcomes[index] = _send_batch(client, path, batch)
        if isinstance(outcomes[index], CspError):
            break
    return outcomes


def _send_concurrently(client, path: str, batches: list, max_concurrency: int) -> list:
    """Send the batches from ``max_concurrency`` threads, in order, until a request fails.

    After a failure no new batch starts, and those still queued get None.
    """
    from concurrent.futures import ThreadPoolExecutor

    failed = threading.Event()

    def send_unless_failed(batch):
        if failed.is_set():
            return None
        outcome = _send_batch(client, path, batch)
        if isinstance(outcome, CspError):
            failed.set()
        return outcome

    with ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="csp-batch") as executor:
        return list(executor.map(send_unless_failed, batches))


def _record_batch(result: TokenStateResult, batch: list, response, action: TokenAction, redact=str) -> None:
    data = response.data
    if not isinstance(data, dict):
        snippet = f": {response.snippet}" if response.snippet else ""
        message = (
            f"The service answered HTTP {response.status} with a body that is not a JSON object{snippet}. "
            f"Whether this token was {action.past_tense} is unknown, so run the task again."
        )
        result.failures.extend({"id": token_id, "message": message} for token_id in batch)
        return

    successes = _ids_in(data.get("successes"))
    failure_messages = _failure_messages(data.get("failures"))
    requested = set(batch)
    for token_id in batch:
        if token_id in successes:
            result.changed.append(token_id)
        elif token_id in failure_messages:
            # The service's per-id messages are shown as they are, so they are scrubbed like error bodies.
            _record_failure_message(result, token_id, redact(failure_messages[token_id]), response, action)
        else:
            result.failures.append({"id": token_id, "message": _UNMENTIONED})

    _warn_about_odd_ids(result, requested, successes, failure_messages)


def _record_failure_message(result, token_id: str, message: str, response, action: TokenAction) -> None:
    if not action.is_already_done(message):
        result.failures.append({"id": token_id, "message": message or "The service gave no reason."})
    elif response.may_have_applied_earlier:
        # An earlier attempt of this request may have changed the token before its response was lost, so
        # "already done" most likely reports this run's own work.
        result.changed.append(token_id)
        result.uncertain.append(token_id)
    else:
        result.already.append(token_id)


def _warn_about_odd_ids(result, requested: set, successes: set, failure_messages: dict) -> None:
    unrequested = sorted((successes | set(failure_messages)) - requested)
    if unrequested:
        result.warnings.append(
            f"The service's response named {len(unrequested)} id(s) that were not in the request and were ignored: "
            + ", ".join(unrequested[:5])
            + (", ..." if len(unrequested) > 5 else "")
        )
    both = sorted(successes & set(failure_messages) & requested)
    if both:
        result.warnings.append(
            f"The service listed {len(both)} id(s) under both successes and failures; they are counted as "
            "successes: " + ", ".join(both[:5]) + (", ..." if len(both) > 5 else "")
        )


def _record_failed_request(result, batch: list, error: CspError, action: TokenAction) -> None:
    if not getattr(error, "api_request_sent", True):
        message = (
            f"The token was not {action.past_tense}, because the token exchange failed before its {action.name} "
            f"request was sent: {describe_request_error(error)}"
        )
    elif getattr(error, "may_have_applied", False):
        message = (
            f"The token may or may not have been {action.past_tense}, because its request failed: "
            f"{describe_request_error(error)}"
        )
    else:
        message = f"The token was not {action.past_tense}, because its request failed: {describe_request_error(error)}"
    result.failures.extend({"id": token_id, "message": message} for token_id in batch)


def _record_not_sent(result, batch: list, action: TokenAction, error: CspError | None) -> None:
    if error is not None and not getattr(error, "api_request_sent", True):
        cause = "the token exchange failed"
    else:
        cause = f"an earlier {action.name} request failed"
    message = f"Not sent, because {cause}. The token was not {action.past_tense}."
    result.failures.extend({"id": token_id, "message": message} for token_id in batch)


def _ids_in(value) -> set:
    """Return the ids of a ``successes`` list, accepting strings or objects with an ``id``, or a missing list."""
    ids = set()
    for item in value if isinstance(value, list) else ():
        if isinstance(item, dict):
            item = item.get("id")
        if isinstance(item, str):
            ids.add(item)
    return ids


def _failure_messages(value) -> dict:
    """Map each id of a ``failures`` list to its message, accepting a missing list or entries without a message."""
    messages = {}
    for item in value if isinstance(value, list) else ():
        if isinstance(item, dict) and isinstance(item.get("id"), str):
            message = item.get("message")
            messages.setdefault(item["id"], message if isinstance(message, str) else "")
    return messages


def describe_request_error(error: CspError) -> str:
    """Return the error's message, with what to check for the statuses that the token endpoints define."""
    status = error.status if isinstance(error, CspApiError) else None
    if status == 403:
        return (
            f"{error} The user behind the credentials needs the Organization Owner role in this organization, "
            "and the API does not allow service accounts (client credentials) to activate or deactivate API tokens."
        )
    if status == 404:
        return f"{error} The organization was not found: check org_id and api_host."
    return str(error)
