"""Unit tests of secret scrubbing in messages that echo server text."""

from __future__ import annotations

from ansible_collections.csp.iam.plugins.module_utils._redact import MASK, Redactor


def test_known_secret_masked():
    redactor = Redactor(["canary-secret-value"])
    assert redactor.redact("bad token canary-secret-value here") == f"bad token {MASK} here"


def test_short_secret_not_searched():
    redactor = Redactor(["abc"])
    assert redactor.redact("abc abc") == "abc abc"


def test_jwt_masked():
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"
    assert Redactor().redact(f"token {jwt} expired") == f"token {MASK} expired"


def test_named_fields_masked():
    redactor = Redactor()
    assert redactor.redact("api_token=zzz123&x=1") == f"api_token={MASK}&x=1"
    assert redactor.redact('{"access_token": "q1w2e3r4"}') == f'{{"access_token": "{MASK}"}}'
    assert redactor.redact("Authorization: Bearer abcdef") == f"Authorization: {MASK}"
    assert redactor.redact("client_secret: s3cr3t, next") == f"client_secret: {MASK}, next"


def test_ordinary_text_unchanged():
    text = "API token 3f1c2b7e-5d4a-4c3b-9a8f-1e2d3c4b5a69 was not found."
    assert Redactor(["canary-secret-value"]).redact(text) == text


def test_empty_text():
    assert Redactor().redact(None) == ""
    assert Redactor().redact("") == ""
