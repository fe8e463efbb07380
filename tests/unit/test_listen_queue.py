"""The listen queue as /metrics reports it, read from a real listening socket."""
import socket

from chatd.fdlimit import listen_queue


def test_waiting_connections_and_the_granted_size():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(37)
        assert listen_queue(listener) == (0, 37)
        clients = [socket.create_connection(listener.getsockname()) for _ in range(3)]
        try:
            assert listen_queue(listener) == (3, 37)
            listener.accept()[0].close()
            assert listen_queue(listener) == (2, 37)
        finally:
            for client in clients:
                client.close()


def test_a_socket_that_is_not_tcp_reads_as_nothing():
    with socket.socket(socket.AF_UNIX) as sock:
        assert listen_queue(sock) == (0, 0)
