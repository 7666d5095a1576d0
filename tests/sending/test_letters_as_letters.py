"""A letter is a letter: its own template, no tracking, a page that prints and loads nothing,
the day's letters as one PDF with an address list, and SMTP never waiting for a PDF.

Every send goes through the CLI, on SQLite and PostgreSQL, with the mail to an SMTP
server on loopback and the letters into a folder.
"""

from __future__ import annotations

import csv
import io
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pypdf
import pytest
from sqlalchemy import Engine

from tests.conftest import Cli, write_files
from tests.planning.shop import make_shop, policy, run_plan
from tests.sending.conftest import DAY, SmtpServer
from trouw.errors import WorkFailed
from trouw.project import Sender, Settings
from trouw.sending import letterdays, transports
from trouw.sending.letterdays import ADDRESSES_CSV, COLUMNS, LETTERS_PDF, finish_days, pdf_merger
from trouw.sending.letters import letter_html, pdf_writer, printable
from trouw.templates import MailTemplates

CONTACTS = (
    "id,email,first_name,last_name,locale,channel,street,postcode,city,country\n"
    "m1,ann@x.example,Ann,Bakker,,email,,,,\n"
    "p1,,Dirk,Visser,,post,Kerkstraat 5,1234 AB,Utrecht,NL\n"
    "p2,,Emma,Wilson,en,post,Rue Neuve 1,1000,Brussel,be\n"
    "p3,,Piet,Post,,post,Laan 2,9999 ZZ,Zwolle,\n"
)
# The mail: a tracked link, the open pixel, the footer with the unsubscribe link.
MAIL = """\
<html><head><title>{% block subject %}Lente{% endblock %}</title></head><body>
<p>Mail voor {{ contact.first_name }} per {{ channel }}</p>
<p><a href="{{ track('https://www.shop.example/lente', 'spring') }}">Bekijk de lente</a></p>
<img src="{{ open_pixel_url }}" width="1" height="1" alt="">
{% include "trouw/footer.html" %}
</body></html>
"""
LETTER = """\
<title>{% block subject %}Een brief{% endblock %}</title>
<p>Brief voor {{ contact.first_name }}: kijk op {{ track("https://www.shop.example/lente") }}</p>
"""
UNSUBSCRIBE_WORDS = ("unsubscribe", "afmelden", "meld je", "/u/")


def shop(
    cli: Cli, engine: Engine, *, settings: str = "", sender: str = "", letter: bool = True
) -> Path:
    """Ann by mail, Dirk (home), Emma (Belgium, English) and Piet (no country) by post,
    all getting `spring` on DAY; `sender`: more lines for [sender]."""
    root = cli.project
    make_shop(
        root,
        engine,
        campaigns={"spring": "priority: 50\nschedule:\n  dates: [2027-04-06]\ntemplate: mail\n"},
        contacts=CONTACTS,
        settings=policy() + settings,
    )
    write_files(root, {"templates/mail.html": MAIL})
    toml = root / "trouw.toml"
    postal = 'postal_address = "Street 1, 1234 AB Town"\n'
    toml.write_text(toml.read_text("utf-8").replace(postal, postal + sender), "utf-8")
    if letter:
        write_files(root, {"templates/mail.letter.html": LETTER})
    run_plan(root, engine, 2027, "2027-01-01")
    return root


def send(cli: Cli, smtp: SmtpServer, letters: Path, *more: str) -> None:
    result = cli(
        "send", "--as-of", DAY.isoformat(), "--smtp", smtp.url, "--letters", str(letters), *more
    )
    assert result.exit_code == 0, result.output


def letters_by_contact(folder: Path) -> dict[str, str]:
    found = {}
    for path in folder.glob("*.html"):
        contact = path.stem.split("-")[5]  # DAY-campaign-step-contact-hash
        found[contact] = path.read_text(encoding="utf-8")
    return found


def assert_untracked(letter: str) -> None:
    assert "<a " not in letter and "<a>" not in letter and "href" not in letter
    assert "/o/" not in letter and "/c/" not in letter  # no pixel, no tracked link
    assert "<img" not in letter
    lowered = letter.lower()
    for word in UNSUBSCRIBE_WORDS:
        assert word not in lowered, word


