"""In-memory state of the CSP emulator: organizations, credentials, access tokens, faults and the request log.

Nothing here speaks HTTP. The server parses a request into plain values, calls a `State` method, and turns the
returned dict or the raised `CspError` into a response. One lock guards all state and the log, because the server
handles each connection in its own thread.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

API_PREFIX = "/csp/gateway/am/api"
API_TOKEN_AUTHORIZE_PATH = API_PREFIX + "/auth/api-tokens/authorize"
CLIENT_CREDENTIALS_PATHS = (API_PREFIX + "/auth/authorize", API_PREFIX + "/auth/token")
ORG_TOKENS_PATH = re.compile(
    re.escape(API_PREFIX) + r"/orgs/(?P<org_id>[^/]+)/api-tokens/(?P<action>deactivate|activate)"
)

MAX_IDS_PER_REQUEST = 15
ACCESS_TOKEN_EXPIRES_IN = 1799  # seconds, sent as expires_in and enforced as the token lifetime
ACCESS_TOKEN_SCOPE = "openid ALL_PERMISSIONS"
ORG_OWNER_ROLE = "org_owner"
MODULE_CODE = "340"

REQUEST_KINDS = ("authorize", "deactivate", "activate", "api", "other")
FAULT_MATCHES = ("deactivate", "activate", "authorize", "api", "any")
FAULT_ACTIONS = ("respond", "delay", "reset", "apply_then_reset", "hang")
ALREADY_CHANGED_CHOICES = ("failure", "success")


def request_kind(path: str) -> str:
    """Classify a request path (without query) as one of REQUEST_KINDS.

    The kind depends on the path only, so a GET to the deactivate path is still a "deactivate" request.
    """
    if path == API_TOKEN_AUTHORIZE_PATH or path in CLIENT_CREDENTIALS_PATHS:
        return "authorize"
    match = ORG_TOKENS_PATH.fullmatch(path)
    if match:
        return match["action"]
    if path == API_PREFIX or path.startswith(API_PREFIX + "/"):
        return "api"
    return "other"


class CspError(Exception):
    """An error that the server sends as a CspErrorResponse body with the given HTTP status."""

    def __init__(self, status: int, message: str, error_code: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_code = error_code


@dataclass(frozen=True)
class Principal:
    """A user (API token or pre-issued access token) or an OAuth client, with its roles per organization id."""

    name: str
    kind: str  # "user" or "client"
    roles: Mapping[str, frozenset[str]]

    def has_role(self, org_id: str, role: str) -> bool:
        return role in self.roles.get(org_id, frozenset())


@dataclass
class AccessToken:
    """An access token that the emulator accepts on the organization endpoints."""

    principal: Principal
    remaining_uses: int | None  # None means unlimited
    expires_at: float | None  # time.monotonic() deadline, None means never


@dataclass(frozen=True)
class ApiToken:
    principal: Principal
    passcode: str | None


@dataclass(frozen=True)
class Client:
    secret: str
    principal: Principal


@dataclass
class Fault:
    """A failure injected into requests of one kind.

    `match` selects requests by kind: "authorize", "deactivate" and "activate" match those endpoints, "api" matches
    every path under API_PREFIX, and "any" matches every request except the control endpoints. The fault lets the
    first `skip` matching requests through and then hits the next `count` of them (all of them if `count` is None).

    Actions:
    - "respond": send `status`, `headers` and `body` without applying the request. A dict or list body is sent as
      JSON, a str or bytes body is sent as is with `content_type`, and None sends a CspErrorResponse for `status`.
    - "delay": sleep `delay` seconds, then handle the request normally.
    - "reset": close the connection with a TCP RST, without a response and without applying the request.
    - "apply_then_reset": apply the request, log it with its real status, then reset the connection.
    - "hang": never respond, and close the connection after `delay` seconds (or at stop() when `delay` is 0).
    """

    match: str
    skip: int = 0
    count: int | None = 1
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | list[Any] | str | bytes | None = None
    content_type: str = "application/json"
    delay: float = 0.0
    action: str = "respond"

    def __post_init__(self) -> None:
        if self.match not in FAULT_MATCHES:
            raise ValueError(f"Invalid fault match {self.match!r}: expected one of {', '.join(FAULT_MATCHES)}.")
        if self.action not in FAULT_ACTIONS:
            raise ValueError(f"Invalid fault action {self.action!r}: expected one of {', '.join(FAULT_ACTIONS)}.")
        if not isinstance(self.skip, int) or self.skip < 0:
            raise ValueError(f"Invalid fault skip {self.skip!r}: expected an integer >= 0.")
        if self.count is not None and (not isinstance(self.count, int) or self.count < 1):
            raise ValueError(f"Invalid fault count {self.count!r}: expected an integer >= 1 or None.")
        if self.action == "respond" and not (isinstance(self.status, int) and 100 <= self.status <= 599):
            raise ValueError(f"Invalid fault status {self.status!r}: action 'respond' needs an HTTP status code.")
        if not isinstance(self.delay, (int, float)) or self.delay < 0:
            raise ValueError(f"Invalid fault delay {self.delay!r}: expected seconds >= 0.")
        headers_ok = isinstance(self.headers, dict) and all(
            isinstance(key, str) and isinstance(value, str) for key, value in self.headers.items()
        )
        if not headers_ok:
            raise ValueError("Invalid fault headers: expected a dict of str to str.")
        if not isinstance(self.body, (dict, list, str, bytes, type(None))):
            raise ValueError(f"Invalid fault body type {type(self.body).__name__}: expected dict, list, str or bytes.")

    def matches(self, kind: str) -> bool:
        if self.match == "any":
            return True
        if self.match == "api":
            return kind != "other"
        return self.match == kind


@dataclass
class _ArmedFault:
    fault: Fault
    skipped: int = 0
    hits: int = 0

    def is_exhausted(self) -> bool:
        return self.fault.count is not None and self.hits >= self.fault.count


@dataclass
class RequestRecord:
    """One logged request to a non-control path.

    `query` and `form` keep the first value of each field. Header names are lowercase, and repeated headers are
    joined with ", ". `json` is the parsed body when the Content-Type is JSON and the body parses, else None. `ids`
    is the "ids" list of a deactivate or activate request body, else None. `status` is 0 when a fault reset or held
    the connection without a response. `time` is time.monotonic() when the request was read.
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    form: dict[str, str] | None
    json: Any
    status: int
    ids: list[Any] | None
    time: float
    kind: str


