# -*- coding: utf-8 -*-
# Copyright: csp.iam contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""HTTP client for the CSP identity API, independent of Ansible. Private to this collection: not a public API.

The client authenticates, retries what is safe to retry and raises the exceptions of ``_errors``.
It keeps one ``requests.Session``, so every request of a run reuses one TLS connection.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
import traceback
from dataclasses import dataclass

try:
    import requests
    import requests.certs
    from urllib3.exceptions import HTTPError as Urllib3Error
    from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError
    from urllib3.exceptions import ProxyError as Urllib3ProxyError
except ImportError:
    requests = None
    REQUESTS_IMPORT_ERROR = traceback.format_exc()
else:
    REQUESTS_IMPORT_ERROR = None

from ._errors import CspApiError, CspAuthError, CspConnectionError, CspError
from ._redact import Redactor
from ._retry import MAY_HAVE_APPLIED_STATUSES, RETRYABLE_STATUSES, RetryPolicy, parse_retry_after

_SNIPPET_LENGTH = 200
_READ_SIZE = 65536
_OBJECT_REPR = re.compile(r"<[^<>]*object at 0x[0-9a-fA-F]+>:?\s*")
_SSL_REASON = re.compile(r"\[SSL[^\]]*\][^'\")]*")
_SSL_SOURCE_LINE = re.compile(r"\s*\(_ssl\.c:\d+\)?$")
_HTML_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_HTML_TAG = re.compile(r"<[^>]+>")


@dataclass
class ApiResponse:
    """A 2xx response to an API call.

    ``data`` is the parsed JSON body, or None when the body is not JSON, and then ``snippet`` shows
    its start. ``may_have_applied_earlier`` is true when an earlier attempt of the same request may
    have been applied before it failed.
    """

    status: int
    data: object
    snippet: str
    request_id: str | None
    attempts: int
    may_have_applied_earlier: bool


@dataclass
class HttpResponse:
    """A response whose body was read completely within the timeout."""

    status_code: int
    reason: str
    headers: object
    body: bytes


@dataclass
class _Attempts:
    response: object
    count: int
    may_have_applied: bool
    gave_up_because: str | None = None
    access_token: str | None = None
    retry_after_too_long: bool = False


