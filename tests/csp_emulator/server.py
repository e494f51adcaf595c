"""HTTPS server and request handler of the CSP emulator.

The server speaks HTTP/1.1 with keep-alive on loopback only. Each response goes out in one sendall call and accepted
sockets have TCP_NODELAY set, so no response waits for a delayed ACK between its headers and its body.
Paths under /_emulator/ are control endpoints for tests: they are not logged, get no latency and no faults.
"""

from __future__ import annotations

import email.utils
import ipaddress
import json
import logging
import secrets
import socket
import socketserver
import ssl
import struct
import sys
import threading
import time
import uuid
from base64 import b64decode
from binascii import Error as Base64Error
from dataclasses import asdict, dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .state import (
    API_TOKEN_AUTHORIZE_PATH,
    CLIENT_CREDENTIALS_PATHS,
    MODULE_CODE,
    ORG_TOKENS_PATH,
    CspError,
    Fault,
    RequestRecord,
    State,
    request_kind,
    validate_ids,
)

logger = logging.getLogger("csp_emulator")

CONTROL_PREFIX = "/_emulator/"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
JSON_CONTENT_TYPE = "application/json"
MAX_BODY_BYTES = 1024 * 1024
TLS_HANDSHAKE_TIMEOUT = 10.0  # seconds


def loopback_address(host: str) -> str:
    """Return the IP address to bind for host, or raise ValueError unless it is a loopback address.

    "localhost" maps to 127.0.0.1 without a name lookup.
    """
    if host == "localhost":
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"Invalid host {host!r}: expected a loopback IP address such as 127.0.0.1.") from None
    if not address.is_loopback:
        raise ValueError(f"Invalid host {host!r}: the emulator binds only to loopback addresses such as 127.0.0.1.")
    return str(address)


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = JSON_CONTENT_TYPE
    headers: dict[str, str] = field(default_factory=dict)


def reason_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def json_response(status: int, data: Any) -> Response:
    return Response(status, json.dumps(data).encode("utf-8"))


def error_response(status: int, message: str, error_code: str) -> Response:
    """Build a CspErrorResponse with a new request id, which the X-Request-Id header repeats."""
    # NOTE: errorCode and cspErrorCode values are made up. Only the field names and types follow the real service.
    request_id = str(uuid.uuid4())
    body = {
        "statusCode": status,
        "message": message,
        "cspErrorCode": f"{status}.{MODULE_CODE}.{error_code}",
        "errorCode": error_code,
        "moduleCode": MODULE_CODE,
        "requestId": request_id,
        "traceId": secrets.token_hex(16),
    }
    response = json_response(status, body)
    response.headers["X-Request-Id"] = request_id
    return response


def fault_response(fault: Fault) -> Response:
    """Build the response of a "respond" fault."""
    assert fault.status is not None  # Fault.__post_init__ enforces a status for "respond"
    if fault.body is None:
        message = f"{reason_phrase(fault.status) or 'Error'} (injected fault)"
        response = error_response(fault.status, message, "injected_fault")
    elif isinstance(fault.body, (dict, list)):
        response = Response(fault.status, json.dumps(fault.body).encode("utf-8"), fault.content_type)
    elif isinstance(fault.body, str):
        response = Response(fault.status, fault.body.encode("utf-8"), fault.content_type)
    else:
        response = Response(fault.status, fault.body, fault.content_type)
    response.headers.update(fault.headers)
    return response


def _first_values(encoded: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(encoded, keep_blank_values=True).items()}


def _basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    """Decode "Basic base64(client_id:client_secret)", or return None when the header is missing or malformed."""
    if not authorization:
        return None
    scheme, _separator, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (Base64Error, UnicodeDecodeError):
        return None
    client_id, colon, client_secret = decoded.partition(":")
    return (client_id, client_secret) if colon else None


