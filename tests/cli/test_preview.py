"""`trouw templates check`, `trouw preview` and the preview web page (also in a real browser)."""

from __future__ import annotations

import email
import shutil
import socket
import subprocess
import sys
import time
from datetime import date
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from tests.conftest import Cli, write_files
from trouw.demo.generator import write_demo_files
from trouw.importing import import_contacts, import_events
from trouw.preview.app import create_app
from trouw.project import load_project
from trouw.store import open_store

REPO = Path(__file__).resolve().parents[2]
AS_OF = "2027-04-01"


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The repository's example project with 150 demo customers, in a private database."""
    root = tmp_path_factory.mktemp("example")
    for name in ("trouw.toml", "segments", "templates", "campaigns"):
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name)
        else:
            shutil.copy(source, root / name)
    url = f"sqlite:///{root / 'trouw.db'}"
    engine = open_store(url)
    files = write_demo_files(root / "demo", contacts=150, as_of=date.fromisoformat(AS_OF))
    import_contacts(engine, files.contacts_path, timezone="Europe/Amsterdam")
    import_events(engine, files.events_path, timezone="Europe/Amsterdam")
    engine.dispose()
    return root, url


@pytest.fixture
def example_cli(example: tuple[Path, str]) -> Cli:
    return Cli(*example)


def test_templates_check_passes_on_the_example_project(example_cli: Cli) -> None:
    result = example_cli("templates", "check", "--as-of", AS_OF)
    assert result.exit_code == 0, result.output
    assert "0 problems" in result.output
    assert "locales: en, nl" in result.output


def test_templates_check_reports_a_missing_variable_with_file_and_line(cli: Cli) -> None:
    write_files(
        cli.project,
        {
            "templates/hello.html": "{% block subject %}Hi{% endblock %}\n"
            "<p>{{ contact.first_name }}</p>\n<p>{{ contact.nickname }}</p>\n"
            '{% include "trouw/footer.html" %}\n',
            "campaigns/hello.yaml": "template: hello\n",
        },
    )
    result = cli("templates", "check", "--as-of", AS_OF)
    assert result.exit_code == 2
    output = " ".join(result.output.split())
    assert "hello.html, line 3" in output.replace("│ ", "").replace(" │", "") or (
        "hello.html" in output and "line 3" in output
    )
    assert "nickname" in output


def test_templates_check_reports_a_missing_template(cli: Cli) -> None:
    write_files(cli.project, {"campaigns/hello.yaml": "description: x\ntemplate: nowhere\n"})
    result = cli("templates", "check", "--as-of", AS_OF)
    assert result.exit_code == 2
    assert "no template 'nowhere'" in result.output


def test_preview_prints_and_writes_html_text_and_eml(example_cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = example_cli(
        "preview", "spring-outing", "--contact", "demo-000001", "--out", str(out), "--as-of", AS_OF
    )
    assert result.exit_code == 0, result.output
    assert "Subject:" in result.output
    html = (out / "spring-outing-demo-000001.html").read_text(encoding="utf-8")
    text = (out / "spring-outing-demo-000001.txt").read_text(encoding="utf-8")
    assert "style=" in html and text.strip()
    message = email.message_from_bytes(
        (out / "spring-outing-demo-000001.eml").read_bytes(), policy=default_policy
    )
    assert isinstance(message, EmailMessage)
    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == [
        "text/plain",
        "text/html",
    ]
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "https://t.huisentuin.example/u/" in message["List-Unsubscribe"]


def test_preview_of_a_journey_step(example_cli: Cli) -> None:
    result = example_cli("preview", "welcome:2", "--contact", "demo-000001", "--as-of", AS_OF)
    assert result.exit_code == 0, result.output
    assert "welcome:2 → welcome/get-more-out-of-it" in result.output
    bad = example_cli("preview", "welcome:9", "--contact", "demo-000001", "--as-of", AS_OF)
    assert bad.exit_code == 2
    assert "no step '9'" in bad.output


def test_preview_says_when_a_contact_matches_no_variant(cli: Cli) -> None:
    write_files(
        cli.project,
        {
            "contacts.csv": "id,first_name,household\nc1,Anna,couple\n",
            "segments/families.yaml": "where:\n  attribute: household\n  equals: family\n",
            "templates/family.html": "{% block subject %}Hi {{ contact.first_name }}{% endblock %}",
            "campaigns/outing.yaml": "variants:\n  - {segment: families, template: family}\n",
        },
    )
    assert cli("import", "contacts", str(cli.project / "contacts.csv")).exit_code == 0
    result = cli("preview", "outing", "--contact", "c1", "--as-of", AS_OF)
    assert result.exit_code == 0, result.output
    assert "matches no variant" in result.output
    assert "no mail rendered" in result.output


def test_preview_of_an_unknown_campaign_is_a_usage_error(cli: Cli) -> None:
    result = cli("preview", "nope")
    assert result.exit_code == 2
    assert "no campaign 'nope'" in result.output


def test_preview_app_pages(example: tuple[Path, str]) -> None:
    root, url = example
    engine: Engine = open_store(url)
    try:
        app = create_app(load_project(root), engine, as_of=date.fromisoformat(AS_OF))
        client = app.test_client()
        index = client.get("/")
        assert index.status_code == 200 and b"spring-outing" in index.data
        page = client.get("/campaign/spring-outing?contact=demo-000001")
        assert page.status_code == 200
        assert b'id="mail-frame"' in page.data and b"List-Unsubscribe" in page.data
        frame = client.get("/mail/spring-outing/main/demo-000001.html")
        assert frame.status_code == 200 and b"style=" in frame.data
        assert client.get("/campaign/nope").status_code == 404
    finally:
        engine.dispose()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for(port: int, process: subprocess.Popen[bytes], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"trouw preview --serve exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"trouw preview --serve did not listen on port {port}")


@pytest.mark.slow
def test_preview_page_in_a_real_browser(example: tuple[Path, str], browser: Any) -> None:
    """Start `trouw preview --serve`, pick a campaign and contact in Chromium, see their name."""
    root, url = example
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "trouw", "--project", str(root), "--db", url,
         "preview", "--serve", "--port", str(port), "--as-of", AS_OF],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_for(port, process)
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{port}/", timeout=30_000)
        page.click("a.campaign-link:text-is('spring-outing')")
        page.wait_for_selector("a.contact-link")
        link = page.locator("a.contact-link").nth(1)
        contact_id = link.get_attribute("data-contact")
        link.click()
        page.wait_for_selector("#mail-frame")
        name = page.inner_text("#contact-name")
        assert contact_id and contact_id in page.inner_text("#mail-meta")
        first_name = name.split()[0]
        frame = page.frame_locator("#mail-frame")
        assert first_name in frame.locator("body").inner_text(timeout=30_000)
        assert first_name in page.inner_text("#text-part")
        # The contact picker: any id, typed in.
        page.fill("#contact-input", "demo-000002")
        page.click("#contact-picker button")
        page.wait_for_url("**contact=demo-000002**")  # the new page, not the old one
        page.wait_for_selector("#mail-frame")
        assert "demo-000002" in page.inner_text("#mail-meta")
    finally:
        process.terminate()
        process.wait(timeout=10)
