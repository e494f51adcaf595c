"""The playbooks that the user guide shows, checked and run against the emulator.

The guide in docs/docsite/rst/ shows playbooks only through literalinclude of files in docs/examples/, so
these tests cover every playbook a reader sees there.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from conftest import ANSIBLE_RUN_TIMEOUT, API_TOKEN, CONNECTION_ENV_CLEARED, ORG_ID, TESTS_DIR, token_ids

REPO_ROOT = TESTS_DIR.parent
DOCS_DIR = REPO_ROOT / "docs"
EXAMPLES_DIR = DOCS_DIR / "examples"
GUIDE_DIR = DOCS_DIR / "docsite" / "rst"
# Files in docs/examples that are not playbooks.
NON_PLAYBOOKS = {"execution-environment.yml", "leaver.yml"}
PLAYBOOKS = sorted(path.name for path in EXAMPLES_DIR.glob("*.yml") if path.name not in NON_PLAYBOOKS)
INCLUDE = re.compile(r"^\s*\.\. literalinclude:: (\S+)$", re.MULTILINE)


def guide_includes() -> list[Path]:
    """Return the resolved path of every literalinclude in the guide's rst files."""
    included = []
    for rst in sorted(GUIDE_DIR.glob("*.rst")):
        for target in INCLUDE.findall(rst.read_text()):
            included.append((rst.parent / target).resolve())
    return included


CALLBACK_DIR = TESTS_DIR / "e2e" / "callback_plugins"


@pytest.fixture
def run_example(ansible_env, tmp_path):
    """Run a playbook from docs/examples and return (return code, task results, output).

    The task results map each task name to ``{host: result}``, recorded by the record_results callback.
    """

    def run(name: str, extra_vars: dict | None = None, *, check: bool = False, env: dict | None = None, inventory=None):
        vars_path = tmp_path / f"vars-{uuid.uuid4().hex}.json"
        vars_path.write_text(json.dumps(extra_vars or {}))
        records_path = tmp_path / f"results-{uuid.uuid4().hex}.jsonl"
        command = [str(Path(sys.executable).with_name("ansible-playbook")), str(EXAMPLES_DIR / name), "-e", f"@{vars_path}"]
        if inventory is not None:
            command.extend(["-i", str(inventory)])
        if check:
            command.append("--check")
        callback_env = {
            "ANSIBLE_CALLBACK_PLUGINS": str(CALLBACK_DIR),
            "ANSIBLE_CALLBACKS_ENABLED": "record_results",
            "RECORD_RESULTS_PATH": str(records_path),
        }
        process = subprocess.run(
            command,
            env={**ansible_env, **callback_env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=ANSIBLE_RUN_TIMEOUT,
            check=False,
        )
        results: dict[str, dict] = {}
        if records_path.exists():
            for line in records_path.read_text().splitlines():
                record = json.loads(line)
                results.setdefault(record["task"], {})[record["host"]] = record["result"]
        return process.returncode, results, process.stdout + process.stderr

    return run


def test_guide_includes_every_example():
    included = guide_includes()
    examples = {path.resolve() for path in EXAMPLES_DIR.iterdir() if path.is_file()}

    missing = [str(path) for path in included if not path.is_file()]
    assert missing == [], f"literalinclude targets that do not exist: {missing}"
    assert examples <= set(included), f"examples the guide does not show: {sorted(examples - set(included))}"


def test_guide_has_no_inline_yaml():
    for rst in GUIDE_DIR.glob("*.rst"):
        text = rst.read_text()
        assert ".. code-block:: yaml" not in text, f"{rst.name} shows YAML inline. Move it to docs/examples."
        assert "hosts:" not in INCLUDE.sub("", text).replace("``hosts: localhost``", ""), rst.name


def test_extra_docs_registers_guide():
    extra_docs = yaml.safe_load((DOCS_DIR / "docsite" / "extra-docs.yml").read_text())

    toctrees = [entry for section in extra_docs["sections"] for entry in section["toctree"]]
    assert sorted(toctrees) == sorted(path.stem for path in GUIDE_DIR.glob("*.rst"))


def test_ee_example_installs_collection():
    definition = yaml.safe_load((EXAMPLES_DIR / "execution-environment.yml").read_text())
    collection_meta = yaml.safe_load((REPO_ROOT / "meta" / "execution-environment.yml").read_text())

    assert definition["version"] == 3
    assert definition["dependencies"]["galaxy"]["collections"] == [{"name": "csp.iam"}]
    assert (REPO_ROOT / collection_meta["dependencies"]["python"]).is_file()


@pytest.mark.parametrize("name", PLAYBOOKS)
def test_example_syntax(name, ansible_env, tmp_path):
    inventory = tmp_path / "hosts"
    inventory.write_text("[retiring_servers]\nweb1\n")

    process = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "--syntax-check", "-i", str(inventory), str(EXAMPLES_DIR / name)],
        env=ansible_env,
        capture_output=True,
        text=True,
        timeout=ANSIBLE_RUN_TIMEOUT,
        check=False,
    )

    assert process.returncode == 0, process.stdout + process.stderr
    assert "[WARNING]" not in process.stderr