class CspClient:
    """Sends authenticated JSON requests to one CSP host. Safe to share between threads."""

    def __init__(
        self,
        base_url: str,
        authenticator,
        *,
        verify: bool | str = True,
        timeout: float = 30.0,
        retry_policy: RetryPolicy | None = None,
        user_agent: str = "csp.iam",
        session=None,
        sleep=time.sleep,
        clock=time.monotonic,
        wall_clock=time.time,
        rng=random.random,
    ):
        if requests is None:
            raise ImportError("The CSP client needs the Python library 'requests'.")
        self.base_url = base_url.rstrip("/")
        self.retry_count = 0
        self.reauthentication_count = 0
        self.redactor = Redactor(authenticator.secrets)
        self._authenticator = authenticator
        self._access_token: str | None = None
        # A CA bundle given as a path wins over REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE, which requests
        # would otherwise read from the environment whenever verify is True.
        self._verify = requests.certs.where() if verify is True else verify
        self._ca_path_given = isinstance(verify, str)
        self._timeout = timeout
        self._policy = retry_policy or RetryPolicy()
        self._headers = {"Accept": "application/json", "User-Agent": user_agent}
        self._session = session or requests.Session()
        self._sleep = sleep
        self._clock = clock
        self._wall_clock = wall_clock
        self._rng = rng
        self._lock = threading.Lock()
        self._auth_lock = threading.Lock()
        # No request of any thread starts before this clock time, so a 429 seen by one thread slows them all.
        self._not_before = 0.0
        # A rejected exchange is not repeated by the other threads, because some identity providers lock an
        # account after repeated failed logins.
        self._authentication_error: CspError | None = None
        self._renewal_error: CspError | None = None

    @property
    def credential_kind(self) -> str:
        """The kind of credentials: "api_token", "client_credentials" or "access_token"."""
        return self._authenticator.kind

    def close(self) -> None:
        self._session.close()

    def authenticate(self) -> None:
        """Obtain an access token with the configured credentials, or raise CspAuthError."""
        token_request = self._authenticator.token_request()
        if token_request is None:
            self._access_token = self._authenticator.access_token
            return

        attempts = self._send("POST", token_request.path, data=token_request.form, auth=token_request.basic_auth)
        response = attempts.response
        if response.status_code != 200:
            hint = self._auth_hint(response.status_code, renewing=self._access_token is not None)
            raise self._error_from_response("Authentication", token_request.path, attempts, CspAuthError, hint)

        data, snippet = self._parse_body(response)
        access_token = data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(access_token, str) or not access_token:
            detail = f": {snippet}" if snippet else ""
            raise CspAuthError(
                f"Authentication at {token_request.path} returned HTTP 200 without an access_token{detail}.",
                status=200,
            )
        self.redactor.add(access_token)
        self.redactor.add(data.get("id_token") if isinstance(data.get("id_token"), str) else None)
        self._access_token = access_token

    def verify_credentials(self) -> bool:
        """Authenticate now unless that would spend a single-use credential. Returns whether it did."""
        if self._authenticator.token_request() is None or self._authenticator.single_use:
            return False
        self.authenticate()
        return True

    def post_json(self, path: str, payload: dict) -> ApiResponse:
        """POST a JSON body with the access token, authenticating first when needed.

        Raises CspAuthError when the access token is rejected twice, CspApiError for any other
        non-2xx status and CspConnectionError when no response arrives within the retry limits.
        """
        self._authenticate_once()

        attempts = self._send("POST", path, json=payload, authorized=True)
        count, may_have_applied = attempts.count, attempts.may_have_applied
        if attempts.response.status_code == 401 and self._authenticator.can_refresh:
            # Access tokens expire after about 30 minutes, so a long run renews its token once and repeats
            # the request. A second 401 right after that is a real refusal, not an expiry.
            try:
                self._renew_access_token(attempts.access_token)
            except CspError as error:
                # The service rejected this request with 401, so only an earlier attempt may have applied it.
                raise _for_this_request(error, may_have_applied, api_request_sent=True) from None
            attempts = self._send("POST", path, json=payload, authorized=True)
            attempts.count += count
            attempts.may_have_applied |= may_have_applied

        status = attempts.response.status_code
        if status == 401:
            raise self._error_from_response("Request", path, attempts, CspAuthError, self._expired_token_hint())
        if not 200 <= status < 300:
            attempts.may_have_applied |= status in MAY_HAVE_APPLIED_STATUSES
            hint = self._retry_after_hint() if attempts.retry_after_too_long else self._status_hint(status)
            raise self._error_from_response("Request", path, attempts, CspApiError, hint)

        data, snippet = self._parse_body(attempts.response)
        return ApiResponse(
            status=status,
            data=data,
            snippet=snippet,
            request_id=attempts.response.headers.get("X-Request-Id"),
            attempts=attempts.count,
            may_have_applied_earlier=attempts.may_have_applied,
        )

    def _authenticate_once(self) -> None:
        """Obtain the first access token of the run, or raise the error that the first try raised."""
        with self._auth_lock:
            if self._authentication_error is None and self._access_token is None:
                try:
                    self.authenticate()
                except CspError as error:
                    self._authentication_error = error
            if self._authentication_error is not None:
                # The API request was never sent, whatever happened to the token exchange.
                raise _for_this_request(self._authentication_error, False, api_request_sent=False)

    def _renew_access_token(self, rejected_token: str | None) -> None:
        with self._auth_lock:
            if self._renewal_error is not None:
                raise self._renewal_error
            # Threads that were rejected with the same token renew it once between them.
            if self._access_token != rejected_token:
                return
            try:
                self.authenticate()
            except CspError as error:
                self._renewal_error = error
                raise
            self.reauthentication_count += 1

    def _send(self, method: str, path: str, *, authorized: bool = False, **kwargs) -> _Attempts:
        """Send one request, retrying connection failures and retryable statuses within the policy.

        Returns the last response, which may still have a retryable status when the retries ran out.
        Raises CspConnectionError when the last attempt got no response at all.
        """
        url = self.base_url + path
        may_have_applied = False
        waited = 0.0
        attempt = 0
        while True:
            attempt += 1
            self._wait_for_turn()
            access_token = self._access_token if authorized else None
            response, failure, sent = self._attempt(method, url, access_token, attempt, may_have_applied, **kwargs)
            may_have_applied |= sent
            if response is not None:
                if response.status_code not in RETRYABLE_STATUSES:
                    return _Attempts(response, attempt, may_have_applied, access_token=access_token)
                may_have_applied |= response.status_code in MAY_HAVE_APPLIED_STATUSES

            wait, requested_by_service = self._wait_before_retry(attempt, response)
            gave_up_because = None
            attempts_text = f"{attempt} attempt{'s' if attempt > 1 else ''}"
            too_long = waited + wait > self._policy.max_total_wait
            if attempt > self._policy.retries:
                gave_up_because = f"after {attempts_text}"
            elif too_long:
                source = "the service's Retry-After" if requested_by_service else "backoff"
                gave_up_because = (
                    f"after {attempts_text}, because {source} requested a {wait:.0f} s wait and retries "
                    f"of one request wait at most {self._policy.max_total_wait:.0f} s in all"
                )
            if gave_up_because:
                if response is not None:
                    return _Attempts(
                        response, attempt, may_have_applied, gave_up_because, access_token,
                        retry_after_too_long=too_long and requested_by_service and attempt <= self._policy.retries,
                    )
                raise CspConnectionError(
                    f"{method} {url} failed {gave_up_because}: {failure}.", attempts=attempt, may_have_applied=may_have_applied
                )

            with self._lock:
                self.retry_count += 1
                self._not_before = max(self._not_before, self._clock() + wait)
            waited += wait

    def _wait_for_turn(self) -> None:
        """Sleep until the wait that the latest retry of any thread requested is over."""
        with self._lock:
            delay = self._not_before - self._clock()
        if delay > 0:
            self._sleep(delay)

    def _attempt(self, method, url, access_token, attempt, may_have_applied, **kwargs):
        """Send one HTTP request. Returns (response, failure text, whether a failed request was sent)."""
        headers = dict(self._headers)
        if access_token is not None:
            headers["Authorization"] = f"Bearer {access_token}"
        deadline = self._clock() + self._timeout
        try:
            streamed = self._session.request(
                method,
                url,
                headers=headers,
                timeout=self._timeout,
                verify=self._verify,
                allow_redirects=False,
                stream=True,
                **kwargs,
            )
        except requests.exceptions.SSLError as error:
            if not _is_certificate_error(error):
                # A TLS connection that broke after the handshake is a connection failure like any other.
                return None, f"the TLS connection broke: {self._ssl_reason(error)}", _request_was_sent(error)
            raise CspConnectionError(
                f"TLS certificate verification for {self.base_url} failed: {self._ssl_reason(error)}. "
                + self._certificate_hint(),
                attempts=attempt,
                may_have_applied=may_have_applied,
            ) from None
        except requests.exceptions.ConnectTimeout:
            return None, f"connecting timed out after {self._timeout:g} s", False
        except requests.exceptions.ReadTimeout:
            return None, f"no response within the {self._timeout:g} s timeout", True
        except requests.exceptions.ConnectionError as error:
            return None, self._connection_reason(error), _request_was_sent(error)
        except requests.exceptions.ChunkedEncodingError as error:
            # The connection broke while the body was read, so the service got the request and may have applied it.
            return None, f"the connection broke in the middle of the response ({self._connection_reason(error)})", True
        except requests.exceptions.RequestException as error:
            # Such as a body that fails to decode: a response arrived, so the service may have applied the request.
            return None, f"the response could not be read ({type(error).__name__}: {self._connection_reason(error)})", True

        try:
            body = self._read_body(streamed, deadline)
        except TimeoutError:
            streamed.close()
            return None, f"the response did not arrive completely within the {self._timeout:g} s timeout", True
        except (ProtocolError, OSError) as error:
            streamed.close()
            return None, f"the connection broke in the middle of the response ({self._connection_reason(error)})", True
        except Urllib3Error as error:
            # Such as a body that fails to decode. The service responded, so it may have applied the request.
            streamed.close()
            return None, f"the response could not be read ({type(error).__name__}: {self._connection_reason(error)})", True
        return HttpResponse(streamed.status_code, streamed.reason or "", streamed.headers, body), None, False

    def _read_body(self, streamed, deadline: float) -> bytes:
        """Read the whole body before the deadline, or raise TimeoutError.

        The timeout of requests applies to each socket read, so a server that sends one byte at a time would
        otherwise hold the run without limit. NOTE: the status line and headers are read by requests before
        this runs, so for them the limit is still per socket read.
        """
        raw = streamed.raw
        # NOTE: urllib3 1.x has no read1, and its read(amount) waits for the whole amount, so the deadline is
        # checked only between chunks there.
        read = getattr(raw, "read1", None) or raw.read
        chunks = []
        while True:
            chunk = read(_READ_SIZE, decode_content=True)
            if not chunk:
                break
            chunks.append(chunk)
            if self._clock() > deadline:
                raise TimeoutError
        # The body was read to its end, so the connection can serve the next request.
        raw.release_conn()
        return b"".join(chunks)

    def _wait_before_retry(self, attempt: int, response) -> tuple[float, bool]:
        if response is not None:
            retry_after = parse_retry_after(response.headers.get("Retry-After"), self._wall_clock())
            if retry_after is not None:
                return retry_after, True
        return self._policy.backoff(attempt, self._rng), False

    def _parse_body(self, response: HttpResponse) -> tuple[object, str]:
        """Return the parsed JSON body, or None and a short, redacted snippet of a body that is not JSON."""
        text = response.body.decode("utf-8", errors="replace")
        try:
            return json.loads(text), ""
        except (ValueError, RecursionError):
            # RecursionError: JSON nested deeper than the parser's recursion limit.
            pass
        title = _HTML_TITLE.search(text)
        if title:
            text = title.group(1)
        text = " ".join(_HTML_TAG.sub(" ", text).split())
        return None, self.redactor.redact(text[:_SNIPPET_LENGTH])

    def _error_from_response(self, action: str, path: str, attempts: _Attempts, error_class, hint: str):
        """Build the exception for an error response: what failed, the status, the service's message and ids."""
        response = attempts.response
        data, snippet = self._parse_body(response)
        fields = data if isinstance(data, dict) else {}
        service_message = _text_field(fields, "message", "error_description", "error") or snippet or "no message"
        request_id = _text_field(fields, "requestId") or response.headers.get("X-Request-Id")
        trace_id = _text_field(fields, "traceId")
        error_code = _text_field(fields, "cspErrorCode", "errorCode")

        status_text = f"HTTP {response.status_code}"
        if response.reason:
            status_text += f" {response.reason}"
        ids = ", ".join(f"{name} {value}" for name, value in (("requestId", request_id), ("traceId", trace_id)) if value)
        message = f"{action} POST {path} failed with {status_text}: {self.redactor.redact(service_message).rstrip('.')}"
        if ids:
            message += f" ({ids})"
        if attempts.gave_up_because:
            message += f", {attempts.gave_up_because}"
        message += "."
        if hint:
            message += " " + hint
        return error_class(
            message,
            status=response.status_code,
            service_message=self.redactor.redact(service_message),
            request_id=request_id,
            trace_id=trace_id,
            error_code=error_code,
            attempts=attempts.count,
            may_have_applied=attempts.may_have_applied,
        )

    def _auth_hint(self, status: int, renewing: bool) -> str:
        if status in (400, 401, 403) and renewing and self._authenticator.single_use:
            return (
                "The access token expired during the run, and the one-time passcode was already spent on the first "
                "token exchange. Run again with a new passcode and fewer token ids, so that the run ends before "
                "the access token expires."
            )
        if status in (400, 401, 403):
            if self._authenticator.kind == "api_token":
                return (
                    "The API token was rejected: it is invalid, expired or revoked, or the organization requires an "
                    "MFA passcode. Generate a new API token in the console, or pass passcode."
                )
            return "The client_id or client_secret was rejected. Check the OAuth app's credentials."
        return self._status_hint(status)

    def _expired_token_hint(self) -> str:
        if self._authenticator.can_refresh:
            return "The service rejected a freshly issued access token. Check that the credentials may call this API."
        return (
            "The access token is invalid or expired. Pass a fresh access_token, or pass api_token instead so that "
            "the module can renew the access token."
        )

    def _certificate_hint(self) -> str:
        if self._ca_path_given:
            return (
                "Check that ca_path holds the CA that signed the host's certificate, as a PEM file or a folder "
                "prepared with openssl rehash."
            )
        return (
            "If the host uses a private CA, set ca_path to its PEM bundle. validate_certs: false turns "
            "verification off, which is unsafe."
        )

    @staticmethod
    def _retry_after_hint() -> str:
        return "The service requested a longer wait than the module waits. Run again after that time."

    @staticmethod
    def _status_hint(status: int) -> str:
        if status == 429:
            return "The service is rate-limiting requests. Wait a few minutes and run again, or raise retries."
        if status >= 500:
            return "The service or a gateway in front of it failed. Run again later."
        if 300 <= status < 400:
            return "The host answered with a redirect, so api_host may not point at the CSP API. Check api_host."
        return ""

    @staticmethod
    def _connection_reason(error) -> str:
        reason = error.args[0] if error.args else error
        if isinstance(reason, MaxRetryError) and reason.reason is not None:
            reason = reason.reason
        prefix = ""
        if isinstance(reason, Urllib3ProxyError):
            prefix = "the proxy from HTTPS_PROXY failed (check HTTPS_PROXY and NO_PROXY): "
        if isinstance(reason, (ProtocolError, Urllib3ProxyError)) and len(reason.args) > 1:
            reason = reason.args[1]
        return prefix + (_OBJECT_REPR.sub("", str(reason)) or type(reason).__name__)

    @staticmethod
    def _ssl_reason(error) -> str:
        match = _SSL_REASON.search(str(error))
        if not match:
            return "unknown TLS error"
        return _SSL_SOURCE_LINE.sub("", match.group(0).strip()).rstrip(" (")


