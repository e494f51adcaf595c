# -*- coding: utf-8 -*-
# Copyright: csp.iam contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checks of option values, made before any request is sent. Private to this collection: not a public API."""

from __future__ import annotations

import math
import os
import re
import ssl
import unicodedata
from urllib.parse import urlsplit

from ._errors import CspConfigError

# fullmatch, because "$" would also accept a final line break.
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_HOST_NAME = re.compile(r"[A-Za-z0-9.-]+")
_IPV6_ADDRESS = re.compile(r"[0-9A-Fa-f:.]+")
# An hour. Far larger values overflow the platform's time functions.
MAX_TIMEOUT = 3600


def validate_org_id(org_id: object) -> str:
    """Return ``org_id`` unchanged if it is a GUID, else raise CspConfigError.

    The id becomes part of the request path, so anything but a GUID is rejected here rather than escaped.
    """
    if not isinstance(org_id, str) or not _GUID.fullmatch(org_id):
        raise CspConfigError(
            f"Invalid org_id {org_id!r}: expected the organization's GUID, such as "
            "'8a3c1f52-3c57-4a5e-9d4b-1f0e2d7c6b5a'. Set org_id or CSP_ORG_ID."
        )
    return org_id


def normalize_token_ids(token_ids: object) -> list[str]:
    """Return the token ids without duplicates, first occurrence first, or raise CspConfigError on a bad entry.

    A string is split at commas, as Ansible does for list options, so that ``token_ids=a,b`` works ad hoc.
    """
    if isinstance(token_ids, str):
        token_ids = token_ids.split(",")
    if not isinstance(token_ids, list):
        raise CspConfigError(
            f"Invalid token_ids {token_ids!r}: expected a list of API token ids, or a comma-separated string of "
            "them. Quote each id in YAML."
        )

    unique: dict[str, None] = {}
    for position, token_id in enumerate(token_ids, start=1):
        if not isinstance(token_id, str):
            raise CspConfigError(
                f"Invalid token_ids entry {position} ({token_id!r}): expected a string. Quote ids in YAML."
            )
        if not token_id.strip():
            raise CspConfigError(f"Invalid token_ids entry {position}: the id is blank. Remove the empty entry.")
        if token_id != token_id.strip():
            raise CspConfigError(
                f"Invalid token_ids entry {position} ({token_id!r}): the id has leading or trailing spaces. "
                "Remove them."
            )
        if any(unicodedata.category(character) in ("Cc", "Cf") for character in token_id):
            # Invisible and direction-changing characters could make an id look like another one in the output.
            raise CspConfigError(
                f"Invalid token_ids entry {position} ({token_id!r}): the id contains control or invisible "
                "characters. Copy the id again from the console."
            )
        unique.setdefault(token_id, None)
    return list(unique)


# Parallel requests beyond this mostly meet the service's rate limit, which is not documented.
MAX_CONCURRENCY = 8


def validate_max_concurrency(max_concurrency: object) -> int:
    """Return ``max_concurrency`` if it is a whole number from 1 to MAX_CONCURRENCY, else raise CspConfigError."""
    if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) or not 1 <= max_concurrency <= MAX_CONCURRENCY:
        raise CspConfigError(
            f"Invalid max_concurrency {max_concurrency!r}: give a whole number from 1 to {MAX_CONCURRENCY}. "
            "Use 1 to send one batch at a time."
        )
    return max_concurrency


def validate_timeout(timeout: object) -> float:
    """Return ``timeout`` if it is a finite number of seconds greater than 0, else raise CspConfigError."""
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float))
        or not math.isfinite(timeout)
        or not 0 < timeout <= MAX_TIMEOUT
    ):
        raise CspConfigError(
            f"Invalid timeout {timeout!r}: give a number of seconds greater than 0 and at most {MAX_TIMEOUT}, such as 30."
        )
    return float(timeout)


def validate_ca_path(ca_path: str | None) -> str | None:
    """Return ``ca_path`` if it names readable PEM CA certificates, a file or an OpenSSL hashed folder."""
    if ca_path is None:
        return None
    if not os.path.exists(ca_path):
        raise CspConfigError(f"Invalid ca_path {ca_path!r}: no such file. Give the path of a PEM file of CA certificates.")
    try:
        if os.path.isdir(ca_path):
            ssl.create_default_context(capath=ca_path)
        else:
            ssl.create_default_context(cafile=ca_path)
    except (ssl.SSLError, OSError) as error:
        raise CspConfigError(
            f"Invalid ca_path {ca_path!r}: it could not be loaded as PEM CA certificates ({error}). "
            "Give the path of a PEM file of CA certificates."
        ) from None
    return ca_path


def base_url_from_api_host(api_host: object) -> str:
    """Return ``https://host[:port]`` for a host, ``host:port`` or ``https://`` URL, or raise CspConfigError."""
    if not isinstance(api_host, str) or not api_host.strip():
        raise CspConfigError("Invalid api_host: it is empty. Set api_host or CSP_API_HOST, for example console.cloud.vmware.com.")

    text = api_host.strip()
    # urlsplit drops tabs and line breaks without a word, so they are rejected before it runs.
    if any(character.isspace() or not character.isprintable() for character in text):
        raise CspConfigError(
            f"Invalid api_host {api_host!r}: it contains spaces or control characters. Give only the host name."
        )
    if "://" not in text:
        text = "https://" + text
    parts = urlsplit(text)

    if parts.scheme.lower() != "https":
        raise CspConfigError(
            f"Invalid api_host {api_host!r}: only https:// is allowed, because credentials must never travel "
            "over plain HTTP."
        )
    if parts.username is not None or parts.password is not None:
        raise CspConfigError(
            "Invalid api_host: it contains user information before '@'. Give only the host, and pass "
            "credentials through api_token, access_token or client_id and client_secret."
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise CspConfigError(
            f"Invalid api_host {api_host!r}: give only a host, host:port or https://host[:port] "
            "without a path, query or fragment."
        )
    if not parts.hostname:
        raise CspConfigError(f"Invalid api_host {api_host!r}: the host name is missing.")
    host_pattern = _IPV6_ADDRESS if ":" in parts.hostname else _HOST_NAME
    if not host_pattern.fullmatch(parts.hostname):
        raise CspConfigError(
            f"Invalid api_host {api_host!r}: the host name may contain only letters, digits, dots and hyphens, "
            "or an IPv6 address in brackets."
        )
    try:
        port = parts.port
    except ValueError:
        raise CspConfigError(f"Invalid api_host {api_host!r}: the port must be a number from 1 to 65535.") from None
    if port == 0 or parts.netloc.endswith(":"):
        raise CspConfigError(f"Invalid api_host {api_host!r}: the port must be a number from 1 to 65535.")

    return f"https://{parts.netloc}"
