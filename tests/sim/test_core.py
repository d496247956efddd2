"""The simulator framework's handling of the wire itself."""

from __future__ import annotations

import base64
import socket
import time

from syncd.sim.jira import ADMIN_EMAIL, ADMIN_TOKEN, JiraSim


def test_a_request_whose_body_never_arrived_whole_is_not_served():
    """A client killed mid-request (the crash loops SIGKILL daemons) leaves a request with
    a short body: a real server discards it. Served, the simulator would act on a request
    nobody sent, and the contract checker reported it as syncd's (editIssue with no body)."""
    sim = JiraSim()
    sim.start()
    try:
        auth = base64.b64encode(f"{ADMIN_EMAIL}:{ADMIN_TOKEN}".encode()).decode()
        with socket.create_connection(("127.0.0.1", sim.port), timeout=5) as conn:
            conn.sendall(b"PUT /rest/api/2/issue/10000 HTTP/1.1\r\nHost: x\r\n"
                         + f"Authorization: Basic {auth}\r\n".encode()
                         + b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"fields\":")
            conn.shutdown(socket.SHUT_WR)          # hangs up with 90 bytes still owed
            assert conn.recv(1024) == b""          # no answer: the connection is closed
        time.sleep(0.2)
        assert [r for r in sim.records() if r.method == "PUT"] == []
    finally:
        sim.stop()
