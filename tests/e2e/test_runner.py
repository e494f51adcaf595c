"""The example offboarding playbook run through ansible-runner the way AWX runs a job.

AWX renders the credential type's injectors into environment variables and files, passes the variables to
ansible-runner, and runs the playbook from the project folder against ``localhost`` with a local connection.
This test does the same with docs/awx/credential-type.yml and a distinctive API token value (the canary),
then looks for the canary in every file that the run left in its private data directory.

What "no credential in the artifacts" means here:

- The canary is passed with ``envvars`` and ``suppress_env_files=True``, so ansible-runner does not write it
  to ``env/envvars``. The variables stay in the memory of the test process and of the processes it starts.
- No job event, no line of ``stdout`` and no other file may contain it, with one exception that this
  collection cannot control. ansible-runner 2.4.3 writes ``artifacts/<ident>/command`` with the complete
  environment of the ansible-playbook process, whatever its source, so every environment credential lands
  there. The test requires the canary in that file. This shows that the search finds the canary where it
  is present, so its absence elsewhere means something.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import ansible_runner
import pytest
import yaml

from awx_injection import load_credential_type, render_injectors
from conftest import ORG_ID, TESTS_DIR

REPO_ROOT = TESTS_DIR.parent
CANARY = "CANARY-awx-0f3c9a7e51d24b6c8e0a1f2d3c4b5a69"
# ansible-runner stops the playbook after this many seconds.
RUNNER_TIMEOUT = 90


def files_containing(root: Path, text: str) -> list[str]:
    """Return the paths under ``root``, relative to it, of every file whose bytes contain ``text``."""
    needle = text.encode()
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and needle in path.read_bytes():
            found.append(str(path.relative_to(root)))
    return found


# ansible-runner 2.4.3 always starts a playbook through a pty (pexpect), which forks this process while the
# emulator's threads run. Python warns about that, and the child only execs ansible-playbook right away.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_offboarding_through_ansible_runner(emulator, tmp_path, monkeypatch):
    leaver_ids = yaml.safe_load((REPO_ROOT / "docs" / "examples" / "leaver.yml").read_text())["leaver_token_ids"]
    bystander_ids = ["7e4b2d0f-1a7c-4f3b-8d8e-2c9f5a3b7d01", "7e4b2d0f-1a7c-4f3b-8d8e-2c9f5a3b7d02"]
    emulator.add_tokens(ORG_ID, leaver_ids + bystander_ids)
    emulator.add_api_token(CANARY, user="automation@example.com", roles={ORG_ID: "org_owner"})

    # The runner starts ansible-playbook with a copy of this process's environment, so remove anything that
    # could send the run elsewhere or bring in another credential.
    for variable in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy",
                     "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "CSP_ACCESS_TOKEN"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")

    private_data_dir = tmp_path / "job"
    project_dir = private_data_dir / "project"
    project_dir.mkdir(parents=True)
    shutil.copy(REPO_ROOT / "docs" / "examples" / "offboard.yml", project_dir / "offboard.yml")

    credential_inputs = {
        "api_host": emulator.api_host,
        "api_token": CANARY,
        "ca_bundle": Path(emulator.ca_path).read_text(),
        "org_id": ORG_ID,
    }
    credential_env = render_injectors(load_credential_type(), credential_inputs, private_data_dir)
    assert credential_env["CSP_API_TOKEN"] == CANARY

    events = []
    run = ansible_runner.run(
        private_data_dir=str(private_data_dir),
        playbook="offboard.yml",
        inventory=f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}",
        extravars={"leaver_token_ids": leaver_ids},
        envvars={
            **credential_env,
            "ANSIBLE_COLLECTIONS_PATH": str(Path(sys.executable).parent.parent / "collections"),
            "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-local"),
            "ANSIBLE_HOME": str(tmp_path / "ansible-home"),
        },
        suppress_env_files=True,
        verbosity=3,
        timeout=RUNNER_TIMEOUT,
        quiet=True,
        event_handler=lambda event: events.append(event) or True,
    )

    stdout = run.stdout.read()
    assert run.status == "successful", stdout
    assert run.rc == 0

    # The module result, as AWX shows it from the job events.
    results = [
        event["event_data"]["res"]
        for event in run.events
        if event["event"] == "runner_on_ok" and event["event_data"].get("task") == "Deactivate the person's API tokens"
    ]
    assert len(results) == 1, stdout
    result = results[0]
    assert result["changed"] is True
    assert result["deactivated"] == leaver_ids
    assert result["already_inactive"] == []
    assert result["failures"] == []
    assert "Deactivated now: 18" in stdout

    # The emulator's state: the leaver's tokens are off, the others untouched, and the canary was used.
    assert not any(emulator.token_active(ORG_ID, token_id) for token_id in leaver_ids)
    assert all(emulator.token_active(ORG_ID, token_id) for token_id in bystander_ids)
    authorizations = emulator.api_requests("authorize")
    assert len(authorizations) == 1
    assert authorizations[0].status == 200

    # No credential in the job events, the output or the files of the run, except the runner's own record.
    artifact_dir = Path(run.config.artifact_dir)
    assert list((artifact_dir / "job_events").glob("*.json")), "ansible-runner wrote no job events"
    assert len(events) >= len(list((artifact_dir / "job_events").glob("*.json")))
    assert CANARY not in json.dumps(events)
    assert CANARY not in stdout
    assert not (private_data_dir / "env" / "envvars").exists()
    command_record = str((artifact_dir / "command").relative_to(private_data_dir))
    assert files_containing(private_data_dir, CANARY) == [command_record]