def test_a_letter_template_is_used_for_post_and_carries_no_tracking(
    cli: Cli, engine: Engine, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    shop(cli, engine)
    send(cli, smtp_server, tmp_path / "letters")
    [mail] = smtp_server.handler.received  # the mail is as it was: tracked, with the footer
    content = mail.content.decode()
    assert "/o/" in content and "/c/" in content and "/u/" in content
    letters = letters_by_contact(tmp_path / "letters")
    assert sorted(letters) == ["p1", "p2", "p3"]
    for letter in letters.values():
        assert "Brief voor" in letter and "Mail voor" not in letter
        assert "www.shop.example/lente" in letter  # track() gives the address as it is
        assert_untracked(letter)
    log = cli("log", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(log.output)))
    assert {(r["contact_id"], r["channel"], r["template"], r["status"]) for r in rows} == {
        ("m1", "email", "mail", "sent"),
        *{(c, "post", "mail", "sent") for c in ("p1", "p2", "p3")},
    }  # the ledger names the mail, as for reports per variant


def test_without_a_letter_template_the_mail_is_printed_with_channel_post(
    cli: Cli, engine: Engine, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    shop(cli, engine, letter=False)
    send(cli, smtp_server, tmp_path / "letters")
    letter = letters_by_contact(tmp_path / "letters")["p1"]
    assert "Mail voor Dirk per post" in letter
    assert "Bekijk de lente (shop.example/lente)" in letter  # the link's text and address
    assert_untracked(letter)
    [mail] = smtp_server.handler.received
    assert "per email" in mail.content.decode()


def test_return_line_address_and_date_of_a_letter(
    cli: Cli, engine: Engine, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    shop(cli, engine)  # the sender's country: the locale's (nl -> NL)
    send(cli, smtp_server, tmp_path / "letters")
    letters = letters_by_contact(tmp_path / "letters")
    home, abroad, unknown = letters["p1"], letters["p2"], letters["p3"]
    assert '<div class="sender">Test Shop · Street 1, 1234 AB Town</div>' in home
    assert '<div class="address">Dirk Visser\nKerkstraat 5\n1234 AB Utrecht</div>' in home
    assert '<div class="date">6 april 2027</div>' in home  # the letter's language: nl
    # Abroad: the country in capitals in the sender's language, and the sender's country.
    assert '<div class="address">Emma Wilson\nRue Neuve 1\n1000 Brussel\nBELGIË</div>' in abroad
    assert '<div class="sender">Test Shop · Street 1, 1234 AB Town · Nederland</div>' in abroad
    assert '<div class="date">6 April 2027</div>' in abroad  # Emma reads English
    assert '<div class="address">Piet Post\nLaan 2\n9999 ZZ Zwolle</div>' in unknown


def test_the_senders_country_from_the_settings(
    cli: Cli, engine: Engine, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    shop(cli, engine, sender='country = "be"\n')
    send(cli, smtp_server, tmp_path / "letters")
    letters = letters_by_contact(tmp_path / "letters")
    assert "1234 AB Utrecht\nNEDERLAND</div>" in letters["p1"]
    assert "1000 Brussel</div>" in letters["p2"]
    assert "Town · België</div>" in letters["p1"]


def test_a_country_that_is_no_code_is_bad_input(cli: Cli, engine: Engine) -> None:
    shop(cli, engine)
    toml = cli.project / "trouw.toml"
    text = toml.read_text("utf-8").replace("[sender]\n", '[sender]\ncountry = "Nederland"\n')
    toml.write_text(text, "utf-8")
    result = cli("send", "--as-of", DAY.isoformat(), "--dry-run")
    assert result.exit_code == 2
    assert "sender.country" in result.output and "two-letter" in result.output


def test_a_days_letters_as_one_pdf_and_an_address_list_over_two_runs(
    cli: Cli, engine: Engine, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    shop(cli, engine)
    folder = tmp_path / "letters"
    send(cli, smtp_server, folder, "--limit", "2")  # a first run: some of the day's letters
    first = _addresses(folder)
    assert 1 <= len(first) < 3
    assert len(first) == len(list(folder.glob("*.html")))
    send(cli, smtp_server, folder)  # the rest: the day's bundle holds all of them
    rows = _addresses(folder)
    assert list(rows[0]) == list(COLUMNS)
    # For the post: domestic first (no country is domestic), by postcode; then abroad.
    assert [r["contact_id"] for r in rows] == ["p1", "p3", "p2"]
    assert rows[0] | {"file": ""} == {
        "contact_id": "p1",
        "name": "Dirk Visser",
        "street": "Kerkstraat 5",
        "postcode": "1234 AB",
        "city": "Utrecht",
        "country": "NL",
        "file": "",
        "first_page": "1",
        "pages": "1",
    }
    assert rows[2]["country"] == "BE"
    for row in rows:
        assert (folder / row["file"]).read_bytes().startswith(b"%PDF-")  # the letter's own
        assert (folder / row["file"]).with_suffix(".html").exists()
    day = pypdf.PdfReader(folder / DAY.isoformat() / LETTERS_PDF)
    assert len(day.pages) == 3
    assert [r["first_page"] for r in rows] == ["1", "2", "3"]
    assert "Dirk Visser" in (day.pages[0].extract_text() or "")
    assert "Emma Wilson" in (day.pages[2].extract_text() or "")


def _addresses(folder: Path) -> list[dict[str, str]]:
    text = (folder / DAY.isoformat() / ADDRESSES_CSV).read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def test_smtp_never_waits_for_a_letters_pdf(
    cli: Cli,
    engine: Engine,
    smtp_server: SmtpServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Letters sort first in the first batch of 40; mail of the second batch used to wait
    for their PDFs (0.1 s each with WeasyPrint) on the one delivering thread."""
    post = "".join(f"b{i},,Bea,Post{i},,post,Kerkstraat {i},1234 AB,Utrecht,NL\n" for i in range(5))
    mail = "".join(f"m{i:02},m{i}@x.example,Mo,Mail{i},,email,,,,\n" for i in range(50))
    make_shop(
        cli.project,
        engine,
        campaigns={"spring": "priority: 50\nschedule:\n  dates: [2027-04-06]\ntemplate: mail\n"},
        contacts=CONTACTS.splitlines()[0] + "\n" + post + mail,
    )
    run_plan(cli.project, engine, 2027, "2027-01-01")
    one_page = pdf_writer()
    assert one_page is not None
    blank = one_page("<p>x</p>")
    made: list[float] = []

    def slow_pdf(html: str) -> bytes:
        made.append(time.monotonic())
        time.sleep(0.05)
        return blank

    monkeypatch.setattr(transports, "pdf_writer", lambda: slow_pdf)
    accepted: list[float] = []
    smtp_server.handler.before_reply = lambda count: accepted.append(time.monotonic())
    send(cli, smtp_server, tmp_path / "letters")
    assert len(accepted) == 50 and len(made) == 5
    assert max(accepted) < min(made)  # every mail was out before the first PDF was begun
    assert len(_addresses(tmp_path / "letters")) == 5


def _settings() -> Settings:
    sender = Sender(postal_address="Street 1, 1234 AB Town")
    return Settings(name="Test Shop", sender=sender)


def _write_letter(folder: Path, name: str, contact_id: str, postcode: str) -> Path:
    contact = {"id": contact_id, "full_name": "A B", "postcode": postcode, "city": "X"}
    page = letter_html(
        subject="s", html="<p>Hallo</p>", contact=contact, settings=_settings(), day=DAY
    )
    path = folder / f"{DAY.isoformat()}-{name}.html"
    path.write_text(page, encoding="utf-8")
    return path


def test_a_day_left_unfinished_is_finished_by_the_next_run(tmp_path: Path) -> None:
    """A run stopped after writing its letters (before the PDFs) leaves the day stale;
    the next run's letter box finishes it, and a letter written again gets a new PDF."""
    first = _write_letter(tmp_path, "spring-main-c1-aaaa", "c1", "2000")
    _write_letter(tmp_path, "spring-main-c2-bbbb", "c2", "1000")
    box = transports.LetterBox(tmp_path)  # a run that writes nothing
    box.close()
    [bundle] = box.finished
    assert (bundle.day, bundle.letters, bundle.pdfs_made) == (DAY.isoformat(), 2, 2)
    assert [r["contact_id"] for r in _addresses(tmp_path)] == ["c2", "c1"]
    assert finish_days(tmp_path, pdf=pdf_writer(), merge=pdf_merger()) == []  # up to date
    time.sleep(0.01)
    first.write_text(first.read_text(encoding="utf-8").replace("Hallo", "Dag"), "utf-8")
    [again] = finish_days(tmp_path, pdf=pdf_writer(), merge=pdf_merger())
    assert again.pdfs_made == 1
    assert "Dag" in (pypdf.PdfReader(first.with_suffix(".pdf")).pages[0].extract_text() or "")


def test_a_pdf_that_cannot_be_made_fails_the_work_and_is_tried_again(tmp_path: Path) -> None:
    _write_letter(tmp_path, "spring-main-c1-aaaa", "c1", "2000")

    def broken(html: str) -> bytes:
        raise ValueError("no fonts")

    with pytest.raises(WorkFailed, match=f"the letters of {DAY} are written.*no fonts"):
        finish_days(tmp_path, pdf=broken, merge=pdf_merger())
    [bundle] = finish_days(tmp_path, pdf=pdf_writer(), merge=pdf_merger())  # the next run
    assert bundle.pdfs_made == 1 and bundle.pdf is not None


def test_a_deleted_letter_leaves_the_days_bundle(tmp_path: Path) -> None:
    """A forgotten contact's letter deleted: the day is made again without their name and
    address; a day without letters keeps no bundle."""
    kept = _write_letter(tmp_path, "spring-main-c1-aaaa", "c1", "2000")
    gone = _write_letter(tmp_path, "spring-main-c2-bbbb", "c2", "1000")
    finish_days(tmp_path, pdf=pdf_writer(), merge=pdf_merger())
    for path in (gone, gone.with_suffix(".pdf")):
        path.unlink()
    [bundle] = finish_days(tmp_path, pdf=pdf_writer(), merge=pdf_merger())
    assert [r["contact_id"] for r in _addresses(tmp_path)] == ["c1"]
    assert bundle.pdf is not None and len(pypdf.PdfReader(bundle.pdf).pages) == 1
    for path in (kept, kept.with_suffix(".pdf")):
        path.unlink()
    assert finish_days(tmp_path, pdf=pdf_writer(), merge=pdf_merger()) == []
    assert not (tmp_path / DAY.isoformat()).exists()


def test_without_the_pdf_extra_the_address_list_alone(tmp_path: Path) -> None:
    _write_letter(tmp_path, "spring-main-c1-aaaa", "c1", "2000")
    [bundle] = finish_days(tmp_path, pdf=None, merge=None)
    assert bundle.pdf is None and not list(tmp_path.glob("*.pdf"))
    [row] = _addresses(tmp_path)
    assert row["file"].endswith(".html") and row["first_page"] == ""


def test_many_missing_pdfs_are_made_in_parallel_processes(tmp_path: Path) -> None:
    count = letterdays.PARALLEL_FROM + 2
    for i in range(count):
        _write_letter(tmp_path, f"spring-main-c{i:02}-x", f"c{i:02}", f"{1000 + i}")
    [bundle] = finish_days(tmp_path, pdf=pdf_writer(), merge=pdf_merger())
    assert bundle.pdfs_made == count and len(list(tmp_path.glob("*.pdf"))) == count
    assert bundle.pdf is not None and len(pypdf.PdfReader(bundle.pdf).pages) == count


@pytest.mark.parametrize(
    ("html", "printed"),
    [
        ('<a href="https://www.shop.example/x">Kijk</a>', "Kijk (shop.example/x)"),
        ('<a href="https://shop.example/x">https://shop.example/x</a>', "https://shop.example/x"),
        ('<a href="">Meld je af</a> <a href="mailto:a@b.example">mail</a>', "Meld je af mail"),
        ('<img src="http://127.0.0.1:1/x.png" alt="x">', ""),
        ('<img src="data:image/png;base64,AA==" alt="x" srcset="http://x 2x">',
         '<img src="data:image/png;base64,AA==" alt="x">'),
        ('<p style="color: red; background: url(http://x/y.png)">a</p>',
         '<p style="color: red">a</p>'),
        ('<p style="background: u\\72l(http://x)">a</p>', '<p style="">a</p>'),
        ("<script>fetch('http://x')</script><iframe src='http://x'>f</iframe>b", "b"),
        ('<link rel="stylesheet" href="http://x/s.css"><style>@import "http://x";</style>c', "c"),
        ('<svg><image href="http://x/i.png"/></svg><object data="http://x">o</object>d', "d"),
        ('<p onclick="x()" data-src="http://x" background="http://x/b.png">e</p>', "<p>e</p>"),
        ("<!--[if mso]><v:image src='http://x'/><![endif]-->f", "f"),
        ("<head><title>t</title><meta http-equiv=refresh content='0;http://x'></head>g", "g"),
    ],
)  # fmt: skip
def test_a_letter_prints_no_link_and_loads_nothing(html: str, printed: str) -> None:
    assert printable(html) == printed


def test_letter_templates_are_no_mails_of_their_own(tmp_path: Path) -> None:
    write_files(tmp_path, {
        "mail.html": MAIL, "mail.en.html": MAIL, "mail.letter.html": LETTER,
        "mail.letter.en.html": LETTER,
    })  # fmt: skip
    templates = MailTemplates(tmp_path)
    assert templates.mail_names() == ["mail"]
    assert templates.locales_of("mail") == ["en"]
    assert templates.locales_of("mail.letter") == ["en"]


def test_templates_check_renders_the_letters(
    cli: Cli, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # the table of problems on one line each
    shop(cli, engine)
    assert cli("templates", "check").exit_code == 0
    write_files(cli.project, {
        "templates/mail.letter.html": LETTER + '<img src="https://x.example/logo.png" alt="">\n'
        "{{ contact.nickname }}",
    })  # fmt: skip
    result = cli("templates", "check")
    assert result.exit_code != 0
    assert "letter mail.letter" in result.output
    assert "mail.letter.html, line 4" in result.output and "nickname" in result.output
    write_files(cli.project, {
        "templates/mail.letter.html": LETTER + '<img src="https://x.example/logo.png" alt="">\n'
    })  # fmt: skip
    result = cli("templates", "check")
    assert "an image a letter cannot print" in result.output


# ---------------------------------------------------------------------- in a browser

BAIT = """\
<title>{% block subject %}Lokaas{% endblock %}</title>
<link rel="stylesheet" href="http://127.0.0.1:PORT/style.css">
<p style="background-image: url(http://127.0.0.1:PORT/bg.png)">Brief voor {{ contact.first_name }}
</p>
<img src="http://127.0.0.1:PORT/x.png" alt="logo">
<img src="{{ open_pixel_url or 'http://127.0.0.1:PORT/pixel.png' }}" alt="">
<p><a href="http://127.0.0.1:PORT/link">Klik hier</a>
of <a href="{{ unsubscribe_url }}">meld je af</a></p>
<script src="http://127.0.0.1:PORT/x.js"></script>
<iframe src="http://127.0.0.1:PORT/frame"></iframe>
"""


@pytest.fixture
def recorder() -> Iterator[tuple[int, list[str]]]:
    """A loopback HTTP server that records every request it gets."""
    requests: list[str] = []

    class Recorder(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_port, requests
    finally:
        server.shutdown()
        server.server_close()


def test_a_letter_in_chromium_and_as_pdf_has_no_link_and_fetches_nothing(
    cli: Cli,
    engine: Engine,
    smtp_server: SmtpServer,
    tmp_path: Path,
    browser: Any,
    recorder: tuple[int, list[str]],
) -> None:
    port, requests = recorder
    tracking = f'\n[tracking]\nbase_url = "http://127.0.0.1:{port}"\n'
    shop(cli, engine, settings=tracking)  # the open pixel would be fetched from `recorder`
    write_files(cli.project, {"templates/mail.letter.html": BAIT.replace("PORT", str(port))})
    folder = tmp_path / "letters"
    send(cli, smtp_server, folder)
    assert (folder / DAY.isoformat() / LETTERS_PDF).exists()
    pdfs = sorted(folder.glob("*.pdf"))
    assert len(pdfs) == 3
    for pdf in pdfs:
        text = pypdf.PdfReader(pdf).pages[0].extract_text() or ""
        assert "Brief voor" in text and "Klik hier" in text
        assert not any("/Annots" in page for page in pypdf.PdfReader(pdf).pages)  # no links

    page = browser.new_page()
    attempted: list[str] = []
    page.on("request", lambda request: attempted.append(request.url))
    for letter in sorted(folder.glob("*.html")):
        page.goto(letter.as_uri(), wait_until="networkidle")
        assert page.locator("a").count() == 0 and page.locator("[href]").count() == 0
        assert page.locator("img, script, iframe, link").count() == 0
        text = page.inner_text("body")
        assert "Brief voor" in text and "Klik hier (127.0.0.1:" in text
        assert "meld je af" in text and "/u/" not in text  # the words, not a link
    assert [url for url in attempted if not url.startswith("file:")] == []
    # The Content-Security-Policy holds even for what the page would not have kept.
    letter = sorted(folder.glob("*.html"))[0]
    planted = letter.with_name("planted.html")
    planted.write_text(
        letter.read_text(encoding="utf-8").replace(
            '<div class="letter">',
            f'<div class="letter"><img src="http://127.0.0.1:{port}/planted.png" alt="">'
            f'<div style="background: url(http://127.0.0.1:{port}/bg2.png)">x</div>',
        ),
        encoding="utf-8",
    )
    page.goto(planted.as_uri(), wait_until="networkidle")
    assert page.locator("img").count() == 1
    page.close()
    assert requests == []  # the loopback server was never asked for anything
