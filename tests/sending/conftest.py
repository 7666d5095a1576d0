"""An SMTP server on loopback (aiosmtpd) and a small shop with a plan for one day."""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import Engine

from tests.planning.shop import make_shop, policy, run_plan

DAY = date(2027, 4, 6)  # a Tuesday
CAMPAIGNS = {
    "spring": "priority: 50\nschedule:\n  dates: [2027-04-06]\ntemplate: mail\n",
}
CONTACTS = (
    "id,email,first_name,last_name,channel,street,postcode,city,country\n"
    "c1,ann@x.example,Ann,Bakker,email,,,,\n"
    "c2,bob@x.example,Bob,Jansen,email,,,,\n"
    "c3,cor@x.example,Cor,Smit,email,,,,\n"
    "c4,,Dirk,Visser,post,Kerkstraat 5,1234 AB,Utrecht,NL\n"
)


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes


@dataclass
class Collector:
    """An aiosmtpd handler that keeps what it receives and can refuse on command."""

    received: list[Received] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)  # address -> final reply
    temporary: Counter[str] = field(default_factory=Counter)  # address -> 4xx answers left
    delay: float = 0.0  # seconds before answering DATA: a slow server
    drop: dict[str, bool] = field(default_factory=dict)  # address -> keep it? then hang up once
    before_reply: Any = None  # called with the mails received so far, before DATA's reply

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        if address in self.refuse:
            return self.refuse[address]
        if self.temporary[address] > 0:
            self.temporary[address] -= 1
            return "451 4.7.1 greylisted, try again"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        dropped = [a for a in envelope.rcpt_tos if a in self.drop]
        if dropped:  # hang up after the data, before the reply: the client cannot know
            if self.drop.pop(dropped[0]):
                self.received.append(
                    Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.content)
                )
            server.transport.close()
            return "421 4.4.2 connection dropped"
        self.received.append(
            Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.content)
        )
        if self.before_reply is not None:
            self.before_reply(len(self.received))
        return "250 Message accepted"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class SmtpServer:
    url: str
    handler: Collector


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    handler = Collector()
    port = _free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield SmtpServer(f"smtp://127.0.0.1:{port}", handler)
    finally:
        controller.stop()


def make_day_shop(
    root: Path, engine: Engine, *, settings: str = "", campaigns: dict[str, str] | None = None
) -> Path:
    """The shop with the plan of 2027 made: every contact gets `spring` on DAY."""
    make_shop(
        root,
        engine,
        campaigns=campaigns or CAMPAIGNS,
        contacts=CONTACTS,
        settings=settings or policy(),
    )
    run_plan(root, engine, 2027, "2027-01-01")
    return root
