"""Fixtures shared by the tests: the collection on sys.path, the local CSP emulator, and Ansible runners."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from csp_emulator import Emulator

TESTS_DIR = Path(__file__).resolve().parent
PLAYBOOKS_DIR = TESTS_DIR / "e2e" / "playbooks"

# scripts/test sets ANSIBLE_COLLECTIONS_PATH to a folder that links ansible_collections/csp/iam to this
# checkout. Putting it on sys.path lets the unit tests import the module_utils by their collection names.
for collections_path in reversed(os.environ.get("ANSIBLE_COLLECTIONS_PATH", "").split(os.pathsep)):
    if collections_path and collections_path not in sys.path:
        sys.path.insert(0, collections_path)

ORG_ID = "8a3c1f52-3c57-4a5e-9d4b-1f0e2d7c6b5a"
OTHER_ORG_ID = "2f0d9c8b-7a6e-4d5c-9b4a-3e2f1d0c9b8a"
API_TOKEN = "demo-api-token-0123456789"
# Ansible runs stop after this many seconds, so that a hung module cannot stall the suite.
ANSIBLE_RUN_TIMEOUT = 300


@pytest.fixture(scope="session")
def emulator_server():
    with Emulator() as server:
        yield server


@pytest.fixture
def emulator(emulator_server):
    """The running emulator, emptied before each test, with one organization and its owner's API token."""
    emulator_server.reset()
    emulator_server.add_org(ORG_ID)
    emulator_server.add_api_token(API_TOKEN, user="owner@example.com", roles={ORG_ID: "org_owner"})
    return emulator_server


# Empty values for the connection variables that ansible_env sets, for tests that pass the connection otherwise.
CONNECTION_ENV_CLEARED = {"CSP_API_HOST": "", "CSP_CA_PATH": "", "CSP_API_TOKEN": ""}


def module_defaults_variables(emulator, ids: list[str]) -> dict:
    """Return the variables of the module_defaults playbooks: the emulator's connection, the org and the ids."""
    return {
        "csp_api_host": emulator.api_host,
        "csp_ca_path": emulator.ca_path,
        "csp_api_token": API_TOKEN,
        "org_id": ORG_ID,
        "token_ids": ids,
    }


def task_status(stdout: str, task_name: str) -> str:
    """Return the status word (ok, changed, fatal) that the default callback printed for a task."""
    section = stdout.split(f"TASK [{task_name}]", 1)[1]
    for line in section.splitlines():
        status, separator, _rest = line.partition(": [localhost]")
        if separator:
            return status
    raise AssertionError(f"No status line for task {task_name!r} in:\n{stdout}")


def token_ids(count: int, prefix: str = "tok") -> list[str]:
    """Return ``count`` distinct token ids, stable across runs."""
    return [str(uuid.uuid5(uuid.NAMESPACE_URL, f"{prefix}-{index}")) for index in range(count)]


@dataclass
class AnsibleRun:
    """A finished ansible or ansible-playbook process, with the module result the run saved, if any."""

    returncode: int
    stdout: str
    stderr: str
    result: dict | None

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@pytest.fixture
def ansible_env(emulator, tmp_path):
    """Environment for Ansible processes: the collection, the emulator's host and CA, the owner's API token."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CSP_", "ANSIBLE_")) and key not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
    }
    env.update(
        {
            "ANSIBLE_COLLECTIONS_PATH": os.environ["ANSIBLE_COLLECTIONS_PATH"],
            "ANSIBLE_LOCALHOST_WARNING": "false",
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
            "ANSIBLE_NOCOLOR": "true",
            "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-local"),
            "ANSIBLE_HOME": str(tmp_path / "ansible-home"),
            "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
            "CSP_API_HOST": emulator.api_host,
            "CSP_CA_PATH": emulator.ca_path,
            "CSP_API_TOKEN": API_TOKEN,
        }
    )
    for variable in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        env.pop(variable, None)
    env["NO_PROXY"] = "127.0.0.1,localhost"
    return env


@pytest.fixture
def run_playbook(ansible_env, tmp_path):
    """Run a playbook from tests/e2e/playbooks and return the result that its last task saved."""

    def run(name: str, extra_vars: dict | None = None, *, check: bool = False, env: dict | None = None, args=()):
        result_path = tmp_path / f"result-{uuid.uuid4().hex}.json"
        variables = {"result_path": str(result_path), **(extra_vars or {})}
        vars_path = tmp_path / f"vars-{uuid.uuid4().hex}.json"
        vars_path.write_text(json.dumps(variables))
        command = [str(Path(sys.executable).with_name("ansible-playbook")), str(PLAYBOOKS_DIR / name), "-e", f"@{vars_path}"]
        if check:
            command.append("--check")
        command.extend(args)
        process = subprocess.run(
            command,
            env={**ansible_env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=ANSIBLE_RUN_TIMEOUT,
            check=False,
        )
        result = json.loads(result_path.read_text()) if result_path.exists() else None
        return AnsibleRun(process.returncode, process.stdout, process.stderr, result)

    return run


@pytest.fixture
def run_adhoc(ansible_env):
    """Run ``ansible localhost -m MODULE -a ARGS`` and parse the JSON that the minimal callback prints."""

    def run(module: str, module_args: str, *, env: dict | None = None, args=()):
        command = [str(Path(sys.executable).with_name("ansible")), "localhost", "-m", module, "-a", module_args, *args]
        process = subprocess.run(
            command,
            env={**ansible_env, "ANSIBLE_LOAD_CALLBACK_PLUGINS": "true", "ANSIBLE_STDOUT_CALLBACK": "minimal", **(env or {})},
            capture_output=True,
            text=True,
            timeout=ANSIBLE_RUN_TIMEOUT,
            check=False,
        )
        result = None
        _head, separator, body = process.stdout.partition(" => ")
        if separator:
            result = json.loads(body)
        return AnsibleRun(process.returncode, process.stdout, process.stderr, result)

    return run
