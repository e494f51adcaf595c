"""A small HTTP CONNECT proxy for tests, bound to 127.0.0.1, that tunnels only to loopback addresses.

    with ConnectProxy() as proxy:
        env["HTTPS_PROXY"] = proxy.url
        ...
        assert proxy.tunnel_count == 1

It counts the tunnels it opened and the CONNECT targets it was asked for. A CONNECT to any host but a loopback
address gets 403 and no connection, so a misconfigured test cannot reach the network through it.
"""

from __future__ import annotations

import ipaddress
import select
import socket
import socketserver
import threading

# Seconds a tunnel may sit idle, and seconds to read the CONNECT request, before the proxy closes it.
IDLE_TIMEOUT = 10.0
MAX_REQUEST_HEAD_BYTES = 16 * 1024


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class _ProxyServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _TunnelHandler)
        self.lock = threading.Lock()
        self.tunnel_count = 0
        self.targets: list[str] = []


class _TunnelHandler(socketserver.BaseRequestHandler):
    server: _ProxyServer

    def handle(self) -> None:
        client = self.request
        client.settimeout(IDLE_TIMEOUT)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(4096)
            if not chunk or len(head) > MAX_REQUEST_HEAD_BYTES:
                return
            head += chunk
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        method, _separator, rest = request_line.partition(" ")
        target = rest.partition(" ")[0]
        with self.server.lock:
            self.server.targets.append(target)

        host, _separator, port_text = target.rpartition(":")
        if method != "CONNECT" or not port_text.isdigit() or not _is_loopback(host):
            client.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        try:
            upstream = socket.create_connection((host.strip("[]"), int(port_text)), timeout=IDLE_TIMEOUT)
        except OSError:
            client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        with self.server.lock:
            self.server.tunnel_count += 1
        with upstream:
            client.sendall(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            self._relay(client, upstream)

    @staticmethod
    def _relay(client: socket.socket, upstream: socket.socket) -> None:
        """Copy bytes both ways until one side closes or the tunnel is idle for IDLE_TIMEOUT seconds."""
        sockets = [client, upstream]
        while True:
            readable, _writable, _exceptional = select.select(sockets, [], [], IDLE_TIMEOUT)
            if not readable:
                return
            for source in readable:
                destination = upstream if source is client else client
                try:
                    data = source.recv(65536)
                    if not data:
                        return
                    destination.sendall(data)
                except OSError:
                    return


class ConnectProxy:
    """A running CONNECT proxy on 127.0.0.1 with the number of tunnels it opened."""

    def __init__(self) -> None:
        self._server = _ProxyServer()
        self._thread = threading.Thread(target=self._server.serve_forever, name="connect-proxy", daemon=True)

    def __enter__(self) -> ConnectProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def tunnel_count(self) -> int:
        with self._server.lock:
            return self._server.tunnel_count

    @property
    def targets(self) -> list[str]:
        """The host:port of every CONNECT request received, including rejected ones."""
        with self._server.lock:
            return list(self._server.targets)
