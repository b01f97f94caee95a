import socket

import pytest

from conftest import NetworkAccessError


def test_guard_refuses_outside_connections():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        with pytest.raises(NetworkAccessError):
            s.connect(("192.0.2.1", 80))  # TEST-NET-1: refused by the guard before any packet leaves
    finally:
        s.close()


def test_guard_allows_loopback():
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        client.connect(server.getsockname())
    finally:
        client.close()
        server.close()


def test_guard_refuses_name_lookups():
    with pytest.raises(NetworkAccessError, match="huggingface.co"):
        socket.getaddrinfo("huggingface.co", 443)
    assert socket.getaddrinfo("127.0.0.1", 80)  # loopback literals still resolve
