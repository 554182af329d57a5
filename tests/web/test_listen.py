"""The listening socket of `newsletter serve`: no Nagle delay on the connections it accepts."""

from __future__ import annotations

import socket

from newsletter.web.server import listen


def test_accepted_connections_send_without_waiting_for_the_clients_ack() -> None:
    # uvicorn writes a response's head and body apart: with Nagle's algorithm on, the body
    # waited for the client's delayed ACK, 40 ms on every request of a keep-alive connection.
    with listen("127.0.0.1", 0) as server:
        assert server.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        with socket.create_connection(server.getsockname()) as client:
            accepted, _ = server.accept()
            with accepted:
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
                client.sendall(b"ping")
                assert accepted.recv(4) == b"ping"
