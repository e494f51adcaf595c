"""End-to-end runs of csp_api_token_deactivate through ansible-playbook and ansible against the emulator."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import API_TOKEN, CONNECTION_ENV_CLEARED, ORG_ID, module_defaults_variables, task_status, token_ids
from csp_emulator import Fault


def deactivate_ids(emulator):
    return [record.ids for record in emulator.api_requests("deactivate")]


def test_forty_ids_with_duplicates(emulator, run_playbook):
    ids = token_ids(37)
    emulator.add_tokens(ORG_ID, ids)
    requested = ids + ids[:3]

    run = run_playbook("deactivate.yml", {"org_id": ORG_ID, "token_ids": requested})

    assert run.returncode == 0, run.output
    assert run.result["changed"] is True
    assert run.result["deactivated"] == ids
    assert run.result["already_inactive"] == []
    assert run.result["failures"] == []
    assert run.result["requests"] == 3
    sent = deactivate_ids(emulator)
    assert len(sent) == 3
    assert all(len(batch) <= 15 for batch in sent)
    assert sum(sent, []) == ids
    assert not any(emulator.token_active(ORG_ID, token_id) for token_id in ids)


def test_second_run_is_ok_not_changed(emulator, run_playbook):
    ids = token_ids(37)
    emulator.add_tokens(ORG_ID, ids)
    requested = ids + ids[:3]
    first = run_playbook("deactivate.yml", {"org_id": ORG_ID, "token_ids": requested})
    assert first.result["changed"] is True

    second = run_playbook("deactivate.yml", {"org_id": ORG_ID, "token_ids": requested})

    assert second.returncode == 0, second.output
    assert second.result["changed"] is False
    assert second.result.get("failed", False) is False
    assert second.result["already_inactive"] == ids
    assert second.result["deactivated"] == []
    assert task_status(second.stdout, "Deactivate the requested tokens") == "ok"


def test_check_mode_sends_no_deactivate(emulator, run_playbook):
    ids = token_ids(20)
    emulator.add_tokens(ORG_ID, ids)

    run = run_playbook("deactivate.yml", {"org_id": ORG_ID, "token_ids": ids}, check=True)

    assert run.returncode == 0, run.output
    assert run.result["changed"] is True
    assert run.result["deactivated"] == ids
    assert "Check mode" in run.result["msg"]
    assert deactivate_ids(emulator) == []
    assert len(emulator.api_requests("authorize")) == 1
    assert all(emulator.token_active(ORG_ID, token_id) for token_id in ids)


def test_check_mode_says_what_was_checked(emulator, run_adhoc):
    emulator.add_client("ci-app", "client-secret-0001", roles={ORG_ID: "org_owner"})
    emulator.add_access_token("given-access-token-01", roles={ORG_ID: "org_owner"})
    client_env = {"CSP_API_TOKEN": "", "CSP_CLIENT_ID": "ci-app", "CSP_CLIENT_SECRET": "client-secret-0001"}
    access_env = {"CSP_API_TOKEN": "", "CSP_ACCESS_TOKEN": "given-access-token-01"}
    module_args = f"org_id={ORG_ID} token_ids=a"

    with_api_token = run_adhoc("csp.iam.csp_api_token_deactivate", module_args, args=["--check"])
    with_client = run_adhoc("csp.iam.csp_api_token_deactivate", module_args, env=client_env, args=["--check"])
    with_access_token = run_adhoc("csp.iam.csp_api_token_deactivate", module_args, env=access_env, args=["--check"])

    assert "organization and the role were not checked" in with_api_token.result["msg"]
    assert "organization and the role were not checked" in with_client.result["msg"]
    assert "most likely fail with HTTP 403" in with_client.output
    assert "access token was not checked" in with_access_token.result["msg"]
    assert len(emulator.api_requests("authorize")) == 2
    assert emulator.api_requests("deactivate") == []


def test_invalid_option_lists_every_id_as_failure(emulator, run_playbook):
    run = run_playbook("deactivate.yml", {"org_id": "not-a-guid", "token_ids": ["a", "b", "a"]})

    assert run.result["failed"] is True
    assert run.result["deactivated"] == []
    assert [failure["id"] for failure in run.result["failures"]] == ["a", "b"]
    assert "Invalid org_id" in run.result["failures"][0]["message"]
    assert emulator.requests == []


def test_unknown_id_fails_task_keeps_valid(emulator, run_playbook):
    ids = token_ids(5)
    emulator.add_tokens(ORG_ID, ids)
    unknown = "00000000-0000-4000-8000-000000000000"

    run = run_playbook("deactivate.yml", {"org_id": ORG_ID, "token_ids": ids[:2] + [unknown] + ids[2:]})

    assert task_status(run.stdout, "Deactivate the requested tokens") == "fatal"
    assert run.result["failed"] is True
    assert run.result["changed"] is True
    assert run.result["deactivated"] == ids
    assert [failure["id"] for failure in run.result["failures"]] == [unknown]
    assert "not found" in run.result["failures"][0]["message"]
    assert "Deactivated 5 of 6" in run.result["msg"]


def test_429_retry_after_waits_then_succeeds(emulator, run_playbook):
    ids = token_ids(3)
    emulator.add_tokens(ORG_ID, ids)
    emulator.add_fault(Fault(match="deactivate", status=429, headers={"Retry-After": "1"}))

    run = run_playbook("deactivate.yml", {"org_id": ORG_ID, "token_ids": ids})

    assert run.returncode == 0, run.output
    assert run.result["deactivated"] == ids
    assert run.result["retries"] == 1
    first, second = emulator.api_requests("deactivate")
    assert first.status == 429
    assert second.status == 200
    assert 0.9 <= second.time - first.time < 5


def test_500_after_first_batch_keeps_first_batch(emulator, run_playbook):
    ids = token_ids(40)
    emulator.add_tokens(ORG_ID, ids)
    emulator.add_fault(Fault(match="deactivate", skip=1, count=None, status=500))

    run = run_playbook("deactivate.yml", {"org_id": ORG_ID, "token_ids": ids})

    assert task_status(run.stdout, "Deactivate the requested tokens") == "fatal"
    assert run.result["failed"] is True
    assert run.result["changed"] is True
    assert run.result["deactivated"] == ids[:15]
    assert [failure["id"] for failure in run.result["failures"]] == ids[15:]
    assert "HTTP 500" in run.result["msg"]
    assert len(deactivate_ids(emulator)) == 2


def test_access_token_expiry_reauthenticates_once(emulator, run_playbook):
    ids = token_ids(40)
    emulator.add_tokens(ORG_ID, ids)
    emulator.access_token_lifetime = 2

    run = run_playbook("deactivate.yml", {"org_id": ORG_ID, "token_ids": ids})

    assert run.returncode == 0, run.output
    assert run.result["deactivated"] == ids
    assert len(emulator.api_requests("authorize")) == 2
    assert [record.status for record in emulator.api_requests("deactivate")] == [200, 200, 401, 200]


def test_max_concurrency_keeps_order(emulator, run_playbook):
    ids = token_ids(150)
    emulator.add_tokens(ORG_ID, ids)

    run = run_playbook("deactivate.yml", {"org_id": ORG_ID, "token_ids": ids, "max_concurrency": 4})

    assert run.returncode == 0, run.output
    assert run.result["deactivated"] == ids
    assert run.result["requests"] == 10
    assert len(deactivate_ids(emulator)) == 10


def test_adhoc_with_environment_credentials(emulator, run_adhoc):
    ids = token_ids(3)
    emulator.add_tokens(ORG_ID, ids)

    run = run_adhoc(
        "csp.iam.csp_api_token_deactivate", f"token_ids={','.join(ids)}", env={"CSP_ORG_ID": ORG_ID}
    )

    assert run.returncode == 0, run.output
    assert "CHANGED" in run.stdout
    assert run.result["deactivated"] == ids
    assert API_TOKEN not in run.output


def test_module_defaults_group(emulator, run_playbook):
    ids = token_ids(3)
    emulator.add_tokens(ORG_ID, ids)

    run = run_playbook("module_defaults.yml", module_defaults_variables(emulator, ids), env=CONNECTION_ENV_CLEARED)

    assert run.returncode == 0, run.output
    assert run.result["deactivated"] == ids


def test_missing_requests_standard_message(emulator, run_adhoc, tmp_path):
    # A package named requests that fails to import simulates a Python without the library.
    blocker = tmp_path / "blocker" / "requests"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text('raise ImportError("requests is blocked by this test")\n')

    run = run_adhoc(
        "csp.iam.csp_api_token_deactivate",
        f"org_id={ORG_ID} token_ids=a",
        env={"PYTHONPATH": str(blocker.parent)},
    )

    assert run.returncode != 0
    assert "Failed to import the required Python library (requests)" in run.result["msg"]
    assert emulator.requests == []


def test_ansible_doc_renders(ansible_env):
    for module in ("csp.iam.csp_api_token_deactivate", "csp.iam.csp_api_token_activate"):
        process = subprocess.run(
            [str(Path(sys.executable).with_name("ansible-doc")), module],
            env=ansible_env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert process.returncode == 0, process.stderr
        assert "org_id" in process.stdout
        assert "EXAMPLES" in process.stdout
        assert "RETURN VALUES" in process.stdout
        assert "api_token" in process.stdout
        assert process.stderr.strip() == ""
