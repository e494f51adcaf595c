# -*- coding: utf-8 -*-
# Copyright: csp.iam contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The three ways to obtain a CSP access token. Private to this collection: not a public API."""

from __future__ import annotations

from dataclasses import dataclass

API_TOKEN_AUTHORIZE_PATH = "/csp/gateway/am/api/auth/api-tokens/authorize"
CLIENT_CREDENTIALS_PATH = "/csp/gateway/am/api/auth/authorize"


@dataclass(frozen=True)
class TokenRequest:
    """A form POST that exchanges credentials for an access token."""

    path: str
    form: dict
    basic_auth: tuple[str, str] | None = None


class ApiTokenAuth:
    """A user's API token (a long-lived refresh token), exchanged for a 30-minute access token."""

    kind = "api_token"
    can_refresh = True

    def __init__(self, api_token: str, passcode: str | None = None):
        self._api_token = api_token
        self._passcode = passcode
        # An MFA passcode works once, so an exchange made only to check the credentials would use it up.
        self.single_use = bool(passcode)

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(secret for secret in (self._api_token, self._passcode) if secret)

    def token_request(self) -> TokenRequest:
        # The token goes in the form body only: CSP stopped accepting it as a query parameter in 2019.
        form = {"api_token": self._api_token}
        if self._passcode:
            form["passcode"] = self._passcode
        return TokenRequest(API_TOKEN_AUTHORIZE_PATH, form)


class ClientCredentialsAuth:
    """An OAuth app or service account, authenticated with the client-credentials grant."""

    kind = "client_credentials"
    can_refresh = True
    single_use = False

    def __init__(self, client_id: str, client_secret: str, org_id: str | None = None):
        self._client_id = client_id
        self._client_secret = client_secret
        self._org_id = org_id

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self._client_secret,)

    def token_request(self) -> TokenRequest:
        form = {"grant_type": "client_credentials"}
        if self._org_id:
            form["orgId"] = self._org_id
        return TokenRequest(CLIENT_CREDENTIALS_PATH, form, (self._client_id, self._client_secret))


class AccessTokenAuth:
    """An access token obtained elsewhere. It cannot be renewed, so its expiry ends the run."""

    kind = "access_token"
    can_refresh = False
    single_use = False

    def __init__(self, access_token: str):
        self.access_token = access_token

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.access_token,)

    def token_request(self) -> None:
        return None
