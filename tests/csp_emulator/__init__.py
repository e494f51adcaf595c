"""Stateful local fake of the VMware Cloud Services (CSP) identity API, for tests.

It serves the API token and client credentials exchanges and the org API token activate and deactivate endpoints
over HTTPS on a loopback address, with a CA generated at start. Tests seed orgs and credentials, inject faults and
read the request log either in-process through `Emulator` or over the /_emulator/ control endpoints.

    with Emulator() as emu:
        emu.add_org("org-1")
        emu.add_tokens("org-1", ["t1", "t2"])
        emu.add_api_token("secret", roles={"org-1": "org_owner"})
        requests.post(emu.url + "/csp/gateway/am/api/auth/api-tokens/authorize", verify=emu.ca_path, ...)
"""

from __future__ import annotations

import shutil
import ssl
import tempfile
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import trustme

from .server import EmulatorServer, loopback_address
from .state import Fault, RequestRecord, State

__all__ = ["Emulator", "Fault", "RequestRecord"]

Roles = Mapping[str, str | Iterable[str]]


class Emulator:
    """In-process handle on one emulator: start and stop it, seed it, inject faults and read its request log."""

    def __init__(
        self, port: int = 0, latency: float = 0.0, state_dir: str | Path | None = None, host: str = "127.0.0.1"
    ) -> None:
        """Configure the emulator without starting it.

        `latency` is the time in seconds slept before handling each non-control request. The CA certificate goes to
        `state_dir`/ca.pem, or to a temporary directory that stop() removes. `host` must be a loopback address, else
        ValueError is raised.
        """
        self.host = loopback_address(host)
        self._requested_port = port
        self._latency = latency
        self._state_dir = Path(state_dir) if state_dir is not None else None
        self._temp_dir: str | None = None
        self._state = State()
        self._server: EmulatorServer | None = None
        self._thread: threading.Thread | None = None
        self.ca_path = ""

    # Lifecycle

    def start(self) -> Emulator:
        if self._server is not None:
            raise RuntimeError("The emulator is already running.")
        if self._state_dir is None:
            self._temp_dir = tempfile.mkdtemp(prefix="csp-emulator-")
            directory = Path(self._temp_dir)
        else:
            directory = self._state_dir
            directory.mkdir(parents=True, exist_ok=True)

        ca = trustme.CA()
        identities = ["127.0.0.1", "localhost", "::1"]
        if self.host not in identities:
            identities.append(self.host)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        ca.issue_cert(*identities).configure_cert(context)
        ca_file = directory / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        self.ca_path = str(ca_file)

        try:
            self._server = EmulatorServer(self.host, self._requested_port, self._state, context, self._latency)
        except OSError:
            self._remove_temp_dir()
            raise
        # A short poll interval keeps stop() fast, because serve_forever checks for shutdown only between polls.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="csp-emulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the server and close all connections. Calling it again, or before start(), does nothing."""
        if self._server is None:
            return
        self._server.stop()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None
        self._remove_temp_dir()

    def _remove_temp_dir(self) -> None:
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    # Addresses

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("The emulator is not running: call start() first.")
        return self._server.server_address[1]

    @property
    def api_host(self) -> str:
        """host:port of the running server, with IPv6 addresses in brackets."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"https://{self.api_host}"

    # Settings

    @property
    def latency(self) -> float:
        return self._latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"Invalid latency {seconds!r}: expected seconds >= 0.")
        self._latency = seconds
        if self._server is not None:
            self._server.latency = seconds

    @property
    def access_token_lifetime(self) -> int | None:
        """Number of org API requests that each access token issued from now on accepts, or None for no limit."""
        return self._state.access_token_lifetime

    @access_token_lifetime.setter
    def access_token_lifetime(self, uses: int | None) -> None:
        self._state.access_token_lifetime = uses

    @property
    def already_changed_as(self) -> str:
        """Where ids already in the requested state are reported: "failure" (the default) or "success"."""
        return self._state.already_changed_as

    @already_changed_as.setter
    def already_changed_as(self, outcome: str) -> None:
        self._state.already_changed_as = outcome

    # Seeding

    def reset(self) -> None:
        """Remove orgs, credentials, issued access tokens, faults and log records, and reset settings and counters.

        Latency is a server option and stays as it is.
        """
        self._state.reset()

    def seed(self, data: Mapping[str, Any]) -> None:
        """Add the orgs, credentials and settings of a seed document to the current state.

        Every top-level key is optional. A seed file for the command line has the same format:

            {"orgs": [{"id": "org-1", "tokens": [{"id": "t1", "active": true}]}],
             "api_tokens": [{"token": "...", "user": "alice", "roles": {"org-1": "org_owner"}, "passcode": null}],
             "clients": [{"client_id": "...", "client_secret": "...", "roles": {"org-1": "org_owner"}}],
             "access_tokens": [{"token": "...", "user": "alice", "roles": {"org-1": "org_owner"}}],
             "settings": {"already_changed_as": "failure", "access_token_lifetime": null}}

        Raises ValueError on an unknown or missing field or a wrong type, and then changes nothing.
        """
        self._state.seed(data)

    def add_org(self, org_id: str) -> None:
        self._state.add_org(org_id)

    def add_tokens(self, org_id: str, ids: Iterable[str], active: bool = True) -> None:
        self._state.add_tokens(org_id, ids, active)

    def add_api_token(
        self, api_token: str, user: str = "alice", roles: Roles | None = None, passcode: str | None = None
    ) -> None:
        self._state.add_api_token(api_token, user, roles, passcode)

    def add_client(self, client_id: str, client_secret: str, roles: Roles | None = None) -> None:
        self._state.add_client(client_id, client_secret, roles)

    def add_access_token(self, access_token: str, user: str = "alice", roles: Roles | None = None) -> None:
        self._state.add_access_token(access_token, user, roles)

    def add_fault(self, fault: Fault) -> None:
        self._state.add_fault(fault)

    # Inspection

    def token_active(self, org_id: str, token_id: str) -> bool:
        return self._state.token_active(org_id, token_id)

    @property
    def connection_count(self) -> int:
        """Number of completed TLS handshakes since start or the last reset()."""
        return self._state.connection_count

    @property
    def requests(self) -> list[RequestRecord]:
        return self._state.records()

    def api_requests(self, kind: str) -> list[RequestRecord]:
        """Return the logged requests of one kind: "authorize", "deactivate", "activate", "api" or "other"."""
        return self._state.records(kind)

    def state(self) -> dict[str, Any]:
        """Return the orgs with their token states, the settings and the counters, as GET /_emulator/state does."""
        return self._state.snapshot()
