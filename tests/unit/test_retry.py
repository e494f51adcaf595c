"""Unit tests of the retry policy and the Retry-After parser."""

from __future__ import annotations

import email.utils

import pytest

from ansible_collections.csp.iam.plugins.module_utils._retry import RetryPolicy, parse_retry_after

NOW = 1_800_000_000.0


def test_retry_after_seconds():
    assert parse_retry_after("7", NOW) == 7.0
    assert parse_retry_after(" 0 ", NOW) == 0.0


def test_retry_after_http_date():
    header = email.utils.formatdate(NOW + 90, usegmt=True)
    assert parse_retry_after(header, NOW) == pytest.approx(90, abs=1)


def test_retry_after_past_date_is_zero():
    header = email.utils.formatdate(NOW - 600, usegmt=True)
    assert parse_retry_after(header, NOW) == 0.0


@pytest.mark.parametrize("header", [None, "", "soon", "-5", "1.5", "Mon, 99 Foo 2026"])
def test_retry_after_invalid_ignored(header):
    assert parse_retry_after(header, NOW) is None


def test_backoff_grows_exponentially_with_jitter():
    policy = RetryPolicy(backoff_base=0.5, backoff_max=30)
    assert policy.backoff(1, rng=lambda: 0.0) == 0.25
    assert policy.backoff(1, rng=lambda: 1.0) == 0.5
    assert policy.backoff(4, rng=lambda: 1.0) == 4.0


def test_backoff_capped():
    policy = RetryPolicy(backoff_base=0.5, backoff_max=30)
    assert policy.backoff(20, rng=lambda: 1.0) == 30
    assert policy.backoff(20, rng=lambda: 0.0) == 15