def _is_certificate_error(error) -> bool:
    """Tell whether a TLS error comes from verifying the server's certificate, including its host name."""
    # requests wraps ssl.SSLCertVerificationError in urllib3 errors, which keep only its text.
    return "CERTIFICATE_VERIFY_FAILED" in str(error)


def _request_was_sent(error) -> bool:
    """Tell whether a connection error happened after the request may have reached the server."""
    reason = error.args[0] if error.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    if isinstance(reason, Urllib3ProxyError) and len(reason.args) > 1:
        reason = reason.args[1]
    # NewConnectionError covers refused connections and failed name lookups: nothing was sent.
    return not isinstance(reason, NewConnectionError)


def _for_this_request(error, may_have_applied: bool, api_request_sent: bool):
    """Return a copy of an authentication error that describes the API request it stopped.

    Threads share one stored error, so each gets a copy with its own request's facts.
    """
    # copy.copy would call __init__ again, which needs keyword arguments that exceptions do not keep.
    copied = type(error).__new__(type(error), *error.args)
    copied.__dict__.update(error.__dict__)
    copied.may_have_applied = may_have_applied
    copied.api_request_sent = api_request_sent
    return copied


def _text_field(fields: dict, *names: str) -> str | None:
    for name in names:
        value = fields.get(name)
        if value is not None and value != "":
            return str(value)
    return None
