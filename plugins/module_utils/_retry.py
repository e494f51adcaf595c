# -*- coding: utf-8 -*-
# Copyright: csp.iam contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""When and how long the CSP HTTP client waits before it retries. Private to this collection: not a public API."""

from __future__ import annotations

import email.utils
import random
from dataclasses import dataclass
from datetime import timezone

# 429 and 503 mean the service turned the request away. 502 and 504 come from a gateway in front of it.
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})

# A gateway that responds with 502 or 504 may have passed the request on, and a service that responds with 500
# may have applied part of it. A retry of such a request can then find its own earlier work done.
MAY_HAVE_APPLIED_STATUSES = frozenset({500, 502, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """Retry limits for one request.

    ``retries`` is the number of retries after the first attempt. ``max_total_wait`` caps the seconds
    spent waiting between the attempts of one request: a ``Retry-After`` that requests more ends the
    retries at once instead of stalling the run.
    """

    retries: int = 5
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    max_total_wait: float = 120.0

    def backoff(self, retry_number: int, rng=random.random) -> float:
        """Return the wait before retry ``retry_number`` (1 for the first): exponential, capped, jittered."""
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** (retry_number - 1))
        # Equal jitter: at least half the ceiling, so that clients that failed together spread out.
        return ceiling / 2 + rng() * ceiling / 2


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Return the seconds of wait that a ``Retry-After`` header requests, or None when it is absent or invalid.

    The header is either a number of seconds or an HTTP date (RFC 9110, section 10.2.3).
    ``now`` is the current time in seconds since the epoch, for the date form.
    """
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        date = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if date.tzinfo is None:
        date = date.replace(tzinfo=timezone.utc)
    return max(0.0, date.timestamp() - now)
