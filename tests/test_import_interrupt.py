"""An import killed midway leaves only whole batches: a real process, really killed."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from trouw.store import events, open_store

BATCH = 500
ROWS = 100_000


def _big_events_file(tmp_path: Path) -> Path:
    path = tmp_path / "events.csv"
    with path.open("w", encoding="utf-8") as out:
        out.write("id,contact_id,type,occurred_at,tag\n")
        for n in range(ROWS):
            out.write(f"e{n},c{n % 10},click,2027-01-01T10:00:00,t{n}\n")
    return path


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT], ids=["kill-9", "ctrl-c"])
def test_killed_import_keeps_only_whole_batches(
    project_dir: Path, db_url: str, tmp_path: Path, how: signal.Signals
) -> None:
    contacts_csv = tmp_path / "contacts.csv"
    contacts_csv.write_text("id\n" + "".join(f"c{n}\n" for n in range(10)), encoding="utf-8")
    base = [sys.executable, "-m", "trouw", "--project", str(project_dir), "--db", db_url]
    subprocess.run([*base, "import", "contacts", str(contacts_csv)], check=True)
    events_csv = _big_events_file(tmp_path)
    engine = open_store(db_url)

    def imported() -> int:
        with engine.connect() as connection:
            return connection.execute(select(func.count()).select_from(events)).scalar_one()

    process = subprocess.Popen(
        [*base, "import", "events", "--batch-size", str(BATCH), str(events_csv)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while imported() < 5 * BATCH and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(how)
    process.wait(timeout=60)
    assert process.returncode != 0, "the import finished before it could be interrupted"

    count = imported()
    assert 0 < count < ROWS
    assert count % BATCH == 0, f"{count} rows: a half batch was left behind"
    with engine.connect() as connection:
        ids = set(connection.execute(select(events.c.external_id)).scalars())
    assert ids == {f"e{n}" for n in range(count)}, "the kept rows are exactly the first batches"

    # Running the same import again completes the work without doubles.
    subprocess.run(
        [*base, "import", "events", str(events_csv)], check=True, stdout=subprocess.DEVNULL
    )
    assert imported() == ROWS
    engine.dispose()
