"""End-to-end runs at -vvvv that put a canary value in every secret option and environment variable, drive
success, failure, check mode and the emulator's faults, and check that no canary reaches any output.
"""

from __future__ import annotations

import json

import pytest

from conftest import ORG_ID, token_ids
from csp_emulator import Fault

CANARY_API_TOKEN = "CANARY-api-token-3e51b0d7"
CANARY_PASSCODE = "CANARY-passcode-918273"
CANARY_ACCESS_TOKEN = "CANARY-access-token-6c2f94ab"
CANARY_CLIENT_SECRET = "CANARY-client-secret-05d1e8"
CANARIES = (CANARY_API_TOKEN, CANARY_PASSCODE, CANARY_ACCESS_TOKEN, CANARY_CLIENT_SECRET)
CLIENT_ID = "ci-app"

# Token-shaped values that no option holds. The server echoes them, and the module must still mask them.
ECHOED_JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJjYW5hcnkifQ.c2lnbmF0dXJlLWNhbmFyeQ"
ECHOED_BEARER = "bearer-value-canary-4471"
ECHOED_REFRESH = "refresh-value-canary-8820"
ECHOED_SHAPES = (ECHOED_JWT, ECHOED_BEARER, ECHOED_REFRESH)
SECRETS_OF_KIND = {
    "api_token": (CANARY_API_TOKEN, CANARY_PASSCODE),
    "access_token": (CANARY_ACCESS_TOKEN,),
    "client_credentials": (CANARY_CLIENT_SECRET,),
}


def echo_text(kind: str) -> str:
    """Return an error text that echoes the secrets the module was given and some token-shaped values."""
    given_secrets = " and ".join(SECRETS_OF_KIND[kind])
    return (
        f"Rejected credential {given_secrets}, jwt {ECHOED_JWT}, Authorization: Bearer {ECHOED_BEARER}, "
        f"refresh_token={ECHOED_REFRESH}"
    )


def passthrough() -> Fault:
    """A fault slot that lets one request through unchanged, to keep later faults aligned with their case."""
    return Fault(match="deactivate", action="delay", delay=0)


# With the secret in the environment only, the faults that echo nothing add no new path, so these runs skip them.
ECHOING_CASES = {
    "authorize error echoes secrets",
    "success",
    "check mode",
    "400 echoes secrets",
    "200 not JSON echoes secrets",
    "401 after renewal",
}


def scenarios(kind: str, source: str):
    """Return the loop cases and the deactivate faults for them, in the order the requests arrive."""
    ids = iter(token_ids(16, prefix=f"secret-{kind}"))
    echo = echo_text(kind)
    cases, faults = [], []

    def add(name, fault_slots, **options):
        if source == "env" and name not in ECHOING_CASES:
            return
        cases.append({"name": name, "token_ids": [next(ids)], **options})
        faults.extend(fault_slots)

    # The authorize fault hits the first token request. Only an access token sends no such request, so its
    # deactivate request needs a slot of its own.
    add("authorize error echoes secrets", [passthrough()] if kind == "access_token" else [], retries=0)
    add("success", [passthrough()])
    add("check mode", [], check_mode=True)
    add("unknown id", [passthrough()], token_ids=["00000000-0000-4000-8000-00000000dead"])
    add("400 echoes secrets", [Fault(match="deactivate", status=400, body={"message": echo})])
    add(
        "500 page echoes secrets",
        [Fault(match="deactivate", status=500, body=f"<title>{echo}</title>", content_type="text/html")],
    )
    add("429 every attempt", [Fault(match="deactivate", status=429, count=2, headers={"Retry-After": "0"})], retries=1)
    add("reset", [Fault(match="deactivate", action="reset")], retries=0)
    add(
        "truncated response",
        [Fault(match="deactivate", status=200, body=echo[:40], headers={"Content-Length": "9999"})],
        retries=0,
    )
    add("hang", [Fault(match="deactivate", action="hang", delay=3)], retries=0, timeout=0.5)
    add("ambiguous retry", [Fault(match="deactivate", action="apply_then_reset"), passthrough()], retries=1)
    add(
        "200 not JSON echoes secrets",
        [Fault(match="deactivate", status=200, body=f"<p>{echo}</p>", content_type="text/html")],
        retries=0,
    )
    # Last, because it returns 401 to every later request: with renewable credentials the module authenticates
    # once more and then gives up.
    add("401 after renewal", [Fault(match="deactivate", status=401, count=None)], retries=0)
    return cases, faults


