"""End-to-end runs of csp_api_token_deactivate with invalid options: each fails with a message that names the
option, the value (secrets masked) and the fix, and the emulator receives no request at all.
"""

from __future__ import annotations

import json

import pytest

from conftest import ORG_ID, token_ids

IDS = token_ids(3)
SECRET_IN_URL = "url-password-canary-5150"

# (case name, module options, fragments the message must contain)
ORG_ID_CASES = [
    ("org_id empty", {"org_id": ""}, ["Invalid org_id ''", "GUID", "Set org_id or CSP_ORG_ID"]),
    ("org_id not a GUID", {"org_id": "my-org"}, ["Invalid org_id 'my-org'", "GUID"]),
    ("org_id with slash", {"org_id": ORG_ID + "/x"}, [f"Invalid org_id '{ORG_ID}/x'", "GUID"]),
    ("org_id with dot-dot", {"org_id": "../" + ORG_ID}, [f"Invalid org_id '../{ORG_ID}'", "GUID"]),
    ("org_id with %2F", {"org_id": ORG_ID[:-3] + "%2F"}, [f"Invalid org_id '{ORG_ID[:-3]}%2F'", "GUID"]),
    ("org_id with query", {"org_id": ORG_ID + "?a=b"}, [f"Invalid org_id '{ORG_ID}?a=b'", "GUID"]),
    ("org_id with fragment", {"org_id": ORG_ID + "#x"}, [f"Invalid org_id '{ORG_ID}#x'", "GUID"]),
]
TOKEN_IDS_CASES = [
    ("token_ids a mapping", {"token_ids": {"id": IDS[0]}}, ["Invalid token_ids", "expected a list", "Quote each id"]),
    ("token_ids empty entry", {"token_ids": [IDS[0], "", IDS[1]]}, ["token_ids entry 2", "blank", "Remove the empty entry"]),
    ("token_ids blank entry", {"token_ids": [IDS[0], "   "]}, ["token_ids entry 2", "blank", "Remove the empty entry"]),
    ("token_ids number entry", {"token_ids": [IDS[0], 5]}, ["token_ids entry 2 (5)", "expected a string", "Quote ids"]),
    ("token_ids null entry", {"token_ids": [None, IDS[0]]}, ["token_ids entry 1 (None)", "expected a string"]),
    ("token_ids list entry", {"token_ids": [[IDS[0]]]}, ["token_ids entry 1", "expected a string"]),
    ("token_ids padded entry", {"token_ids": [IDS[0], f" {IDS[1]} "]}, ["token_ids entry 2", "spaces", "Remove them"]),
]
TIMING_CASES = [
    ("timeout zero", {"timeout": 0}, ["Invalid timeout 0.0", "greater than 0"]),
    ("timeout negative", {"timeout": -2.5}, ["Invalid timeout -2.5", "greater than 0"]),
    ("retries negative", {"retries": -1}, ["Invalid retries -1", "give 0 or more"]),
]
CREDENTIAL_CASES = [
    ("two credential kinds", {"access_token": "second-credential-canary-77"}, [
        "Conflicting credentials", "api_token and access_token", "Set exactly one of"
    ]),
    ("no credentials", {"api_token": ""}, ["Missing credentials", "set exactly one of", "CSP_API_TOKEN"]),
    ("client_id without secret", {"api_token": "", "client_id": "ci-app"}, ["Missing client_secret", "go together"]),
]


def api_host_cases(port: int) -> list:
    return [
        ("api_host http", {"api_host": f"http://127.0.0.1:{port}"}, [
            f"Invalid api_host 'http://127.0.0.1:{port}'", "only https://"
        ]),
        ("api_host user info", {"api_host": f"https://admin:{SECRET_IN_URL}@127.0.0.1:{port}"}, [
            "Invalid api_host", "user information", "Give only the host"
        ]),
        ("api_host path", {"api_host": f"https://127.0.0.1:{port}/csp/gateway"}, [
            f"Invalid api_host 'https://127.0.0.1:{port}/csp/gateway'", "without a path"
        ]),
        ("api_host query", {"api_host": f"127.0.0.1:{port}?debug=1"}, [
            f"Invalid api_host '127.0.0.1:{port}?debug=1'", "without a path, query"
        ]),
        ("api_host port too high", {"api_host": "127.0.0.1:70000"}, [
            "Invalid api_host '127.0.0.1:70000'", "from 1 to 65535"
        ]),
        ("api_host port zero", {"api_host": "127.0.0.1:0"}, ["Invalid api_host '127.0.0.1:0'", "from 1 to 65535"]),
        ("api_host empty", {"api_host": ""}, ["Invalid api_host", "empty", "Set api_host or CSP_API_HOST"]),
    ]


