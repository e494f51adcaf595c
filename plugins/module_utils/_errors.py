# -*- coding: utf-8 -*-
# Copyright: csp.iam contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Exceptions of the CSP HTTP client. Private to this collection: not a public API."""

from __future__ import annotations


class CspError(Exception):
    """Base class of every error the client raises."""


class CspConfigError(CspError):
    """An invalid option value, found before any request is sent."""


class CspRequestError(CspError):
    """A request that could not be completed.

    ``may_have_applied`` is true when an attempt may have reached the service before
    it failed (a dropped connection after the request was sent, a read timeout, a 5xx),
    so the caller cannot tell whether the change took effect. ``api_request_sent`` is false
    when the error came from the token exchange before the API request itself was sent.
    """

    api_request_sent = True

    def __init__(self, message: str, *, attempts: int = 1, may_have_applied: bool = False):
        super().__init__(message)
        self.message = message
        self.attempts = attempts
        self.may_have_applied = may_have_applied


class CspConnectionError(CspRequestError):
    """No usable HTTP response: refused, reset, timed out, or a TLS failure."""


class CspApiError(CspRequestError):
    """An HTTP error response, with the fields of its CspErrorResponse body when it has one."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        service_message: str | None = None,
        request_id: str | None = None,
        trace_id: str | None = None,
        error_code: str | None = None,
        attempts: int = 1,
        may_have_applied: bool = False,
    ):
        super().__init__(message, attempts=attempts, may_have_applied=may_have_applied)
        self.status = status
        self.service_message = service_message
        self.request_id = request_id
        self.trace_id = trace_id
        self.error_code = error_code


class CspAuthError(CspApiError):
    """The credentials were rejected, at the token exchange or on an API call."""