def credentials(kind: str, source: str):
    """Return (play variables, environment) that give one credential kind through options or the environment."""
    cleared = {"CSP_API_TOKEN": "", "CSP_ACCESS_TOKEN": "", "CSP_CLIENT_ID": "", "CSP_CLIENT_SECRET": ""}
    if kind == "api_token":
        variables = {"csp_passcode": CANARY_PASSCODE}
        env = {**cleared, "CSP_API_TOKEN": CANARY_API_TOKEN}
        if source == "option":
            variables["csp_api_token"] = CANARY_API_TOKEN
    elif kind == "access_token":
        variables = {}
        env = {**cleared, "CSP_ACCESS_TOKEN": CANARY_ACCESS_TOKEN}
        if source == "option":
            variables["csp_access_token"] = CANARY_ACCESS_TOKEN
    else:
        variables = {}
        env = {**cleared, "CSP_CLIENT_ID": CLIENT_ID, "CSP_CLIENT_SECRET": CANARY_CLIENT_SECRET}
        if source == "option":
            variables.update({"csp_client_id": CLIENT_ID, "csp_client_secret": CANARY_CLIENT_SECRET})
    return variables, env


def issued_access_tokens(emulator) -> set:
    tokens = set()
    for record in emulator.requests:
        scheme, _separator, token = record.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token:
            tokens.add(token)
    return tokens


@pytest.mark.parametrize("source", ["option", "env"])
@pytest.mark.parametrize("kind", ["api_token", "access_token", "client_credentials"])
def test_no_secret_in_any_output(emulator, run_playbook, kind, source):
    emulator.add_api_token(CANARY_API_TOKEN, user="owner@example.com", roles={ORG_ID: "org_owner"}, passcode=CANARY_PASSCODE)
    emulator.add_access_token(CANARY_ACCESS_TOKEN, user="owner@example.com", roles={ORG_ID: "org_owner"})
    emulator.add_client(CLIENT_ID, CANARY_CLIENT_SECRET, roles={ORG_ID: "org_owner"})
    cases, faults = scenarios(kind, source)
    emulator.add_tokens(ORG_ID, token_ids(16, prefix=f"secret-{kind}"))
    emulator.add_fault(Fault(match="authorize", status=400, body={"message": echo_text(kind)}))
    for fault in faults:
        emulator.add_fault(fault)
    variables, env = credentials(kind, source)

    run = run_playbook("deactivate_cases.yml", {"org_id": ORG_ID, "cases": cases, **variables}, env=env, args=["-vvvv"])

    assert run.result is not None, run.output
    results = {result["item"]["name"]: result for result in run.result["results"]}
    assert list(results) == [case["name"] for case in cases]
    saved = json.dumps(run.result)
    leaked_values = CANARIES + ECHOED_SHAPES + tuple(issued_access_tokens(emulator))
    for value in leaked_values:
        assert value not in run.stdout, value
        assert value not in run.stderr, value
        assert value not in saved, value

    # The runs took the paths they were meant to, so the checks above cover them.
    expected_words = {
        "authorize error echoes secrets": "HTTP 400" if kind != "access_token" else "Deactivated 1 of 1",
        "400 echoes secrets": "********",
        "500 page echoes secrets": "HTTP 500",
        "429 every attempt": "rate-limiting",
        "reset": "closed connection without response",
        "truncated response": "broke in the middle of the response",
        "hang": "0.5 s timeout",
        "401 after renewal": "HTTP 401",
        "success": "HTTP 403" if kind == "client_credentials" else "Deactivated 1 of 1",
    }
    for name, words in expected_words.items():
        if name in results:
            assert words in results[name]["msg"], (name, results[name]["msg"])
    assert results["check mode"]["changed"] is True
    assert "not a JSON object" in results["200 not JSON echoes secrets"]["failures"][0]["message"]
    if "ambiguous retry" in results and kind != "client_credentials":
        assert results["ambiguous retry"]["changed"] is True