def _normalize_roles(roles: Mapping[str, str | Iterable[str]] | None) -> dict[str, frozenset[str]]:
    """Convert {org_id: role or roles} into {org_id: frozenset of roles}."""
    if roles is None:
        return {}
    if not isinstance(roles, Mapping):
        raise ValueError(f"Invalid roles {roles!r}: expected a mapping of organization id to role names.")
    normalized = {}
    for org_id, org_roles in roles.items():
        names = [org_roles] if isinstance(org_roles, str) else org_roles
        if not isinstance(names, (list, tuple, set, frozenset)):
            raise ValueError(f"Invalid roles {roles!r}: expected a role name or a list of role names per org.")
        if not isinstance(org_id, str) or not all(isinstance(name, str) for name in names):
            raise ValueError(f"Invalid roles {roles!r}: organization ids and role names must be strings.")
        normalized[org_id] = frozenset(names)
    return normalized


def _same_secret(presented: str, expected: str) -> bool:
    # compare_digest raises TypeError on str with non-ASCII characters, so compare the UTF-8 bytes.
    return secrets.compare_digest(presented.encode("utf-8"), expected.encode("utf-8"))


def validate_ids(body: Any) -> list[str]:
    """Return the "ids" list of a deactivate or activate request body, or raise CspError 400."""
    if not isinstance(body, dict):
        raise CspError(400, "Request body must be a JSON object with an 'ids' list.", "invalid_request")
    ids = body.get("ids")
    if not isinstance(ids, list) or not all(isinstance(token_id, str) for token_id in ids):
        raise CspError(400, "Field 'ids' must be a list of API token id strings.", "invalid_request")
    if len(ids) > MAX_IDS_PER_REQUEST:
        message = f"At most {MAX_IDS_PER_REQUEST} API token ids are allowed in one request, got {len(ids)}."
        raise CspError(400, message, "invalid_request")
    return ids


def _check_fields(kind: str, item: Any, required: dict[str, type], optional: dict[str, Any]) -> None:
    """Raise ValueError unless item is a dict with the required fields, no others, and values of the given types."""
    if not isinstance(item, dict):
        raise ValueError(f"Invalid seed {kind} {item!r}: expected an object.")
    missing = required.keys() - item.keys()
    unknown = item.keys() - required.keys() - optional.keys()
    if missing:
        raise ValueError(f"Invalid seed {kind} {item!r}: missing {', '.join(sorted(missing))}.")
    if unknown:
        raise ValueError(f"Invalid seed {kind} {item!r}: unknown field {', '.join(sorted(unknown))}.")
    for name, expected in {**required, **optional}.items():
        if name in item and not isinstance(item[name], expected):
            raise ValueError(f"Invalid seed {kind} {item!r}: field {name} has the wrong type.")


