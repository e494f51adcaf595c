"""End-to-end runs of csp_api_token_activate through ansible-playbook and ansible against the emulator."""

from __future__ import annotations

from conftest import API_TOKEN, CONNECTION_ENV_CLEARED, ORG_ID, module_defaults_variables, task_status, token_ids
from csp_emulator import Fault

TASK = "Activate the requested tokens"


def activate_ids(emulator):
    return [record.ids for record in emulator.api_requests("activate")]


def test_forty_ids_with_duplicates(emulator, run_playbook):
    ids = token_ids(37)
    emulator.add_tokens(ORG_ID, ids, active=False)
    requested = ids + ids[:3]

    run = run_playbook("activate.yml", {"org_id": ORG_ID, "token_ids": requested})

    assert run.returncode == 0, run.output
    assert run.result["changed"] is True
    assert run.result["activated"] == ids
    assert run.result["already_active"] == []
    assert run.result["failures"] == []
    assert run.result["requests"] == 3
    assert "deactivated" not in run.result
    sent = activate_ids(emulator)
    assert len(sent) == 3
    assert all(len(batch) <= 15 for batch in sent)
    assert sum(sent, []) == ids
    assert emulator.api_requests("deactivate") == []
    assert all(emulator.token_active(ORG_ID, token_id) for token_id in ids)


def test_second_run_is_ok_not_changed(emulator, run_playbook):
    ids = token_ids(37)
    emulator.add_tokens(ORG_ID, ids, active=False)
    requested = ids + ids[:3]
    first = run_playbook("activate.yml", {"org_id": ORG_ID, "token_ids": requested})
    assert first.result["changed"] is True

    second = run_playbook("activate.yml", {"org_id": ORG_ID, "token_ids": requested})

    assert second.returncode == 0, second.output
    assert second.result["changed"] is False
    assert second.result.get("failed", False) is False
    assert second.result["already_active"] == ids
    assert second.result["activated"] == []
    assert second.result["failures"] == []
    assert task_status(second.stdout, TASK) == "ok"


def test_check_mode_sends_no_activate(emulator, run_playbook):
    ids = token_ids(20)
    emulator.add_tokens(ORG_ID, ids, active=False)

    run = run_playbook("activate.yml", {"org_id": ORG_ID, "token_ids": ids}, check=True)

    assert run.returncode == 0, run.output
    assert run.result["changed"] is True
    assert run.result["activated"] == ids
    assert run.result["requests"] == 0
    assert "Check mode: would send 2 activate request(s)" in run.result["msg"]
    assert activate_ids(emulator) == []
    assert len(emulator.api_requests("authorize")) == 1
    assert not any(emulator.token_active(ORG_ID, token_id) for token_id in ids)


def test_unknown_id_fails_task_keeps_valid(emulator, run_playbook):
    ids = token_ids(5)
    emulator.add_tokens(ORG_ID, ids, active=False)
    unknown = "00000000-0000-4000-8000-000000000000"

    run = run_playbook("activate.yml", {"org_id": ORG_ID, "token_ids": ids[:2] + [unknown] + ids[2:]})

    assert task_status(run.stdout, TASK) == "fatal"
    assert run.result["failed"] is True
    assert run.result["changed"] is True
    assert run.result["activated"] == ids
    assert [failure["id"] for failure in run.result["failures"]] == [unknown]
    assert "not found" in run.result["failures"][0]["message"]
    assert "Activated 5 of 6" in run.result["msg"]
    assert all(emulator.token_active(ORG_ID, token_id) for token_id in ids)


def test_429_retry_after_waits_then_succeeds(emulator, run_playbook):
    ids = token_ids(3)
    emulator.add_tokens(ORG_ID, ids, active=False)
    emulator.add_fault(Fault(match="activate", status=429, headers={"Retry-After": "1"}))

    run = run_playbook("activate.yml", {"org_id": ORG_ID, "token_ids": ids})

    assert run.returncode == 0, run.output
    assert run.result["activated"] == ids
    assert run.result["retries"] == 1
    assert run.result["requests"] == 1
    first, second = emulator.api_requests("activate")
    assert first.status == 429
    assert second.status == 200
    assert 0.9 <= second.time - first.time < 5


