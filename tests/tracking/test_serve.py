"""`trouw serve` as a real process: the links of really sent mails, over real HTTP."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select
from werkzeug.test import Client

from tests.tracking.conftest import BASE_URL, GARDEN, NEXT_DAY, SECRET, Server, Shop
from trouw.project import load_project
from trouw.store import create_store_engine, events, ledger
from trouw.templates.links import LinkSigner
from trouw.tracking import create_app

pytestmark = pytest.mark.slow


def _events(shop: Shop, kind: str) -> list[dict[str, object]]:
    with shop.engine.connect() as connection:
        rows = connection.execute(select(events).where(events.c.type == kind).order_by(events.c.id))
        return [dict(row._mapping) for row in rows]


def _ledger_row(shop: Shop, contact_id: str) -> dict[str, object]:
    query = select(ledger).where(ledger.c.contact_id == contact_id, ledger.c.campaign == "spring")
    with shop.engine.connect() as connection:
        return dict(connection.execute(query).one()._mapping)


def _properties(row: dict[str, object]) -> dict[str, object]:
    return {
        "campaign": "spring",
        "step": row["step"],
        "occurrence": row["occurrence"],
        "template": row["template"],
        "ledger_id": row["id"],
    }


def test_a_click_is_recorded_with_its_tag_and_redirected_to_its_link(
    shop: Shop, server: Server
) -> None:
    mail = shop.mails["c1"]
    answer = server.get(mail.garden)
    assert answer.status == 302
    assert answer.headers["location"] == GARDEN
    assert "no-store" in answer.headers["cache-control"]
    assert "set-cookie" not in answer.headers
    untagged = server.get(mail.clicks[1])
    assert (untagged.status, untagged.headers["location"]) == (302, "https://shop.example/")

    clicks = _events(shop, "click")
    assert [(e["contact_id"], e["tag"], e["url"]) for e in clicks] == [
        ("c1", "garden", GARDEN),
        ("c1", "spring", "https://shop.example/"),  # no tag given: the campaign's name
    ]
    sent = _ledger_row(shop, "c1")
    assert sent["status"] == "sent"
    assert all(e["properties"] == _properties(sent) for e in clicks)
    occurred = clicks[0]["occurred_at"]
    assert isinstance(occurred, datetime) and occurred.tzinfo is None  # naive UTC
    now = datetime.now(UTC).replace(tzinfo=None)
    assert now - timedelta(minutes=1) < occurred <= now


def test_a_link_to_an_address_with_non_ascii_characters_redirects_to_it_encoded(
    shop: Shop, server: Server
) -> None:
    target = "https://shop.example/tuin/bloemen-é?kleur=geel#ü"
    link = LinkSigner(BASE_URL, SECRET).click_url(
        "c1", "spring", target, "tuin", shop.link_key("c1")
    )
    answer = server.get(link)
    assert answer.status == 302
    assert (
        answer.headers["location"] == "https://shop.example/tuin/bloemen-%C3%A9?kleur=geel#%C3%BC"
    )
    assert [e["url"] for e in _events(shop, "click")] == [target]


def test_a_click_that_cannot_be_written_answers_503_and_records_nothing(
    shop: Shop, db_url: str
) -> None:
    if not db_url.startswith("sqlite"):
        pytest.skip("a read-only database is made here with SQLite's URI options")
    read_only = create_store_engine(
        f"sqlite:///file:{db_url.removeprefix('sqlite:///')}?mode=ro&uri=true"
    )
    client = Client(create_app(load_project(shop.root), read_only, secret=SECRET))
    mail = shop.mails["c1"]
    for link in (mail.garden, mail.pixel):
        answer = client.get(urlsplit(link).path)
        assert answer.status_code == 503, link
        assert "location" not in answer.headers
    read_only.dispose()
    assert shop.count() == 0


def test_the_open_pixel_is_a_gif_that_records_an_open(shop: Shop, server: Server) -> None:
    answer = server.get(shop.mails["c2"].pixel)
    assert answer.status == 200
    assert answer.headers["content-type"] == "image/gif"
    assert answer.body.startswith(b"GIF89a") and len(answer.body) < 100
    assert "no-store" in answer.headers["cache-control"]
    assert answer.headers["pragma"] == "no-cache"
    opens = _events(shop, "open")
    assert [(e["contact_id"], e["tag"], e["url"]) for e in opens] == [("c2", "spring", None)]
    assert opens[0]["properties"] == _properties(_ledger_row(shop, "c2"))


def test_head_requests_of_link_checkers_are_answered_but_not_recorded(
    shop: Shop, server: Server
) -> None:
    mail = shop.mails["c1"]
    click = server.request("HEAD", mail.garden)
    assert (click.status, click.headers["location"]) == (302, GARDEN)
    assert server.request("HEAD", mail.pixel).status == 200
    assert shop.count() == 0


def test_unsubscribe_asks_in_dutch_then_one_click_post_stops_the_next_send(
    shop: Shop, server: Server, tmp_path: Path
) -> None:
    mail = shop.mails["c1"]  # locale nl
    assert mail.unsubscribe == mail.footer_unsubscribe

    page = server.get(mail.unsubscribe)
    assert page.status == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<html lang="nl">' in page.text
    assert "Wil je geen nieuwsbrieven en aanbiedingen meer ontvangen van Test Shop?" in page.text
    assert '<form method="post"' in page.text and "Ja, meld me af" in page.text
    assert "set-cookie" not in page.headers
    assert shop.count() == 0, "a GET must not unsubscribe: mail scanners open every link"

    english = server.get(shop.mails["c2"].unsubscribe)
    assert '<html lang="en">' in english.text and "Yes, unsubscribe me" in english.text

    done = server.post_one_click(mail.unsubscribe)
    assert done.status == 200
    assert "Je bent afgemeld" in done.text
    again = server.post_one_click(mail.unsubscribe)
    assert again.status == 200 and "Je bent afgemeld" in again.text
    unsubscribes = _events(shop, "unsubscribe")
    assert [(e["contact_id"], e["tag"]) for e in unsubscribes] == [("c1", "spring")]
    assert unsubscribes[0]["properties"] == _properties(_ledger_row(shop, "c1"))
    after = server.get(mail.unsubscribe)
    assert "Je bent afgemeld" in after.text and "<form" not in after.text

    mails, output = shop.send(NEXT_DAY, tmp_path / "next")
    assert sorted(mails) == ["c2", "c3"]
    assert "cancelled 1: unsubscribed" in output


def test_any_post_unsubscribes_without_cookie_or_form_token(shop: Shop, server: Server) -> None:
    answer = server.request("POST", shop.mails["c2"].unsubscribe)  # an empty body
    assert answer.status == 200 and "You are unsubscribed" in answer.text
    assert shop.count("unsubscribe", "c2") == 1


def _flip(text: str, index: int) -> str:
    # A character in the middle of a base64 run: all its bits are used, so the
    # bytes change (flipping the last character may only touch padding bits).
    return text[:index] + ("B" if text[index] != "B" else "C") + text[index + 1 :]


def _forgeries(token: str) -> dict[str, str]:
    payload, signature = token.split(".")
    return {
        "payload flipped": _flip(payload, len(payload) // 2) + "." + signature,
        "signature flipped": payload + "." + _flip(signature, len(signature) // 2),
        "truncated": token[: len(token) - 5],
        "no signature": payload,
        "payload only dot": payload + ".",
        "swapped halves": signature + "." + payload,
        "empty": "x",
    }


def test_forged_altered_and_wrong_kind_tokens_record_nothing(shop: Shop, server: Server) -> None:
    mail = shop.mails["c1"]
    tokens = {"c": mail.garden, "o": mail.pixel, "u": mail.unsubscribe}
    answers = []
    for kind, link in tokens.items():
        token = link.rsplit("/", 1)[1]
        for name, forged in _forgeries(token).items():
            method = "POST" if kind == "u" else "GET"
            answer = server.request(method, f"/{kind}/{forged}")
            answers.append((kind, name, answer.status, "location" in answer.headers))
        for other in "cou":  # a genuine token of another kind
            if other != kind:
                answer = server.request("POST" if other == "u" else "GET", f"/{other}/{token}")
                answers.append(
                    (other, f"{kind} token", answer.status, "location" in answer.headers)
                )
    assert all(status == 404 and not location for _, _, status, location in answers), answers

    stranger = LinkSigner(BASE_URL, "another-secret").for_mail("c1", "spring")
    for link in (stranger.click_url(GARDEN, "garden"), stranger.open_url()):
        assert server.get(link).status == 404
    assert server.post_one_click(stranger.unsubscribe_url()).status == 404
    assert shop.count() == 0


def test_there_is_no_way_to_redirect_elsewhere(shop: Shop, server: Server) -> None:
    mail = shop.mails["c1"]
    evil = "https://evil.example/"
    with_query = server.get(f"{mail.garden}?url={evil}&next={evil}")
    assert (with_query.status, with_query.headers["location"]) == (302, GARDEN)
    for path in (f"/c/?url={evil}", f"/c/{evil}", f"/c//{evil}", f"/?next={evil}", "/c/"):
        answer = server.get(path)
        assert answer.status == 404 and "location" not in answer.headers, path
    assert shop.count() == 1  # only the genuine click

    # Even a genuinely signed link (a template's mistake) is refused unless http(s).
    signer = LinkSigner(BASE_URL, SECRET).for_mail("c1", "spring")
    for target in ("javascript:alert(1)", "//evil.example/", "ftp://x.example/", "https:///x"):
        answer = server.get(signer.click_url(target, "oops"))
        assert answer.status == 400 and "location" not in answer.headers, target
    assert shop.count() == 1


def test_a_forgotten_contacts_links_record_nothing(shop: Shop, server: Server) -> None:
    mail = shop.mails["c2"]
    assert server.get(mail.garden).status == 302
    result = shop.cli("contacts", "forget", "c2", "--yes")
    assert result.exit_code == 0, result.output
    assert server.get(mail.garden).status == 404
    assert server.get(mail.pixel).status == 404
    assert server.get(mail.unsubscribe).status == 404
    assert server.post_one_click(mail.unsubscribe).status == 404
    assert shop.count(contact_id="c2") == 0
    assert server.get(shop.mails["c3"].pixel).status == 200  # the others still count


def test_many_concurrent_clicks_are_all_recorded_and_one_unsubscribe_wins(
    shop: Shop, server: Server
) -> None:
    links = [mail.garden for mail in shop.mails.values()] * 40
    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(pool.map(lambda link: server.get(link).status, links))
        posts = list(
            pool.map(
                lambda _: server.post_one_click(shop.mails["c3"].unsubscribe).status, range(12)
            )
        )
    assert statuses == [302] * len(links)
    assert posts == [200] * 12
    assert shop.count("click") == len(links)
    assert shop.count("unsubscribe") == 1
