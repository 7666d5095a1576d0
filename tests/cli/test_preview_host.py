"""`trouw preview --serve` answers only requests addressed to this machine (DNS rebinding).

A web page could point its own host name at 127.0.0.1 and read the previews,
customer data, through the marketer's browser: the browser would send
`Host: evil.example`. The real server process is asked with raw HTTP requests.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import write_files
from trouw.preview.app import is_local_host


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _ask(port: int, host: str | None) -> tuple[int, bytes]:
    """Status and body of `GET /` with this Host header (None: no Host header at all)."""
    head = "GET / HTTP/1.1\r\n" + (f"Host: {host}\r\n" if host is not None else "")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall((head + "Connection: close\r\n\r\n").encode("ascii"))
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


@pytest.fixture
def preview_port(project_dir: Path, tmp_path: Path) -> Iterator[int]:
    """`trouw preview --serve` on a free port, for a project with one campaign."""
    write_files(
        project_dir,
        {
            "templates/hello.html": "{% block subject %}Hi{% endblock %}<p>Hi</p>",
            "campaigns/hello.yaml": "template: hello\n",
        },
    )
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "trouw", "--project", str(project_dir),
         "--db", f"sqlite:///{tmp_path / 'preview.db'}",
         "preview", "--serve", "--port", str(port), "--as-of", "2027-04-01"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, f"preview --serve exited with {process.returncode}"
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                assert time.monotonic() < deadline, "preview --serve did not listen"
                time.sleep(0.2)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_preview_server_refuses_other_host_names(preview_port: int) -> None:
    for host in ("evil.example", f"evil.example:{preview_port}", "127.0.0.1.evil.example",
                 "localhost.evil.example", "0.0.0.0", None):  # fmt: skip
        status, body = _ask(preview_port, host)
        assert status == 421, (host, status)
        assert b"hello" not in body and b"only at http://127.0.0.1" in body
    for host in (f"127.0.0.1:{preview_port}", f"localhost:{preview_port}", "LOCALHOST",
                 f"[::1]:{preview_port}", "127.0.0.1"):  # fmt: skip
        status, body = _ask(preview_port, host)
        assert status == 200, (host, status)
        assert b"hello" in body


def test_local_host_names() -> None:
    assert is_local_host("127.0.0.1:8026") and is_local_host("[::1]") and is_local_host("localhost")
    for host in ("", "::1", "[::1]x", "localhost:", "127.0.0.1:80:80", "127.0.0.2", "evil"):
        assert not is_local_host(host), host