def test_500_after_first_batch_keeps_first_batch(emulator, run_playbook):
    ids = token_ids(40)
    emulator.add_tokens(ORG_ID, ids, active=False)
    emulator.add_fault(Fault(match="activate", skip=1, count=None, status=500))

    run = run_playbook("activate.yml", {"org_id": ORG_ID, "token_ids": ids})

    assert task_status(run.stdout, TASK) == "fatal"
    assert run.result["failed"] is True
    assert run.result["changed"] is True
    assert run.result["activated"] == ids[:15]
    assert [failure["id"] for failure in run.result["failures"]] == ids[15:]
    assert "HTTP 500" in run.result["msg"]
    assert "Not sent" in run.result["failures"][-1]["message"]
    assert len(activate_ids(emulator)) == 2
    assert all(emulator.token_active(ORG_ID, token_id) for token_id in ids[:15])
    assert not any(emulator.token_active(ORG_ID, token_id) for token_id in ids[15:])


def test_access_token_expiry_reauthenticates_once(emulator, run_playbook):
    ids = token_ids(40)
    emulator.add_tokens(ORG_ID, ids, active=False)
    emulator.access_token_lifetime = 2

    run = run_playbook("activate.yml", {"org_id": ORG_ID, "token_ids": ids})

    assert run.returncode == 0, run.output
    assert run.result["activated"] == ids
    assert len(emulator.api_requests("authorize")) == 2
    assert [record.status for record in emulator.api_requests("activate")] == [200, 200, 401, 200]


def test_adhoc_with_environment_credentials(emulator, run_adhoc):
    ids = token_ids(3)
    emulator.add_tokens(ORG_ID, ids, active=False)

    run = run_adhoc("csp.iam.csp_api_token_activate", f"token_ids={','.join(ids)}", env={"CSP_ORG_ID": ORG_ID})

    assert run.returncode == 0, run.output
    assert "CHANGED" in run.stdout
    assert run.result["activated"] == ids
    assert API_TOKEN not in run.output


def test_module_defaults_group(emulator, run_playbook):
    ids = token_ids(3)
    emulator.add_tokens(ORG_ID, ids, active=False)

    run = run_playbook(
        "module_defaults_activate.yml", module_defaults_variables(emulator, ids), env=CONNECTION_ENV_CLEARED
    )

    assert run.returncode == 0, run.output
    assert run.result["activated"] == ids
    assert all(emulator.token_active(ORG_ID, token_id) for token_id in ids)


# Each step of token_cycle.yml: task name, the key of the ids it changes, the key of the ids it finds done.
CYCLE_STEPS = [
    ("Activate (first)", "activated", "already_active"),
    ("Activate (first, re-run)", "activated", "already_active"),
    ("Deactivate", "deactivated", "already_inactive"),
    ("Deactivate (re-run)", "deactivated", "already_inactive"),
    ("Activate (second)", "activated", "already_active"),
    ("Activate (second, re-run)", "activated", "already_active"),
]


def test_activate_deactivate_activate_cycle(emulator, run_playbook):
    ids = token_ids(17, prefix="cycle")
    emulator.add_tokens(ORG_ID, ids, active=False)

    run = run_playbook("token_cycle.yml", {"org_id": ORG_ID, "token_ids": ids})

    assert run.returncode == 0, run.output
    assert len(run.result) == len(CYCLE_STEPS)
    for position, (task_name, changed_key, already_key) in enumerate(CYCLE_STEPS):
        step = run.result[position]
        is_rerun = "re-run" in task_name
        assert step["changed"] is (not is_rerun), task_name
        assert step[changed_key] == ([] if is_rerun else ids), task_name
        assert step[already_key] == (ids if is_rerun else []), task_name
        assert step["failures"] == [], task_name
        assert task_status(run.stdout, task_name) == ("ok" if is_rerun else "changed"), task_name
    assert all(emulator.token_active(ORG_ID, token_id) for token_id in ids)
    # Two requests per step, because 17 ids make a batch of 15 and one of 2.
    assert len(emulator.api_requests("activate")) == 8
    assert len(emulator.api_requests("deactivate")) == 4