def test_invalid_options_rejected_before_request(emulator, run_playbook):
    cases = ORG_ID_CASES + TOKEN_IDS_CASES + TIMING_CASES + CREDENTIAL_CASES + api_host_cases(emulator.port)
    emulator.add_tokens(ORG_ID, IDS)

    run = run_playbook(
        "deactivate_cases.yml",
        {
            "org_id": ORG_ID,
            "token_ids": IDS,
            "cases": [{"name": name, **options} for name, options, _fragments in cases],
        },
    )

    assert run.result is not None, run.output
    results = {result["item"]["name"]: result for result in run.result["results"]}
    assert len(results) == len(cases)
    for name, _options, fragments in cases:
        result = results[name]
        assert result["failed"] is True, name
        assert result.get("changed", False) is False, name
        assert "Traceback" not in result["msg"], name
        for fragment in fragments:
            assert fragment in result["msg"], (name, result["msg"])
    assert SECRET_IN_URL not in results["api_host user info"]["msg"]
    assert "second-credential-canary-77" not in results["two credential kinds"]["msg"]
    assert emulator.requests == []
    assert emulator.connection_count == 0
    assert all(emulator.token_active(ORG_ID, token_id) for token_id in IDS)


# Ad-hoc command lines. The module splits a comma-separated string into a list, so `token_ids=a,b` is the
# documented way to pass several ids. These tests cover the mistakes a user makes on that command line.


@pytest.mark.parametrize(
    "module_args, fragments",
    [
        ("token_ids=", ["token_ids entry 1", "blank"]),
        (f"token_ids={IDS[0]},,{IDS[1]}", ["token_ids entry 2", "blank"]),
        (f"token_ids='{IDS[0]}, {IDS[1]}'", ["token_ids entry 2", "spaces"]),
    ],
    ids=["empty", "double comma", "space after comma"],
)
def test_adhoc_bad_token_ids_rejected(emulator, run_adhoc, module_args, fragments):
    emulator.add_tokens(ORG_ID, IDS)

    run = run_adhoc("csp.iam.csp_api_token_deactivate", module_args, env={"CSP_ORG_ID": ORG_ID})

    assert run.returncode == 2
    assert run.result is not None, run.output
    assert "FAILED!" in run.stdout
    for fragment in fragments:
        assert fragment in run.result["msg"]
    assert emulator.requests == []


@pytest.mark.parametrize(("value", "shown"), [(5, "Invalid token_ids 5"), (True, "Invalid token_ids True")])
def test_adhoc_json_scalar_rejected(emulator, run_adhoc, value, shown):
    # JSON arguments keep their types in every ansible-core version. A templated playbook value does not:
    # ansible-core before 2.19 renders a number as a string, which then counts as one id.
    emulator.add_tokens(ORG_ID, IDS)

    run = run_adhoc("csp.iam.csp_api_token_deactivate", json.dumps({"token_ids": value}), env={"CSP_ORG_ID": ORG_ID})

    assert run.returncode == 2
    assert shown in run.result["msg"]
    assert "expected a list" in run.result["msg"]
    assert emulator.requests == []


def test_adhoc_json_string_is_one_id(emulator, run_adhoc):
    # A single string, even in the JSON form of the arguments, becomes a list of one id. An id with no
    # comma is valid, so the module sends it, and the emulator reports that no such token exists.
    emulator.add_tokens(ORG_ID, IDS)

    run = run_adhoc(
        "csp.iam.csp_api_token_deactivate", json.dumps({"token_ids": "abc"}), env={"CSP_ORG_ID": ORG_ID}
    )

    assert run.returncode == 2
    assert "FAILED!" in run.stdout
    assert run.result["deactivated"] == []
    assert [failure["id"] for failure in run.result["failures"]] == ["abc"]
    assert "not found" in run.result["failures"][0]["message"]
    assert [record.ids for record in emulator.api_requests("deactivate")] == [["abc"]]


def test_adhoc_comma_list_accepted(emulator, run_adhoc):
    emulator.add_tokens(ORG_ID, IDS)

    run = run_adhoc("csp.iam.csp_api_token_deactivate", f"token_ids={','.join(IDS)}", env={"CSP_ORG_ID": ORG_ID})

    assert run.returncode == 0, run.output
    assert run.result["deactivated"] == IDS