def test_offboard_check_run_rerun(emulator, run_example):
    ids = token_ids(4, prefix="leaver")
    emulator.add_tokens(ORG_ID, ids)
    env = {"CSP_ORG_ID": ORG_ID}
    task = "Deactivate the person's API tokens"

    check_rc, check_results, check_output = run_example("offboard.yml", {"leaver_token_ids": ids}, check=True, env=env)
    assert check_rc == 0, check_output
    assert check_results[task]["localhost"]["changed"] is True
    assert check_results[task]["localhost"]["deactivated"] == ids
    assert emulator.api_requests("deactivate") == []

    run_rc, run_results, run_output = run_example("offboard.yml", {"leaver_token_ids": ids}, env=env)
    assert run_rc == 0, run_output
    assert run_results[task]["localhost"]["changed"] is True
    assert run_results[task]["localhost"]["deactivated"] == ids
    assert not any(emulator.token_active(ORG_ID, token_id) for token_id in ids)

    rerun_rc, rerun_results, rerun_output = run_example("offboard.yml", {"leaver_token_ids": ids}, env=env)
    assert rerun_rc == 0, rerun_output
    assert rerun_results[task]["localhost"]["changed"] is False
    assert rerun_results[task]["localhost"]["already_inactive"] == ids


def test_undo_reactivates(emulator, run_example):
    ids = token_ids(2, prefix="restore")
    emulator.add_tokens(ORG_ID, ids, active=False)

    returncode, results, output = run_example("undo.yml", {"restore_token_ids": ids}, env={"CSP_ORG_ID": ORG_ID})

    assert returncode == 0, output
    restored = results["Re-activate the tokens"]["localhost"]
    assert restored["changed"] is True
    assert restored["activated"] == ids
    assert all(emulator.token_active(ORG_ID, token_id) for token_id in ids)


def test_incident_lists_remaining_then_succeeds(emulator, run_example):
    ids = token_ids(20, prefix="incident")
    emulator.add_tokens(ORG_ID, ids)
    unknown = "00000000-0000-4000-8000-000000000000"
    env = {"CSP_ORG_ID": ORG_ID}

    failed_rc, failed_results, failed_output = run_example("incident.yml", {"compromised_token_ids": ids + [unknown]}, env=env)
    assert failed_rc != 0, failed_output
    listed = failed_results["List the tokens that are still active or in an unknown state"]["localhost"]
    assert [item["item"]["id"] for item in listed["results"]] == [unknown]
    final = failed_results["Fail the run while any token remains"]["localhost"]
    assert final["failed"] is True
    assert "Deactivated 20 of 21 API tokens" in final["msg"]
    assert "1 failed" in final["msg"]
    assert not any(emulator.token_active(ORG_ID, token_id) for token_id in ids)

    second_rc, second_results, second_output = run_example("incident.yml", {"compromised_token_ids": ids}, env=env)
    assert second_rc == 0, second_output
    second = second_results["Deactivate the compromised tokens"]["localhost"]
    assert second["changed"] is False
    assert second["already_inactive"] == ids


def test_incident_fails_with_rejected_credentials(emulator, run_example):
    ids = token_ids(3, prefix="incident")
    emulator.add_tokens(ORG_ID, ids)
    env = {"CSP_ORG_ID": ORG_ID, "CSP_API_TOKEN": "rejected-api-token-000"}

    for check in (True, False):
        returncode, results, output = run_example(
            "incident.yml", {"compromised_token_ids": ids}, check=check, env=env
        )
        assert returncode != 0, output
        cutoff = results["Deactivate the compromised tokens"]["localhost"]
        assert [failure["id"] for failure in cutoff["failures"]] == ids
        final = results["Fail the run while any token remains"]["localhost"]
        assert final["failed"] is True
        assert "API token was rejected" in final["msg"]
    assert all(emulator.token_active(ORG_ID, token_id) for token_id in ids)


def test_module_defaults_without_environment(emulator, run_example):
    ids = token_ids(2, prefix="defaults")
    emulator.add_tokens(ORG_ID, ids)
    variables = {
        "csp_api_host": emulator.api_host,
        "csp_api_token": API_TOKEN,
        "csp_ca_path": emulator.ca_path,
        "csp_org_id": ORG_ID,
        "token_ids": ids,
    }

    returncode, results, output = run_example("module_defaults.yml", variables, env=CONNECTION_ENV_CLEARED)

    assert returncode == 0, output
    assert results["Deactivate the tokens"]["localhost"]["deactivated"] == ids
    assert API_TOKEN not in output


def test_delegate_never_uses_managed_nodes(emulator, run_example, tmp_path):
    ids = token_ids(3, prefix="server")
    emulator.add_tokens(ORG_ID, ids)
    # Managed nodes whose Python does not exist: a task that ran on one of them would fail.
    inventory = tmp_path / "hosts"
    inventory.write_text(
        "[retiring_servers]\n"
        "web1 ansible_connection=local ansible_python_interpreter=/nonexistent/python\n"
        "web2 ansible_connection=local ansible_python_interpreter=/nonexistent/python\n"
    )

    returncode, results, output = run_example(
        "delegate.yml", {"server_token_ids": ids}, env={"CSP_ORG_ID": ORG_ID}, inventory=inventory
    )

    assert returncode == 0, output
    task = results["Deactivate the tokens that this server used"]
    assert list(task) == ["web1"]
    assert task["web1"]["deactivated"] == ids
    assert len(emulator.api_requests("deactivate")) == 1
