"""End-to-end runs of csp_api_token_deactivate that check certificate verification, ca_path, validate_certs,
the CA bundle environment variables of requests, and HTTPS_PROXY and NO_PROXY with a local CONNECT proxy.
"""

from __future__ import annotations

import trustme

from conftest import ORG_ID, token_ids
from proxy import ConnectProxy

PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy")


def run_cases(run_playbook, cases, env=None):
    """Run one loop of cases and return the process and the result of each case by name."""
    run = run_playbook("deactivate_cases.yml", {"org_id": ORG_ID, "cases": cases}, env=env)
    assert run.result is not None, run.output
    return run, {result["item"]["name"]: result for result in run.result["results"]}


def unrelated_ca_bundle(tmp_path) -> str:
    path = tmp_path / "unrelated-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(path))
    return str(path)


def test_verification_ca_path_and_validate_certs(emulator, run_playbook, ansible_env):
    ansible_env.pop("CSP_CA_PATH")
    rejected, trusted, unverified = token_ids(3, prefix="tls")
    emulator.add_tokens(ORG_ID, [rejected, trusted, unverified])
    cases = [
        {"name": "default verification", "token_ids": [rejected]},
        {"name": "ca_path", "token_ids": [trusted], "ca_path": emulator.ca_path},
        {"name": "validate_certs false", "token_ids": [unverified], "validate_certs": False},
    ]

    run, results = run_cases(run_playbook, cases)

    default = results["default verification"]
    assert default["failed"] is True
    assert "CERTIFICATE_VERIFY_FAILED" in default["msg"]
    assert "ca_path" in default["msg"]
    assert "validate_certs" in default["msg"]
    assert default["deactivated"] == []
    assert emulator.token_active(ORG_ID, rejected)

    assert results["ca_path"]["failed"] is False, results["ca_path"]["msg"]
    assert results["ca_path"]["deactivated"] == [trusted]
    assert "warnings" not in results["ca_path"]

    assert results["validate_certs false"]["failed"] is False
    assert results["validate_certs false"]["deactivated"] == [unverified]
    # ansible-core 2.17 drops warnings from the registered results of loop items, but every version prints them.
    assert "validate_certs is false" in run.output
    assert "InsecureRequestWarning" not in run.output

    # The rejected handshake left no request in the log: one authorize and one deactivate per trusting case.
    assert [record.kind for record in emulator.requests] == ["authorize", "deactivate"] * 2


def test_tls_options_win_over_ca_bundle_env(emulator, run_playbook, ansible_env, tmp_path):
    ansible_env.pop("CSP_CA_PATH")
    untrusted, trusted, unverified = token_ids(3, prefix="bundle")
    emulator.add_tokens(ORG_ID, [untrusted, trusted, unverified])
    cases_with_emulator_ca_in_env = [{"name": "default verification", "token_ids": [untrusted]}]
    cases_with_unrelated_ca_in_env = [
        {"name": "ca_path", "token_ids": [trusted], "ca_path": emulator.ca_path},
        {"name": "validate_certs false", "token_ids": [unverified], "validate_certs": False},
    ]
    unrelated = unrelated_ca_bundle(tmp_path)

    # The emulator's CA in the environment must not make the default verification trust it.
    _run, widened = run_cases(
        run_playbook,
        cases_with_emulator_ca_in_env,
        env={"REQUESTS_CA_BUNDLE": emulator.ca_path, "CURL_CA_BUNDLE": emulator.ca_path},
    )
    # An unrelated CA in the environment must not replace ca_path, nor turn verification back on.
    _run, narrowed = run_cases(
        run_playbook,
        cases_with_unrelated_ca_in_env,
        env={"REQUESTS_CA_BUNDLE": unrelated, "CURL_CA_BUNDLE": unrelated},
    )

    assert widened["default verification"]["failed"] is True
    assert "CERTIFICATE_VERIFY_FAILED" in widened["default verification"]["msg"]
    assert emulator.token_active(ORG_ID, untrusted)
    assert narrowed["ca_path"]["failed"] is False, narrowed["ca_path"]["msg"]
    assert narrowed["ca_path"]["deactivated"] == [trusted]
    assert narrowed["validate_certs false"]["failed"] is False
    assert narrowed["validate_certs false"]["deactivated"] == [unverified]


def test_https_proxy_carries_requests(emulator, run_playbook, ansible_env):
    ids = token_ids(20, prefix="proxy")
    emulator.add_tokens(ORG_ID, ids)
    for variable in PROXY_VARIABLES:
        ansible_env.pop(variable, None)

    with ConnectProxy() as proxy:
        run, results = run_cases(
            run_playbook, [{"name": "through proxy", "token_ids": ids}], env={"HTTPS_PROXY": proxy.url}
        )
        tunnel_count = proxy.tunnel_count
        targets = proxy.targets

    assert results["through proxy"]["failed"] is False, run.output
    assert results["through proxy"]["deactivated"] == ids
    # One kept-alive TLS connection carries the token exchange and both deactivate requests.
    assert tunnel_count == 1
    assert targets == [emulator.api_host]
    assert [record.kind for record in emulator.requests] == ["authorize", "deactivate", "deactivate"]
    assert emulator.connection_count == 1


def test_no_proxy_bypasses_proxy(emulator, run_playbook, ansible_env):
    ids = token_ids(3, prefix="no-proxy")
    emulator.add_tokens(ORG_ID, ids)
    for variable in PROXY_VARIABLES:
        ansible_env.pop(variable, None)

    with ConnectProxy() as proxy:
        run, results = run_cases(
            run_playbook,
            [{"name": "bypass", "token_ids": ids}],
            env={"HTTPS_PROXY": proxy.url, "NO_PROXY": "127.0.0.1"},
        )
        tunnel_count = proxy.tunnel_count
        targets = proxy.targets

    assert results["bypass"]["failed"] is False, run.output
    assert results["bypass"]["deactivated"] == ids
    assert tunnel_count == 0
    assert targets == []
