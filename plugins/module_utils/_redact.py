# -*- coding: utf-8 -*-
# Copyright: csp.iam contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Secret scrubbing for messages that may echo server text. Private to this collection: not a public API."""

from __future__ import annotations

import re

MASK = "********"

# Secrets shorter than this are not searched for, because masking them would garble ordinary words.
_MIN_SECRET_LENGTH = 6

_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
_SECRET_FIELD = re.compile(
    r"""(?P<key>["']?(?:api_token|access_token|refresh_token|id_token|client_secret|passcode|password|"""
    r"""csp-auth-token|authorization)["']?\s*[:=]\s*["']?)(?:bearer\s+|basic\s+)?(?P<value>[^\s"'&,;}]+)""",
    re.IGNORECASE,
)


class Redactor:
    """A set of known secrets, plus the shapes of secrets a server might echo back."""

    def __init__(self, secrets=()):
        self._secrets: set[str] = set()
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None) -> None:
        if secret and len(secret) >= _MIN_SECRET_LENGTH:
            self._secrets.add(secret)

    def redact(self, text: str | None) -> str:
        """Return text with every known secret, JSON Web Token and ``name=secret`` value masked."""
        if not text:
            return text or ""
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, MASK)
        text = _JWT.sub(MASK, text)
        return _SECRET_FIELD.sub(lambda match: match.group("key") + MASK, text)