class EmulatorServer(ThreadingHTTPServer):
    """Threaded HTTPS server that runs the TLS handshake in each connection's thread and counts handshakes."""

    daemon_threads = True

    def __init__(self, host: str, port: int, state: State, ssl_context: ssl.SSLContext, latency: float) -> None:
        address = loopback_address(host)
        self.address_family = socket.AF_INET6 if ":" in address else socket.AF_INET
        self.state = state
        self.ssl_context = ssl_context
        self.latency = latency
        self.stopping = threading.Event()
        self._connections: set[ssl.SSLSocket] = set()
        self._connections_lock = threading.Lock()
        super().__init__((address, port), CspRequestHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn, which can send a reverse DNS query. Skip it.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, client_address = self.socket.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock, client_address

    def finish_request(self, request: Any, client_address: Any) -> None:
        try:
            request.settimeout(TLS_HANDSHAKE_TIMEOUT)
            tls_socket = self.ssl_context.wrap_socket(request, server_side=True)
            tls_socket.settimeout(None)
        except (OSError, ssl.SSLError) as error:
            logger.debug("TLS handshake with %s failed: %s", client_address, error)
            return
        self.state.count_connection()
        with self._connections_lock:
            self._connections.add(tls_socket)
        try:
            self.RequestHandlerClass(tls_socket, client_address, self)
        finally:
            with self._connections_lock:
                self._connections.discard(tls_socket)
            tls_socket.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if self.stopping.is_set() or isinstance(error, (ConnectionError, ssl.SSLError, TimeoutError)):
            logger.debug("Connection from %s ended: %r", client_address, error)
        else:
            logger.exception("Unexpected error while handling a request from %s", client_address)

    def stop(self) -> None:
        """Stop accepting, release held requests, shut down open connections and close the listening socket."""
        self.stopping.set()
        self.shutdown()
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                # The plain socket shutdown leaves the SSL object alone, so the reading thread reads EOF.
                socket.socket.shutdown(connection, socket.SHUT_RDWR)
            except OSError:
                pass
        self.server_close()


class CspRequestHandler(BaseHTTPRequestHandler):
    """Request handler for the CSP API paths and the /_emulator/ control paths."""

    protocol_version = "HTTP/1.1"
    server_version = "csp-emulator"
    server: EmulatorServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - name fixed by BaseHTTPRequestHandler
        logger.debug("%s - " + format, self.address_string(), *args)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Send a CspErrorResponse for protocol errors that BaseHTTPRequestHandler detects, and close."""
        self.log_error("HTTP error %d: %s", code, message)
        self.close_connection = True
        self._send(error_response(code, message or reason_phrase(code) or "Error", "bad_request"))

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        if url.path.startswith(CONTROL_PREFIX):
            self._handle_control(url.path)
            return
        received_at = time.monotonic()
        kind = request_kind(url.path)
        record = RequestRecord(
            method=self.command,
            path=url.path,
            query=_first_values(url.query),
            headers=self._header_dict(),
            form=None,
            json=None,
            status=0,
            ids=None,
            time=received_at,
            kind=kind,
        )
        try:
            body = self._read_body()
        except CspError as error:
            self.close_connection = True
            self._finish(record, error_response(error.status, error.message, error.error_code))
            return
        self._parse_body_into(record, body)

        if self.server.latency > 0:
            time.sleep(self.server.latency)
        fault = self.server.state.take_fault(kind)
        if fault is not None and fault.action == "delay":
            time.sleep(fault.delay)
        elif fault is not None and fault.action == "respond":
            self._finish(record, fault_response(fault), fault)
            return
        elif fault is not None and fault.action in ("reset", "hang"):
            self._finish(record, None, fault)
            return

        try:
            response = self._route(url.path, record, body)
        except CspError as error:
            response = error_response(error.status, error.message, error.error_code)
        if fault is not None and fault.action == "apply_then_reset":
            record.status = response.status
            self._finish(record, None, fault)
        else:
            self._finish(record, response, fault)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch

    def _header_dict(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        return headers

    def _read_body(self) -> bytes:
        if "Transfer-Encoding" in self.headers:
            raise CspError(411, "Chunked request bodies are not supported: send Content-Length.", "length_required")
        length_header = self.headers.get("Content-Length", "0")
        try:
            length = int(length_header)
        except ValueError:
            raise CspError(400, f"Invalid Content-Length {length_header!r}.", "invalid_request") from None
        if length < 0 or length > MAX_BODY_BYTES:
            message = f"Request body of {length} bytes is over the maximum of {MAX_BODY_BYTES}."
            raise CspError(413, message, "payload_too_large")
        return self.rfile.read(length) if length else b""

    def _parse_body_into(self, record: RequestRecord, body: bytes) -> None:
        """Fill record.form, record.json and record.ids from the body, as far as its Content-Type allows."""
        content_type = self.headers.get_content_type()
        if content_type == FORM_CONTENT_TYPE:
            record.form = _first_values(body.decode("utf-8", errors="replace"))
        elif content_type == JSON_CONTENT_TYPE and body:
            try:
                record.json = json.loads(body)
            except ValueError:
                record.json = None
        if record.kind in ("deactivate", "activate") and isinstance(record.json, dict):
            ids = record.json.get("ids")
            record.ids = ids if isinstance(ids, list) else None

    def _route(self, path: str, record: RequestRecord, body: bytes) -> Response:
        org_match = ORG_TOKENS_PATH.fullmatch(path)
        if not (org_match or path == API_TOKEN_AUTHORIZE_PATH or path in CLIENT_CREDENTIALS_PATHS):
            return error_response(404, f"No API endpoint at {path}.", "not_found")
        if self.command != "POST":
            response = error_response(405, f"Method {self.command} is not allowed on {path}: use POST.", "method")
            response.headers["Allow"] = "POST"
            return response
        state = self.server.state
        content_type = self.headers.get_content_type()

        if org_match:
            org_id = unquote(org_match["org_id"])
            state.authorize_org_owner(self._access_token(), org_id)
            if body and content_type != JSON_CONTENT_TYPE:
                raise CspError(415, f"Content-Type must be {JSON_CONTENT_TYPE}, got {content_type}.", "media_type")
            if body and record.json is None:
                raise CspError(400, "Request body is not valid JSON.", "invalid_request")
            ids = validate_ids(record.json)
            return json_response(200, state.change_tokens(org_id, ids, org_match["action"] == "activate"))

        # An empty body needs no Content-Type. The exchange then rejects the missing fields with 400.
        if body and content_type != FORM_CONTENT_TYPE:
            raise CspError(415, f"Content-Type must be {FORM_CONTENT_TYPE}, got {content_type}.", "media_type")
        form = record.form or {}
        if path == API_TOKEN_AUTHORIZE_PATH:
            return json_response(200, state.exchange_api_token(form, record.query))
        credentials = _basic_credentials(self.headers.get("Authorization"))
        return json_response(200, state.exchange_client_credentials(credentials, form))

    def _access_token(self) -> str | None:
        """Return the access token from "Authorization: Bearer" or else from the csp-auth-token header."""
        scheme, _separator, token = (self.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return self.headers.get("csp-auth-token") or None

    def _finish(self, record: RequestRecord, response: Response | None, fault: Fault | None = None) -> None:
        """Log the request, then send the response, or reset or hold the connection when response is None."""
        if response is not None:
            record.status = response.status
        self.server.state.log_request(record)
        summary = f"{record.method} {record.path} -> {record.status}"
        if record.ids is not None:
            summary += f", {len(record.ids)} ids"
        if fault is not None:
            summary += f", fault {fault.action}"
        logger.info("%s", summary)

        if response is not None:
            self._send(response)
        elif fault is not None and fault.action == "hang":
            self.server.stopping.wait(fault.delay if fault.delay > 0 else None)
            self.close_connection = True
        else:
            self._reset_connection()

    def _reset_connection(self) -> None:
        """Close the connection with a TCP RST: SO_LINGER with a zero timeout makes close() discard and reset."""
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.rfile.close()  # drops the last reference to the socket, so the close above takes effect now

    def _send(self, response: Response) -> None:
        """Write the status line, headers and body in one sendall call."""
        headers = {
            "Date": email.utils.formatdate(usegmt=True),
            "Server": self.server_version,
            "Content-Type": response.content_type,
            "Content-Length": str(len(response.body)),
        }
        for name, value in response.headers.items():
            for default_name in [key for key in headers if key.lower() == name.lower()]:
                del headers[default_name]
            headers[name] = value
        if "content-length" in (name.lower() for name in response.headers):
            self.close_connection = True  # a fault set its own length, so the framing cannot be trusted
        if self.close_connection:
            headers["Connection"] = "close"
        lines = [f"HTTP/1.1 {response.status} {reason_phrase(response.status)}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(head if self.command == "HEAD" else head + response.body)

    def _handle_control(self, path: str) -> None:
        try:
            body = self._read_body()
            response = self._control_response(path, body)
        except CspError as error:
            self.close_connection = self.close_connection or error.status in (411, 413)
            response = error_response(error.status, error.message, error.error_code)
        self._send(response)

    def _control_response(self, path: str, body: bytes) -> Response:
        state = self.server.state
        routes = {
            "state": "GET",
            "requests": "GET",
            "reset": "POST",
            "seed": "POST",
            "faults": "POST",
        }
        name = path[len(CONTROL_PREFIX):]
        if name not in routes:
            return error_response(404, f"No control endpoint at {path}.", "not_found")
        if self.command != routes[name]:
            response = error_response(405, f"Method {self.command} is not allowed on {path}.", "method")
            response.headers["Allow"] = routes[name]
            return response

        if name == "state":
            return json_response(200, state.snapshot())
        if name == "requests":
            return json_response(200, [asdict(record) for record in state.records()])
        if name == "reset":
            state.reset()
            return json_response(200, state.snapshot())

        try:
            data = json.loads(body)
        except ValueError as error:
            raise CspError(400, f"Control request body is not valid JSON: {error}.", "invalid_request") from None
        try:
            if name == "seed":
                state.seed(data)
            else:
                if not isinstance(data, list):
                    raise ValueError("Expected a JSON list of fault objects.")
                for fault in [Fault(**item) for item in data]:
                    state.add_fault(fault)
        except (TypeError, ValueError) as error:
            raise CspError(400, f"Invalid {name} request: {error}", "invalid_request") from None
        return json_response(200, state.snapshot())
