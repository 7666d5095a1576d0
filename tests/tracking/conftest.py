"""A shop that really sent its mails to an outbox, and the tracking server as a real process.

The mails are made by `trouw send --outbox`, parsed with the `email` package,
and their links (click, open pixel, List-Unsubscribe) are what the tests
follow, over real HTTP on loopback, against `trouw serve` started as a
subprocess.
"""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import Engine, func, select

from tests.conftest import SETTINGS, Cli, write_files
from tests.planning.shop import policy as policy_settings
from trouw.store import contacts, events, open_store

SECRET = "tracking-tests-secret"
BASE_URL = "https://t.shop.example"
DAY = "2027-04-06"  # a Tuesday: `spring` goes out
NEXT_DAY = "2027-04-13"  # the Tuesday after: `summer` goes out
GARDEN = "https://shop.example/tuin?utm_campaign=spring&x=1&y=%C3%A9"
CONTACTS = (
    "id,email,first_name,locale\n"
    "c1,ann@x.example,Ann,nl\n"
    "c2,bob@x.example,Bob,en\n"
    "c3,cor@x.example,Cor,nl\n"
)
CONTACT_OF = {"ann@x.example": "c1", "bob@x.example": "c2", "cor@x.example": "c3"}
MAIL = """\
{% block subject %}Lente{% endblock %}
<p>Hi {{ contact.first_name }}</p>
<p><a href="{{ track('GARDEN', 'garden') }}">Tuin</a></p>
<p><a href="{{ track('https://shop.example/') }}">Shop</a></p>
<img src="{{ open_pixel_url }}" width="1" height="1" alt="">
{% include "trouw/footer.html" %}
""".replace("GARDEN", GARDEN)
FILES = {
    "trouw.toml": SETTINGS + f'\n[tracking]\nbase_url = "{BASE_URL}"\n' + policy_settings(),
    "templates/mail.html": MAIL,
    "campaigns/spring.yaml": f"priority: 50\nschedule:\n  dates: [{DAY}]\ntemplate: mail\n",
    "campaigns/summer.yaml": f"priority: 50\nschedule:\n  dates: [{NEXT_DAY}]\ntemplate: mail\n",
    "contacts.csv": CONTACTS,
}


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.images: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "a" and values.get("href"):
            self.hrefs.append(str(values["href"]))
        if tag == "img" and values.get("src"):
            self.images.append(str(values["src"]))


@dataclass
class Mail:
    """One sent mail and its tracked links, as addresses under BASE_URL."""

    address: str
    clicks: list[str]
    pixel: str
    unsubscribe: str  # from the List-Unsubscribe header
    footer_unsubscribe: str  # from the footer link

    @property
    def garden(self) -> str:
        return self.clicks[0]


def read_mail(path: Path) -> Mail:
    message = message_from_bytes(path.read_bytes(), policy=policy.default)
    assert isinstance(message, EmailMessage)
    html = message.get_body(("html",))
    assert html is not None
    links = _Links()
    links.feed(html.get_content())
    header = str(message["List-Unsubscribe"])
    https = [part.strip(" <>") for part in header.split(",") if "https://" in part]
    clicks = [href for href in links.hrefs if href.startswith(f"{BASE_URL}/c/")]
    footer = [href for href in links.hrefs if href.startswith(f"{BASE_URL}/u/")]
    pixels = [src for src in links.images if src.startswith(f"{BASE_URL}/o/")]
    assert len(clicks) == 2 and len(footer) == 1 and len(pixels) == 1 and len(https) == 1
    address = str(message["To"]).split("<")[-1].rstrip(">")
    return Mail(address, clicks, pixels[0], https[0], footer[0])


@dataclass
class Shop:
    """The project, its database and the mails of DAY by contact id."""

    cli: Cli
    engine: Engine
    mails: dict[str, Mail]
    root: Path

    def count(self, kind: str | None = None, contact_id: str | None = None) -> int:
        query = select(func.count()).select_from(events)
        if kind is not None:
            query = query.where(events.c.type == kind)
        if contact_id is not None:
            query = query.where(events.c.contact_id == contact_id)
        with self.engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    def link_key(self, contact_id: str) -> str | None:
        """The contact's link key: a link made by hand must carry it to count."""
        query = select(contacts.c.link_key).where(contacts.c.id == contact_id)
        with self.engine.connect() as connection:
            key = connection.execute(query).scalar_one()
        return None if key is None else str(key)

    def send(self, day: str, outbox: Path) -> tuple[dict[str, Mail], str]:
        """Run `trouw send` for `day` into `outbox`: the mails by contact id, and its output."""
        result = self.cli("send", "--as-of", day, "--outbox", str(outbox))
        assert result.exit_code == 0, result.output
        mails = [read_mail(path) for path in sorted(outbox.glob("*.eml"))]
        return {CONTACT_OF[mail.address]: mail for mail in mails}, result.output


@pytest.fixture
def shop(
    project_dir: Path, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Shop]:
    monkeypatch.setenv("TROUW_SECRET", SECRET)
    write_files(project_dir, FILES)
    cli = Cli(project_dir, db_url)
    for args in (
        ("import", "contacts", str(project_dir / "contacts.csv")),
        ("plan", "2027", "--as-of", "2027-01-01"),
    ):
        result = cli(*args)
        assert result.exit_code == 0, result.output
    engine = open_store(db_url)
    try:
        shop = Shop(cli, engine, {}, project_dir)
        shop.mails = shop.send(DAY, tmp_path / "outbox")[0]
        assert sorted(shop.mails) == ["c1", "c2", "c3"]
        yield shop
    finally:
        engine.dispose()


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


@dataclass
class Server:
    """A tracking server process on loopback, and a client that follows no redirect."""

    host: str
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def request(
        self,
        method: str,
        link: str,
        body: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        """`link` is a full address under BASE_URL (as in the mail) or a path."""
        parts = urlsplit(link)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return Answer(
                response.status,
                {name.lower(): value for name, value in response.getheaders()},
                response.read(),
            )
        finally:
            connection.close()

    def get(self, link: str) -> Answer:
        return self.request("GET", link)

    def post_one_click(self, link: str) -> Answer:
        return self.request(
            "POST",
            link,
            body="List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )


def start_server(
    command: list[str], env: dict[str, str], log: Path, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start a server writing its output to `log` (a pipe nobody reads would fill up)."""
    with log.open("wb") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)


def wait_for_line(process: subprocess.Popen[bytes], log: Path, marker: str) -> str:
    """The first line of the server's output that contains `marker`."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
            if marker in line:
                return line
        if process.poll() is not None:
            pytest.fail(f"the server stopped ({process.returncode}):\n{log.read_text()}")
        time.sleep(0.05)
    pytest.fail(f"the server did not start within 60 s:\n{log.read_text()}")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def server_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "TROUW_SECRET": SECRET, **extra}


@pytest.fixture
def server(shop: Shop, tmp_path: Path) -> Iterator[Server]:
    """`trouw serve --port 0` on the shop: the port is read from what it prints."""
    log = tmp_path / "serve.log"
    command = [sys.executable, "-m", "trouw", "--project", str(shop.root)]
    command += ["--db", shop.cli.db_url, "serve", "--host", "127.0.0.1", "--port", "0"]
    process = start_server(command, server_env(), log)
    try:
        line = wait_for_line(process, log, "http://127.0.0.1:")
        port = int(line.split("http://127.0.0.1:")[1].split("/")[0])
        yield Server("127.0.0.1", port, log, process)
    finally:
        stop(process)
