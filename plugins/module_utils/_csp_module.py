# -*- coding: utf-8 -*-
# Copyright: csp.iam contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection options of the modules and the client built from them. Private to this collection: not a public API."""

from __future__ import annotations

import warnings

from ansible.module_utils.basic import env_fallback, missing_required_lib

from ._auth import AccessTokenAuth, ApiTokenAuth, ClientCredentialsAuth
from ._client import REQUESTS_IMPORT_ERROR, CspClient
from ._errors import CspConfigError
from ._retry import RetryPolicy
from ._validation import base_url_from_api_host, validate_ca_path, validate_timeout

COLLECTION_VERSION = "0.1.0"

_CREDENTIAL_CHOICES = (
    "api_token (or CSP_API_TOKEN), access_token (or CSP_ACCESS_TOKEN), "
    "or client_id with client_secret (or CSP_CLIENT_ID with CSP_CLIENT_SECRET)"
)


def connection_argument_spec() -> dict:
    """Return a new argument spec for the options of the ``csp.iam.csp`` doc fragment."""
    return {
        "api_host": {"type": "str", "default": "console.cloud.vmware.com", "fallback": (env_fallback, ["CSP_API_HOST"])},
        "api_token": {"type": "str", "no_log": True, "fallback": (env_fallback, ["CSP_API_TOKEN"])},
        "passcode": {"type": "str", "no_log": True},
        "access_token": {"type": "str", "no_log": True, "fallback": (env_fallback, ["CSP_ACCESS_TOKEN"])},
        "client_id": {"type": "str", "fallback": (env_fallback, ["CSP_CLIENT_ID"])},
        "client_secret": {"type": "str", "no_log": True, "fallback": (env_fallback, ["CSP_CLIENT_SECRET"])},
        "validate_certs": {"type": "bool", "default": True},
        "ca_path": {"type": "path", "fallback": (env_fallback, ["CSP_CA_PATH"])},
        "timeout": {"type": "float", "default": 30.0},
        "retries": {"type": "int", "default": 5},
    }


def require_requests(module) -> None:
    """Fail the module with Ansible's standard message when ``requests`` cannot be imported."""
    if REQUESTS_IMPORT_ERROR:
        module.fail_json(msg=missing_required_lib("requests"), exception=REQUESTS_IMPORT_ERROR)


def select_authenticator(params: dict, org_id: str | None = None):
    """Return the authenticator for the one credential kind in ``params``, or raise CspConfigError."""
    kinds = []
    if params.get("api_token"):
        kinds.append("api_token")
    if params.get("access_token"):
        kinds.append("access_token")
    if params.get("client_id") or params.get("client_secret"):
        kinds.append("client_id/client_secret")

    if not kinds:
        raise CspConfigError(f"Missing credentials: set exactly one of {_CREDENTIAL_CHOICES}.")
    if len(kinds) > 1:
        raise CspConfigError(
            f"Conflicting credentials: {' and '.join(kinds)} are both set, counting environment variables. "
            f"Set exactly one of {_CREDENTIAL_CHOICES}."
        )
    if params.get("passcode") and kinds != ["api_token"]:
        raise CspConfigError("Invalid passcode: it is sent only with api_token. Remove passcode or use api_token.")

    if kinds == ["api_token"]:
        return ApiTokenAuth(params["api_token"], params.get("passcode"))
    if kinds == ["access_token"]:
        return AccessTokenAuth(params["access_token"])
    if not (params.get("client_id") and params.get("client_secret")):
        missing = "client_secret (or CSP_CLIENT_SECRET)" if params.get("client_id") else "client_id (or CSP_CLIENT_ID)"
        raise CspConfigError(f"Missing {missing}: client_id and client_secret go together.")
    return ClientCredentialsAuth(params["client_id"], params["client_secret"], org_id)


def build_client(module, org_id: str | None = None) -> CspClient:
    """Return a client for the module's connection options, or raise CspConfigError."""
    params = module.params
    timeout = validate_timeout(params["timeout"])
    if params["retries"] < 0:
        raise CspConfigError(f"Invalid retries {params['retries']!r}: give 0 or more.")

    base_url = base_url_from_api_host(params["api_host"])
    authenticator = select_authenticator(params, org_id)

    verify = validate_ca_path(params["ca_path"]) or True
    if not params["validate_certs"]:
        verify = False
        module.warn(f"validate_certs is false: the TLS certificate of {base_url} is not verified.")
        _silence_insecure_request_warning()

    return CspClient(
        base_url,
        authenticator,
        verify=verify,
        timeout=timeout,
        retry_policy=RetryPolicy(retries=params["retries"]),
        user_agent=f"csp.iam/{COLLECTION_VERSION} (Ansible)",
    )


def _silence_insecure_request_warning() -> None:
    # The module already warned once, and urllib3 would print the same warning to stderr for every request.
    try:
        from urllib3.exceptions import InsecureRequestWarning
    except ImportError:
        return
    warnings.simplefilter("ignore", InsecureRequestWarning)
