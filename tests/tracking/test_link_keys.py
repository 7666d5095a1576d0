"""Whose links count, and with which keys: forgotten contacts, reused ids, key rotation.

A link carries its contact's link key: when a forgotten contact's id is imported again for
someone else, the old links record nothing for the newcomer. Keys rotate with a grace
period: `trouw keys rotate` (the project key in the database) and TROUW_SECRET_OLD (for
TROUW_SECRET); the newest key signs, the old ones keep verifying on the tracking server.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import insert

from tests.conftest import Cli, write_files
from tests.tracking.conftest import (
    BASE_URL,
    DAY,
    FILES,
    GARDEN,
    NEXT_DAY,
    SECRET,
    Server,
    Shop,
    read_mail,
    server_env,
    start_server,
    stop,
    wait_for_line,
)
from trouw.errors import UserError
from trouw.store import atomic, contacts, open_store
from trouw.templates.links import LinkSigner, signing_key

NOW = datetime(2027, 4, 6, 12, 0)


def _token(link: str) -> str:
    return link.rsplit("/", 1)[1]


def test_a_mails_links_carry_the_contacts_link_key(shop: Shop) -> None:
    signer = LinkSigner(BASE_URL, SECRET)
    mail = shop.mails["c1"]
    key = shop.link_key("c1")
    assert key
    click = signer.read_click(_token(mail.clicks[0]))
    assert click is not None and click.link_key == key
    for kind, link in (("o", mail.pixel), ("u", mail.footer_unsubscribe)):
        found = signer.read_link(kind, _token(link))
        assert found is not None and found.link_key == key
    assert shop.link_key("c2") not in (None, key)  # one per contact


def test_a_forgotten_contacts_links_count_for_nobody_when_the_id_comes_back(
    shop: Shop, server: Server, tmp_path: Path
) -> None:
    old = shop.mails["c1"]
    outbox = tmp_path / "outbox"
    assert len(list(outbox.glob("*-c1-*.eml"))) == 1
    result = shop.cli("contacts", "forget", "c1", "--yes", "--outbox", str(outbox))
    assert result.exit_code == 0, result.output
    assert "deleted" in result.stdout and "-c1-" in result.stdout
    assert list(outbox.glob("*-c1-*.eml")) == []  # their mail file is gone
    assert len(list(outbox.glob("*.eml"))) == 2  # the others' stay

    # Someone else gets the id c1.
    write_files(shop.root, {"newcomer.csv": "id,email,first_name\nc1,dee@x.example,Dee\n"})
    assert shop.cli("import", "contacts", str(shop.root / "newcomer.csv")).exit_code == 0
    new_key = shop.link_key("c1")
    assert new_key is not None
    for link in old.clicks:
        assert server.get(link).status == 404
    assert server.get(old.pixel).status == 404
    assert server.get(old.footer_unsubscribe).status == 404  # the confirm page
    assert server.post_one_click(old.unsubscribe).status == 404  # List-Unsubscribe
    assert server.post_one_click(old.footer_unsubscribe).status == 404
    assert shop.count(contact_id="c1") == 0  # nothing recorded for the newcomer

    # The newcomer's own links count.
    mine = LinkSigner(BASE_URL, SECRET).for_mail("c1", "spring", new_key)
    assert server.get(mine.click_url(GARDEN, "garden")).status == 302
    assert server.get(mine.open_url()).status == 200
    assert shop.count("click", "c1") == 1 and shop.count("open", "c1") == 1


def test_forget_without_the_outbox_says_their_mails_may_be_in_one(shop: Shop) -> None:
    result = shop.cli("contacts", "forget", "c2", "--yes")
    assert result.exit_code == 0, result.output
    assert "1 mails were sent to them" in result.stdout and "--outbox DIR" in result.stdout


def test_forget_deletes_their_letters_and_makes_the_day_again_without_them(
    shop: Shop, tmp_path: Path
) -> None:
    settings = (shop.root / "trouw.toml").read_text(encoding="utf-8")
    write_files(
        shop.root,
        {
            "trouw.toml": settings + '\n[letters]\ndir = "letters"\n',
            "post.csv": "id,first_name,channel,street,postcode,city\n"
            "p1,Piet,post,Dorpsstraat 2,1234 AB,Ergens\np2,Pam,post,Kerkweg 9,4321 BA,Elders\n",
        },
    )
    assert shop.cli("import", "contacts", str(shop.root / "post.csv")).exit_code == 0
    assert shop.cli("plan", "2027", "--as-of", "2027-01-01").exit_code == 0
    result = shop.cli("send", "--as-of", NEXT_DAY, "--outbox", str(tmp_path / "next"))
    assert result.exit_code == 0, result.output
    letters = shop.root / "letters"
    assert len(list(letters.glob("*-p1-*.html"))) == 1
    bundle = letters / NEXT_DAY / "addresses.csv"
    assert bundle.is_file()

    assert "Piet" in bundle.read_text(encoding="utf-8")

    result = shop.cli("contacts", "forget", "p1", "--yes")
    assert result.exit_code == 0, result.output
    assert list(letters.glob("*-p1-*")) == []  # the letter (and its PDF, if made)
    assert len(list(letters.glob("*-p2-*.html"))) == 1
    addresses = bundle.read_text(encoding="utf-8")
    assert "Piet" not in addresses and "Dorpsstraat" not in addresses and "Pam" in addresses
    output = " ".join(result.stdout.split())
    assert f"made the letters of {bundle.parent} again without theirs" in output
    assert "not found" not in output


def test_a_contact_made_before_link_keys_keeps_its_links(shop: Shop, server: Server) -> None:
    """A row without a link key (made before migration 0005) takes links without one."""
    with atomic(shop.engine) as connection:
        connection.execute(
            insert(contacts).values(
                id="old1", email="old@x.example", channel="email", attributes={},
                created_at=NOW, updated_at=NOW,
            )
        )  # fmt: skip
    signer = LinkSigner(BASE_URL, SECRET)
    assert server.get(signer.click_url("old1", "spring", GARDEN, "garden")).status == 302
    keyed = signer.click_url("old1", "spring", GARDEN, "garden", "k3y")
    assert server.get(keyed).status == 404
    assert shop.count("click", "old1") == 1


# ----------------------------------------------------------------------------- key rotation


@pytest.fixture
def project_key_shop(
    project_dir: Path, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Shop]:
    """The shop of conftest, signing with the project key in its database (no TROUW_SECRET)."""
    monkeypatch.delenv("TROUW_SECRET", raising=False)
    monkeypatch.delenv("TROUW_SECRET_OLD", raising=False)
    write_files(project_dir, FILES)
    cli = Cli(project_dir, db_url)
    for args in (
        ("import", "contacts", str(project_dir / "contacts.csv")),
        ("plan", "2027", "--as-of", "2027-01-01"),
    ):
        assert cli(*args).exit_code == 0
    engine = open_store(db_url)
    try:
        shop = Shop(cli, engine, {}, project_dir)
        shop.mails = shop.send(DAY, tmp_path / "outbox")[0]
        yield shop
    finally:
        engine.dispose()


def _serve(shop: Shop, log: Path, **env: str) -> Server:
    """`trouw serve` on the shop, with these TROUW_SECRET* variables only."""
    command = [sys.executable, "-m", "trouw", "--project", str(shop.root), "--db",
               shop.cli.db_url, "serve", "--host", "127.0.0.1", "--port", "0"]  # fmt: skip
    environment = {k: v for k, v in server_env().items() if not k.startswith("TROUW_SECRET")}
    process = start_server(command, {**environment, **env}, log)
    line = wait_for_line(process, log, "http://127.0.0.1:")
    port = int(line.split("http://127.0.0.1:")[1].split("/")[0])
    return Server("127.0.0.1", port, log, process)


def _sent(outbox: Path) -> dict[str, list[str]]:
    """The click links of the mails in `outbox`, by contact id."""
    found = {}
    for path in sorted(outbox.glob("*.eml")):
        contact_id = path.name.split("-")[-2]
        found[contact_id] = read_mail(path).clicks
    return found


def _project_secret(shop: Shop) -> str:
    with shop.engine.connect() as connection:
        return signing_key(connection).secret


def test_keys_rotate_signs_with_a_new_key_and_old_links_still_count(
    project_key_shop: Shop, tmp_path: Path
) -> None:
    shop = project_key_shop
    old_secret = _project_secret(shop)
    server = _serve(shop, tmp_path / "serve.log")
    try:
        result = shop.cli("keys", "rotate", "--grace", "30d")
        assert result.exit_code == 0, result.output
        assert "from now on" in result.stdout and "count until" in result.stdout
        new_secret = _project_secret(shop)
        assert new_secret != old_secret

        # The next day's mail is signed with the new key, and only with it.
        outbox = tmp_path / "next"
        result = shop.cli("send", "--as-of", NEXT_DAY, "--outbox", str(outbox))
        assert result.exit_code == 0, result.output
        new_link = _sent(outbox)["c2"][0]
        assert LinkSigner(BASE_URL, new_secret).read_click(_token(new_link)) is not None
        assert LinkSigner(BASE_URL, old_secret).read_click(_token(new_link)) is None

        # The server, started before the rotation, takes both: the old key is in its
        # grace period; the new one it reads at the first link it does not know.
        assert server.get(shop.mails["c1"].clicks[0]).status == 302
        time.sleep(1.1)  # the keys are read again at most once a second
        assert server.get(new_link).status == 302
        assert server.post_one_click(shop.mails["c3"].unsubscribe).status == 200
        assert shop.count("click") == 2 and shop.count("unsubscribe", "c3") == 1
    finally:
        assert server.process is not None
        stop(server.process)

    # Without a grace period the old key's links stop counting at once.
    result = shop.cli("keys", "rotate", "--grace", "0d")
    assert result.exit_code == 0, result.output
    server = _serve(shop, tmp_path / "serve2.log")
    try:
        assert server.get(new_link).status == 404  # signed with the key just retired
        assert server.get(shop.mails["c1"].clicks[0]).status == 302  # 30 days' grace left
    finally:
        assert server.process is not None
        stop(server.process)


def test_trouw_secret_rotates_with_trouw_secret_old(
    shop: Shop, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shop sent with TROUW_SECRET=SECRET; the operator moves to a new secret."""
    refused = shop.cli("keys", "rotate")
    assert refused.exit_code == 2 and "TROUW_SECRET_OLD" in refused.output

    monkeypatch.setenv("TROUW_SECRET", "the-new-secret")
    stranger = shop.cli("send", "--as-of", NEXT_DAY, "--dry-run")
    assert stranger.exit_code == 2 and "not the secret" in stranger.output  # not a rotation

    monkeypatch.setenv("TROUW_SECRET_OLD", f"something-older, {SECRET}")
    outbox = tmp_path / "next"
    result = shop.cli("send", "--as-of", NEXT_DAY, "--outbox", str(outbox))
    assert result.exit_code == 0, result.output
    new_link = _sent(outbox)["c2"][0]
    assert LinkSigner(BASE_URL, "the-new-secret").read_click(_token(new_link)) is not None

    server = _serve(
        shop, tmp_path / "serve.log", TROUW_SECRET="the-new-secret", TROUW_SECRET_OLD=SECRET
    )
    try:
        assert server.get(new_link).status == 302
        assert server.get(shop.mails["c1"].clicks[0]).status == 302  # the old secret's
        forged = LinkSigner(BASE_URL, "never-used").click_url("c1", "spring", GARDEN, "garden")
        assert server.get(forged).status == 404
    finally:
        assert server.process is not None
        stop(server.process)

    # From now on a machine still on the old secret is refused: the servers will not take
    # its links for long.
    monkeypatch.setenv("TROUW_SECRET", SECRET)
    monkeypatch.delenv("TROUW_SECRET_OLD")
    with shop.engine.connect() as connection, pytest.raises(UserError, match="not the secret"):
        signing_key(connection)
