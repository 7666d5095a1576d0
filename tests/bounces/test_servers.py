"""`trouw bounces fetch --imap/--pop3` against a private Dovecot on loopback, and the exit
codes when a mailbox cannot be reached (1) or its URL is bad (2).

Dovecot (Debian's dovecot-imapd and dovecot-pop3d) runs as this user's own instance: its
config, passwd-file and maildirs in a temporary folder, listening on 127.0.0.1 on free
ports. Without it the tests are skipped with the reason, unless CI is set.
"""

from __future__ import annotations

import imaplib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.bounces.conftest import SentShop, ok, outcome
from tests.bounces.test_fetch import EVENTS, SUMMARY, SUPPRESSED

DOVECOT = "/usr/sbin/dovecot"
USER, PASSWORD = "bounces", "s3cret/pass"
CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
instance_name = trouw-test-{port}
protocols = imap pop3
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_login_user = {login_user}
default_internal_user = {internal_user}
default_internal_group = {internal_group}
first_valid_uid = 1
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%u
}}
mail_location = maildir:~/Maildir
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  chroot =
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {pop3_port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Dovecot:
    imap_port: int
    pop3_port: int

    @property
    def imap_url(self) -> str:
        return f"imap://{USER}:s3cret%2Fpass@127.0.0.1:{self.imap_port}/INBOX"

    @property
    def pop3_url(self) -> str:
        return f"pop3://{USER}:s3cret%2Fpass@127.0.0.1:{self.pop3_port}"

    def client(self) -> imaplib.IMAP4:
        client = imaplib.IMAP4("127.0.0.1", self.imap_port)
        client.login(USER, PASSWORD)
        return client

    def deliver(self, messages: list[bytes]) -> None:
        client = self.client()
        for raw in messages:
            assert client.append("INBOX", None, None, raw)[0] == "OK"
        client.logout()

    def count(self, folder: str, criteria: str = "ALL") -> int:
        client = self.client()
        status, _ = client.select(f'"{folder}"')
        found = client.search(None, criteria)[1][0].split() if status == "OK" else []
        client.logout()
        return len(found)


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    if not Path(DOVECOT).exists():
        problem = f"{DOVECOT} is missing: apt-get install -y dovecot-imapd dovecot-pop3d"
        if os.environ.get("CI"):
            pytest.fail(f"CI must test IMAP and POP3, but: {problem}")
        pytest.skip(problem)
    # Mail processes may not run as root: as root, the mail belongs to nobody.
    me = pwd.getpwuid(os.getuid())
    owner = pwd.getpwnam("nobody") if os.getuid() == 0 else me
    group = "nogroup" if os.getuid() == 0 else str(me.pw_gid)
    root = Path(tempfile.mkdtemp(prefix="trouw-dovecot-"))
    root.chmod(0o755)
    for folder in ("run", "state", "home"):
        (root / folder).mkdir()
    os.chown(root / "home", owner.pw_uid, owner.pw_gid)
    (root / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n", encoding="utf-8")
    server = Dovecot(_free_port(), _free_port())
    (root / "dovecot.conf").write_text(
        CONFIG.format(
            root=root,
            port=server.imap_port,
            pop3_port=server.pop3_port,
            login_user=owner.pw_name,
            internal_user=me.pw_name,
            internal_group=group if os.getuid() != 0 else "root",
            uid=owner.pw_uid,
            gid=owner.pw_gid,
        ),
        encoding="utf-8",
    )
    subprocess.run([DOVECOT, "-c", str(root / "dovecot.conf")], check=True)
    try:
        for _ in range(100):
            try:
                server.client().logout()
                break
            except OSError:
                time.sleep(0.05)
        yield server
    finally:
        pid = int((root / "run" / "master.pid").read_text())
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            if not (root / "run" / "master.pid").exists():
                break
            time.sleep(0.05)
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_imap_messages_are_applied_once_and_moved_seen(shop: SentShop, dovecot: Dovecot) -> None:
    dovecot.deliver(shop.messages())
    result = shop.cli("bounces", "fetch", "--imap", dovecot.imap_url)
    ok(result)
    assert SUMMARY in result.output
    assert "s3cret" not in result.output  # the password is not shown
    assert dovecot.count("INBOX") == 0
    assert dovecot.count("trouw-processed", "SEEN") == 5
    engine = shop.engine()
    assert outcome(engine) == (EVENTS, SUPPRESSED)
    again = shop.cli("bounces", "fetch", "--imap", dovecot.imap_url)
    ok(again)
    assert "0 messages read" in again.output
    assert outcome(engine) == (EVENTS, SUPPRESSED)
    engine.dispose()


@pytest.mark.slow
def test_pop3_messages_are_applied_once_and_deleted(shop: SentShop, dovecot: Dovecot) -> None:
    dovecot.deliver(shop.messages())
    result = shop.cli("bounces", "fetch", "--pop3", dovecot.pop3_url)
    ok(result)
    assert SUMMARY in result.output
    assert dovecot.count("INBOX") == 0
    again = shop.cli("bounces", "fetch", "--pop3", dovecot.pop3_url)
    ok(again)
    assert "0 messages read" in again.output
    engine = shop.engine()
    assert outcome(engine) == (EVENTS, SUPPRESSED)
    engine.dispose()


@pytest.mark.slow
def test_a_wrong_password_exits_1(shop: SentShop, dovecot: Dovecot) -> None:
    url = dovecot.imap_url.replace("s3cret", "wrong")
    result = shop.cli("bounces", "fetch", "--imap", url)
    assert result.exit_code == 1
    assert "cannot read imap://bounces@127.0.0.1" in result.output
    assert "wrong" not in result.output


def test_a_mailbox_out_of_reach_exits_1_and_a_bad_url_2(cli: object) -> None:
    from tests.conftest import Cli

    assert isinstance(cli, Cli)
    port = _free_port()  # nothing listens there
    result = cli("bounces", "fetch", "--imap", f"imap://u:p@127.0.0.1:{port}/INBOX")
    assert result.exit_code == 1, result.output
    assert "cannot read" in result.output
    for args, expected in (
        (("--imap", "http://u:p@host/"), "is not a IMAP URL"),
        (("--pop3", "pop3://host"), "names no host, user or password"),
        (("--pop3", "pop3://u:p@host/INBOX"), "POP3 has no folders"),
        (("--imap", "imap://u:p@host:99999/"), "is not a URL"),
        ((), "name one mailbox"),
        (("--mbox", "/nonexistent/box"), "no mbox file"),
        (("--maildir", "/tmp"), "is not a maildir"),
    ):
        bad = cli("bounces", "fetch", *args)
        assert bad.exit_code == 2, (args, bad.output)
        assert expected in bad.output, (args, bad.output)
