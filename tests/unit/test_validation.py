"""Unit tests of the option checks that run before any request."""

from __future__ import annotations

import pytest

from ansible_collections.csp.iam.plugins.module_utils._errors import CspConfigError
from ansible_collections.csp.iam.plugins.module_utils._validation import (
    base_url_from_api_host,
    normalize_token_ids,
    validate_ca_path,
    validate_max_concurrency,
    validate_org_id,
    validate_timeout,
)

GUID = "8a3c1f52-3c57-4a5e-9d4b-1f0e2d7c6b5a"


def test_org_id_guid_accepted():
    assert validate_org_id(GUID) == GUID
    assert validate_org_id(GUID.upper()) == GUID.upper()


@pytest.mark.parametrize(
    "org_id",
    ["", "not-a-guid", GUID + "/x", "../" + GUID, GUID[:-2] + "%2F", GUID + "?a=1", GUID + "#x", "{" + GUID + "}",
     GUID.replace("-", ""), f" {GUID}", GUID + "\n", None, 42],
)
def test_org_id_rejected(org_id):
    # Each case must fail, including a GUID with a final line break, which a "$" anchor would accept.
    with pytest.raises(CspConfigError) as error:
        validate_org_id(org_id)
    assert "org_id" in str(error.value)
    assert "CSP_ORG_ID" in str(error.value)


def test_token_ids_duplicates_removed_in_order():
    assert normalize_token_ids(["b", "a", "b", "c", "a"]) == ["b", "a", "c"]


def test_token_ids_string_split_at_commas():
    assert normalize_token_ids("a,b,a") == ["a", "b"]


def test_token_ids_empty_list_allowed():
    assert normalize_token_ids([]) == []


@pytest.mark.parametrize(
    ("token_ids", "expected_words"),
    [
        (5, "expected a list"),
        (True, "expected a list"),
        ({"id": "a"}, "expected a list"),
        (None, "expected a list"),
        (["a", ""], "entry 2"),
        (["a", "   "], "blank"),
        (["a", 7], "expected a string"),
        (["a", None], "expected a string"),
        ([" a"], "spaces"),
        (["a\u202eb"], "invisible"),
        (["a\x00b"], "control"),
        (["a\u200bb"], "invisible"),
        (["a "], "spaces"),
    ],
)
def test_token_ids_rejected(token_ids, expected_words):
    with pytest.raises(CspConfigError) as error:
        normalize_token_ids(token_ids)
    assert expected_words in str(error.value)


@pytest.mark.parametrize(
    ("api_host", "base_url"),
    [
        ("console.cloud.vmware.com", "https://console.cloud.vmware.com"),
        ("127.0.0.1:8443", "https://127.0.0.1:8443"),
        ("https://console.tanzu.broadcom.com", "https://console.tanzu.broadcom.com"),
        ("https://console.tanzu.broadcom.com/", "https://console.tanzu.broadcom.com"),
        ("HTTPS://appliance.example.com:443", "https://appliance.example.com:443"),
        ("[::1]:9443", "https://[::1]:9443"),
    ],
)
def test_api_host_accepted(api_host, base_url):
    assert base_url_from_api_host(api_host) == base_url


@pytest.mark.parametrize(
    ("api_host", "expected_words"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("http://console.cloud.vmware.com", "only https://"),
        ("ftp://example.com", "only https://"),
        ("https://user:secret@example.com", "user information"),
        ("https://example.com/csp/gateway", "without a path"),
        ("example.com?x=1", "without a path"),
        ("example.com#frag", "without a path"),
        ("example.com:0", "port"),
        ("example.com:65536", "port"),
        ("example.com:http", "port"),
        ("example.com:", "port"),
        ("https://:443", "host name is missing"),
        ("127.0.0.1 :8443", "spaces or control characters"),
        ("exa mple.com", "spaces or control characters"),
        ("exa\nmple.com", "spaces or control characters"),
        ("exa\tmple.com", "spaces or control characters"),
        ("exa_mple.com", "only letters, digits"),
        ("https://exa%0Ample.com", "only letters, digits"),
        ("[::1%25eth0]:443", "only letters, digits"),
    ],
)
def test_api_host_rejected(api_host, expected_words):
    with pytest.raises(CspConfigError) as error:
        base_url_from_api_host(api_host)
    assert expected_words in str(error.value)


def test_api_host_user_info_not_echoed():
    with pytest.raises(CspConfigError) as error:
        base_url_from_api_host("https://admin:hunter2-secret@example.com")
    assert "hunter2-secret" not in str(error.value)


@pytest.mark.parametrize("value", [1, 4, 8])
def test_max_concurrency_accepted(value):
    assert validate_max_concurrency(value) == value


@pytest.mark.parametrize("value", [0, -1, 9, 100, True, "4", None])
def test_max_concurrency_rejected(value):
    with pytest.raises(CspConfigError) as error:
        validate_max_concurrency(value)
    assert "max_concurrency" in str(error.value)
    assert "from 1 to 8" in str(error.value)


@pytest.mark.parametrize("value", [0.5, 30, 30.0])
def test_timeout_accepted(value):
    assert validate_timeout(value) == float(value)


@pytest.mark.parametrize("value", [0, -1, float("nan"), float("inf"), 3601, 1e12, True, None])
def test_timeout_rejected(value):
    with pytest.raises(CspConfigError) as error:
        validate_timeout(value)
    assert "Invalid timeout" in str(error.value)
    assert "greater than 0" in str(error.value)


def test_ca_path_none_allowed():
    assert validate_ca_path(None) is None


def test_ca_path_pem_accepted(emulator):
    assert validate_ca_path(emulator.ca_path) == emulator.ca_path


def test_ca_path_folder_accepted(tmp_path):
    assert validate_ca_path(str(tmp_path)) == str(tmp_path)


def test_ca_path_missing_rejected(tmp_path):
    with pytest.raises(CspConfigError) as error:
        validate_ca_path(str(tmp_path / "missing.pem"))
    assert "no such file" in str(error.value)
    assert "ca_path" in str(error.value)


def test_ca_path_not_pem_rejected(tmp_path):
    not_pem = tmp_path / "notes.txt"
    not_pem.write_text("this is not a certificate")
    with pytest.raises(CspConfigError) as error:
        validate_ca_path(str(not_pem))
    assert "could not be loaded as PEM" in str(error.value)