class State:
    """All mutable emulator data behind one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Remove all orgs, credentials, access tokens, faults and log records, and restore default settings."""
        with self._lock:
            self._orgs: dict[str, dict[str, bool]] = {}
            self._api_tokens: dict[str, ApiToken] = {}
            self._clients: dict[str, Client] = {}
            self._access_tokens: dict[str, AccessToken] = {}
            self._faults: list[_ArmedFault] = []
            self._log: list[RequestRecord] = []
            self._connection_count = 0
            self._access_token_lifetime: int | None = None
            self._already_changed_as = "failure"

    # Settings

    @property
    def access_token_lifetime(self) -> int | None:
        return self._access_token_lifetime

    @access_token_lifetime.setter
    def access_token_lifetime(self, uses: int | None) -> None:
        if uses is not None and (not isinstance(uses, int) or uses < 0):
            raise ValueError(f"Invalid access_token_lifetime {uses!r}: expected a number of requests >= 0 or None.")
        with self._lock:
            self._access_token_lifetime = uses

    @property
    def already_changed_as(self) -> str:
        return self._already_changed_as

    @already_changed_as.setter
    def already_changed_as(self, outcome: str) -> None:
        if outcome not in ALREADY_CHANGED_CHOICES:
            raise ValueError(f"Invalid already_changed_as {outcome!r}: expected 'failure' or 'success'.")
        with self._lock:
            self._already_changed_as = outcome

    # Seeding

    def add_org(self, org_id: str) -> None:
        with self._lock:
            self._orgs.setdefault(org_id, {})

    def add_tokens(self, org_id: str, ids: Iterable[str], active: bool = True) -> None:
        """Add API tokens to an existing org, or set the state of tokens that it already has."""
        with self._lock:
            if org_id not in self._orgs:
                raise ValueError(f"Unknown org {org_id!r}: call add_org first.")
            for token_id in ids:
                self._orgs[org_id][token_id] = bool(active)

    def add_api_token(
        self,
        api_token: str,
        user: str = "alice",
        roles: Mapping[str, str | Iterable[str]] | None = None,
        passcode: str | None = None,
    ) -> None:
        principal = Principal(user, "user", _normalize_roles(roles))
        with self._lock:
            self._api_tokens[api_token] = ApiToken(principal, passcode)

    def add_client(
        self, client_id: str, client_secret: str, roles: Mapping[str, str | Iterable[str]] | None = None
    ) -> None:
        principal = Principal(client_id, "client", _normalize_roles(roles))
        with self._lock:
            self._clients[client_id] = Client(client_secret, principal)

    def add_access_token(
        self, access_token: str, user: str = "alice", roles: Mapping[str, str | Iterable[str]] | None = None
    ) -> None:
        """Add a pre-issued access token. It never expires by time, but access_token_lifetime applies to it."""
        principal = Principal(user, "user", _normalize_roles(roles))
        with self._lock:
            self._access_tokens[access_token] = AccessToken(principal, self._access_token_lifetime, None)

    def seed(self, data: Mapping[str, Any]) -> None:
        """Add the orgs, credentials and settings of a seed document to the current state.

        Raises ValueError on an unknown or missing field or a wrong type, so that a typo in a seed file fails
        loudly. The document is first applied to an empty State, so an invalid one changes nothing here.
        """
        State()._apply_seed(data)
        self._apply_seed(data)

    def _apply_seed(self, data: Mapping[str, Any]) -> None:
        lists = {"orgs": list, "api_tokens": list, "clients": list, "access_tokens": list, "settings": dict}
        _check_fields("document", data, {}, lists)
        roles = (dict, type(None))
        optional_str = (str, type(None))
        # Settings come first, so that access_token_lifetime also applies to the access tokens of this document.
        settings = data.get("settings", {})
        _check_fields("settings", settings, {}, {"already_changed_as": str, "access_token_lifetime": (int, type(None))})
        if "already_changed_as" in settings:
            self.already_changed_as = settings["already_changed_as"]
        if "access_token_lifetime" in settings:
            self.access_token_lifetime = settings["access_token_lifetime"]
        for org in data.get("orgs", []):
            _check_fields("org", org, {"id": str}, {"tokens": list})
            self.add_org(org["id"])
            for token in org.get("tokens", []):
                _check_fields("token", token, {"id": str}, {"active": bool})
                self.add_tokens(org["id"], [token["id"]], active=token.get("active", True))
        for item in data.get("api_tokens", []):
            _check_fields("api token", item, {"token": str}, {"user": str, "roles": roles, "passcode": optional_str})
            self.add_api_token(item["token"], item.get("user", "alice"), item.get("roles"), item.get("passcode"))
        for item in data.get("clients", []):
            _check_fields("client", item, {"client_id": str, "client_secret": str}, {"roles": roles})
            self.add_client(item["client_id"], item["client_secret"], item.get("roles"))
        for item in data.get("access_tokens", []):
            _check_fields("access token", item, {"token": str}, {"user": str, "roles": roles})
            self.add_access_token(item["token"], item.get("user", "alice"), item.get("roles"))

    # Queries

    def token_active(self, org_id: str, token_id: str) -> bool:
        with self._lock:
            tokens = self._orgs.get(org_id)
            if tokens is None or token_id not in tokens:
                raise KeyError(f"API token {token_id!r} not found in org {org_id!r}.")
            return tokens[token_id]

    def snapshot(self) -> dict[str, Any]:
        """Return the orgs with their token states, the settings and the counters, as JSON-ready data."""
        with self._lock:
            orgs = [
                {"id": org_id, "tokens": [{"id": token_id, "active": active} for token_id, active in tokens.items()]}
                for org_id, tokens in self._orgs.items()
            ]
            return {
                "orgs": orgs,
                "settings": {
                    "already_changed_as": self._already_changed_as,
                    "access_token_lifetime": self._access_token_lifetime,
                },
                "connection_count": self._connection_count,
                "request_count": len(self._log),
                "pending_faults": sum(not armed.is_exhausted() for armed in self._faults),
            }

    # Connections, faults and the request log

    def count_connection(self) -> None:
        with self._lock:
            self._connection_count += 1

    @property
    def connection_count(self) -> int:
        with self._lock:
            return self._connection_count

    def add_fault(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(_ArmedFault(fault))

    def take_fault(self, kind: str) -> Fault | None:
        """Return the first fault that hits a request of this kind, and count the request against the faults.

        Faults are checked in the order added. A matching fault that still has requests to skip counts this request
        as skipped and the check moves on, so a request can pass several faults but is hit by at most one.
        """
        with self._lock:
            for armed in self._faults:
                if armed.is_exhausted() or not armed.fault.matches(kind):
                    continue
                if armed.skipped < armed.fault.skip:
                    armed.skipped += 1
                    continue
                armed.hits += 1
                return armed.fault
            return None

    def log_request(self, record: RequestRecord) -> None:
        with self._lock:
            self._log.append(record)

    def records(self, kind: str | None = None) -> list[RequestRecord]:
        """Return a copy of the request log, optionally only the records of one kind from REQUEST_KINDS."""
        if kind is not None and kind not in REQUEST_KINDS:
            raise ValueError(f"Invalid request kind {kind!r}: expected one of {', '.join(REQUEST_KINDS)}.")
        with self._lock:
            return [record for record in self._log if kind is None or record.kind == kind]

    # Endpoint logic

    def exchange_api_token(self, form: Mapping[str, str], query: Mapping[str, str]) -> dict[str, Any]:
        """Exchange an API token (form field api_token, or the deprecated refresh_token) for an access token."""
        secret_fields = sorted({"api_token", "refresh_token", "passcode"} & query.keys())
        if secret_fields:
            message = f"{', '.join(secret_fields)} must be sent in the form body, not in the URL query string."
            raise CspError(400, message, "invalid_request")
        api_token = form.get("api_token") or form.get("refresh_token")
        if not api_token:
            raise CspError(400, "invalid_request: Missing form field api_token.", "invalid_request")
        with self._lock:
            entry = self._api_tokens.get(api_token)
            if entry is None:
                raise CspError(400, "invalid_grant: Invalid refresh token", "invalid_grant")
            if entry.passcode is not None:
                passcode = form.get("passcode")
                if not passcode:
                    raise CspError(400, "invalid_grant: An MFA passcode is required for this API token.", "mfa")
                if not _same_secret(passcode, entry.passcode):
                    raise CspError(400, "invalid_grant: Invalid MFA passcode.", "mfa")
            response = self._issue_access_token(entry.principal)
        response["refresh_token"] = api_token
        return response

    def exchange_client_credentials(
        self, credentials: tuple[str, str] | None, form: Mapping[str, str]
    ) -> dict[str, Any]:
        """Issue an access token for OAuth client credentials taken from the HTTP Basic Authorization header.

        An optional form field orgId limits the token to that org, and the client must have a role there.
        """
        if credentials is None:
            raise CspError(401, "invalid_client: Missing HTTP Basic client credentials.", "invalid_client")
        client_id, client_secret = credentials
        with self._lock:
            client = self._clients.get(client_id)
            if client is None or not _same_secret(client_secret, client.secret):
                raise CspError(401, f"invalid_client: Invalid credentials for client {client_id}.", "invalid_client")
            grant_type = form.get("grant_type")
            if grant_type != "client_credentials":
                message = f"unsupported_grant_type: Expected grant_type client_credentials, got {grant_type!r}."
                raise CspError(400, message, "unsupported_grant_type")
            principal = client.principal
            org_id = form.get("orgId")
            if org_id:
                if org_id not in principal.roles:
                    message = f"invalid_request: Client {client_id} is not a member of org {org_id}."
                    raise CspError(400, message, "invalid_request")
                principal = Principal(principal.name, principal.kind, {org_id: principal.roles[org_id]})
            return self._issue_access_token(principal)

    def _issue_access_token(self, principal: Principal) -> dict[str, Any]:
        access_token = secrets.token_urlsafe(32)
        expires_at = time.monotonic() + ACCESS_TOKEN_EXPIRES_IN
        self._access_tokens[access_token] = AccessToken(principal, self._access_token_lifetime, expires_at)
        return {
            "access_token": access_token,
            "expires_in": ACCESS_TOKEN_EXPIRES_IN,
            "token_type": "bearer",
            "id_token": secrets.token_urlsafe(32),
            "scope": ACCESS_TOKEN_SCOPE,
        }

    def authorize_org_owner(self, access_token: str | None, org_id: str) -> None:
        """Raise CspError unless the access token is valid and belongs to a user who owns the org.

        Every call with a known access token uses up one request of its lifetime, whatever the outcome.
        """
        with self._lock:
            if not access_token:
                message = "Missing access token: send it as Authorization: Bearer or in the csp-auth-token header."
                raise CspError(401, message, "unauthorized")
            entry = self._access_tokens.get(access_token)
            if entry is None:
                raise CspError(401, "Invalid or expired access token: request a new one.", "unauthorized")
            expired_by_time = entry.expires_at is not None and time.monotonic() >= entry.expires_at
            if expired_by_time or entry.remaining_uses == 0:
                raise CspError(401, "Invalid or expired access token: request a new one.", "unauthorized")
            if entry.remaining_uses is not None:
                entry.remaining_uses -= 1
            if org_id not in self._orgs:
                raise CspError(404, f"Organization {org_id} was not found.", "not_found")
            principal = entry.principal
            if principal.kind == "client":
                message = "Service accounts (client credentials) are not allowed to change API tokens."
                raise CspError(403, message, "forbidden")
            if not principal.has_role(org_id, ORG_OWNER_ROLE):
                message = f"User {principal.name} does not have the {ORG_OWNER_ROLE} role in organization {org_id}."
                raise CspError(403, message, "forbidden")

    def change_tokens(self, org_id: str, ids: list[str], activate: bool) -> dict[str, Any]:
        """Activate or deactivate API tokens of one org, and return the successes and failures per id."""
        target_state = "active" if activate else "deactivated"
        successes: list[str] = []
        failures: list[dict[str, str]] = []
        with self._lock:
            tokens = self._orgs.get(org_id)
            if tokens is None:
                raise CspError(404, f"Organization {org_id} was not found.", "not_found")
            for token_id in ids:
                if token_id not in tokens:
                    failures.append({"id": token_id, "message": f"API token {token_id} was not found."})
                elif tokens[token_id] != activate:
                    tokens[token_id] = activate
                    successes.append(token_id)
                elif self._already_changed_as == "success":
                    successes.append(token_id)
                else:
                    failures.append({"id": token_id, "message": f"API token {token_id} is already {target_state}."})
        return {"successes": successes, "failures": failures}
