"""Checks of the AWX credential type in docs/awx/credential-type.yml against the options the modules read."""

from __future__ import annotations

from pathlib import Path

import pytest
from jinja2 import meta
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ansible_collections.csp.iam.plugins.module_utils._auth import ApiTokenAuth, ClientCredentialsAuth
from ansible_collections.csp.iam.plugins.module_utils._csp_module import select_authenticator
from ansible_collections.csp.iam.plugins.module_utils._token_module import token_argument_spec
from ansible_collections.csp.iam.plugins.module_utils._validation import base_url_from_api_host, validate_org_id
from awx_injection import load_credential_type, render_injectors

ORG_ID = "8a3c1f52-3c57-4a5e-9d4b-1f0e2d7c6b5a"
CA_PEM = "-----BEGIN CERTIFICATE-----\nMIIBexample\n-----END CERTIFICATE-----\n"


def env_options() -> dict[str, tuple[str, dict]]:
    """Map each environment variable that the modules read to its option name and argument spec entry."""
    options = {}
    for name, spec in token_argument_spec().items():
        fallback = spec.get("fallback")
        if fallback:
            for variable in fallback[1]:
                options[variable] = (name, spec)
    return options


def params_from_env(env: dict[str, str]) -> dict:
    """Return the option values that env_fallback would give a module run in ``env``."""
    return {name: env.get(variable) for variable, (name, _spec) in env_options().items()}


@pytest.fixture(scope="module")
def credential_type():
    return load_credential_type()


def test_injected_env_vars_are_read_by_modules(credential_type):
    injected = set(credential_type["injectors"]["env"])
    read = set(env_options())

    assert injected <= read, f"Injected but read by no module: {sorted(injected - read)}"
    # An access token expires within about 30 minutes, so a stored credential has no field for it.
    assert read - injected == {"CSP_ACCESS_TOKEN"}


def test_templates_use_only_defined_fields(credential_type):
    field_ids = {field["id"] for field in credential_type["inputs"]["fields"]}
    environment = ImmutableSandboxedEnvironment()
    templates = {**credential_type["injectors"]["env"], **credential_type["injectors"]["file"]}

    for name, template in templates.items():
        used = meta.find_undeclared_variables(environment.parse(template)) - {"tower"}
        assert used <= field_ids, f"{name} uses undefined inputs {sorted(used - field_ids)}"


def test_secret_options_have_secret_fields(credential_type):
    fields = {field["id"]: field for field in credential_type["inputs"]["fields"]}
    environment = ImmutableSandboxedEnvironment()

    for variable, template in credential_type["injectors"]["env"].items():
        option, spec = env_options()[variable]
        used = meta.find_undeclared_variables(environment.parse(template)) - {"tower"}
        for field_id in used:
            expected = bool(spec.get("no_log"))
            assert bool(fields[field_id].get("secret")) is expected, f"{field_id} (for {option}) secret flag"


def test_required_and_dependencies_name_fields(credential_type):
    field_ids = {field["id"] for field in credential_type["inputs"]["fields"]}

    assert set(credential_type["inputs"]["required"]) == {"api_host"}
    for field_id, needed in credential_type["inputs"]["dependencies"].items():
        assert field_id in field_ids
        assert set(needed) <= field_ids


def test_ca_bundle_uses_file_injector(credential_type):
    assert credential_type["injectors"]["file"] == {"template.ca_bundle": "{{ ca_bundle }}"}
    assert "tower.filename.ca_bundle" in credential_type["injectors"]["env"]["CSP_CA_PATH"]


def test_api_token_with_ca_bundle(credential_type, tmp_path: Path):
    inputs = {"api_host": "console.tanzu.broadcom.com", "api_token": "token-value", "ca_bundle": CA_PEM, "org_id": ORG_ID}

    env = render_injectors(credential_type, inputs, tmp_path)
    params = params_from_env(env)

    assert base_url_from_api_host(params["api_host"]) == "https://console.tanzu.broadcom.com"
    assert isinstance(select_authenticator(params), ApiTokenAuth)
    assert validate_org_id(params["org_id"]) == ORG_ID
    ca_file = Path(params["ca_path"])
    assert ca_file.parent == tmp_path / "env"
    assert ca_file.read_text() == CA_PEM
    assert ca_file.stat().st_mode & 0o777 == 0o600


def test_api_token_without_ca_bundle(credential_type, tmp_path: Path):
    env = render_injectors(credential_type, {"api_host": "console.cloud.vmware.com", "api_token": "t"}, tmp_path)
    params = params_from_env(env)

    # An empty CSP_CA_PATH makes ca_path empty, and the module then uses the default CA bundle.
    assert env["CSP_CA_PATH"] == ""
    assert env["CSP_CLIENT_ID"] == ""
    assert env["CSP_CLIENT_SECRET"] == ""
    assert isinstance(select_authenticator(params), ApiTokenAuth)


def test_client_credentials(credential_type, tmp_path: Path):
    inputs = {"api_host": "console.cloud.vmware.com", "client_id": "app-id", "client_secret": "app-secret"}

    env = render_injectors(credential_type, inputs, tmp_path)
    authenticator = select_authenticator(params_from_env(env), ORG_ID)

    assert env["CSP_API_TOKEN"] == ""
    assert isinstance(authenticator, ClientCredentialsAuth)
