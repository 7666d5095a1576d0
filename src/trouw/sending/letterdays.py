"""A day's letters for the print house: one PDF and an address list, beside the letters.

The letter box writes each letter as it goes (`DAY-...html`, named by the
run's day); making PDFs is slow (about 0.1 s a letter) and would hold up the
mail of the same run, so they are made when the run ends, by `finish_days`:
for each day whose letters changed, the letters' missing PDFs (in a few
processes when there are many), then in the day's folder

    DIR/2027-03-01/letters.pdf     every letter of the day, one after the other
    DIR/2027-03-01/addresses.csv   one row per letter, in the same order

sorted for the post: domestic letters first, then by country, postcode and
contact. The address list has the contact, the address lines, the letter's
file, and where it starts in letters.pdf and how many pages it has. A day is
made again from all of its letters, those of earlier runs too, so several
runs a day (and several workers at once: a lock file serializes them) end
with one complete bundle. A run stopped before it finished leaves the day
to the next run, which finds the day's letters newer than its address list.
A letter deleted (`trouw contacts forget`) leaves the day's bundle at the next
run (or at a call of `finish_days`), and a day without letters has none.
Without the `pdf` extra there is the address list only.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from trouw.errors import WorkFailed
from trouw.sending.letters import ADDRESS_FIELDS, PdfWriter, address_of, pdf_writer

LETTERS_PDF = "letters.pdf"
ADDRESSES_CSV = "addresses.csv"
COLUMNS = (*ADDRESS_FIELDS, "file", "first_page", "pages")
LOCK_FILE = ".trouw-letters.lock"
_LETTER = re.compile(r"(\d{4}-\d{2}-\d{2})-.+\.html")
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
# From this many missing PDFs on, they are made in parallel processes, one more per as
# many again (each takes a second or two to start: WeasyPrint's import, about ten PDFs).
PARALLEL_FROM = 32
MAX_WORKERS = 4


@dataclass(frozen=True)
class DayBundle:
    """What `finish_days` wrote for one day."""

    day: str
    letters: int
    pdfs_made: int
    pdf: Path | None  # None without the `pdf` extra
    addresses: Path


PdfMerger = Callable[[Sequence[Path]], tuple[bytes, list[int]]]


def pdf_merger() -> PdfMerger | None:
    """A function from PDF files to one PDF (and each file's page count), or None without
    the `pdf` extra (pypdf)."""
    try:
        import pypdf
    except ImportError:
        return None

    def merge(paths: Sequence[Path]) -> tuple[bytes, list[int]]:
        writer = pypdf.PdfWriter()
        counts = []
        for path in paths:
            reader = pypdf.PdfReader(path)
            for page in reader.pages:
                writer.add_page(page)
            counts.append(len(reader.pages))
        out = io.BytesIO()
        writer.write(out)
        return out.getvalue(), counts

    return merge


def write_atomically(path: Path, data: bytes) -> None:
    """A crash never leaves half a file under the final name; a rewrite replaces it."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def finish_days(
    folder: Path,
    *,
    pdf: PdfWriter | None = None,
    merge: PdfMerger | None = None,
) -> list[DayBundle]:
    """Bring the bundle of every day whose letters changed since its address list (one
    written or deleted, e.g. by `trouw contacts forget`) up to date, and remove the bundle
    of a day that has no letters left (see the module's docstring); what was made, by day.
    """
    if not folder.is_dir():
        return []
    with _locked(folder):
        letters: dict[str, list[os.DirEntry[str]]] = {}
        bundled: list[str] = []
        with os.scandir(folder) as entries:
            for entry in entries:
                found = _LETTER.fullmatch(entry.name)
                if found:
                    letters.setdefault(found.group(1), []).append(entry)
                elif _DAY.fullmatch(entry.name) and entry.is_dir():
                    bundled.append(entry.name)
        for day in bundled:
            if day not in letters:  # its letters are gone: so are their names and addresses
                for name in (LETTERS_PDF, ADDRESSES_CSV):
                    (folder / day / name).unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    (folder / day).rmdir()
        done = []
        for day in sorted(letters):
            if _stale(folder / day, letters[day]):
                names = [entry.name for entry in letters[day]]
                try:
                    done.append(_finish(folder, day, names, pdf, merge))
                except Exception as exc:  # the day stays stale: the next run tries again
                    raise WorkFailed(
                        f"the letters of {day} are written, but not their PDFs and address "
                        f"list in {folder / day}: {exc}"
                    ) from exc
        return done


def _stale(bundle: Path, letters: Sequence[os.DirEntry[str]]) -> bool:
    try:
        made = (bundle / ADDRESSES_CSV).stat().st_mtime_ns
    except FileNotFoundError:
        return True
    # A letter written in the same clock tick as the list counts as newer: the file
    # system's times are coarser than the writes, and making a day again costs little.
    if any(entry.stat().st_mtime_ns >= made for entry in letters):
        return True
    with (bundle / ADDRESSES_CSV).open(encoding="utf-8", newline="") as listed:
        files = {row.get("file", "").rsplit(".", 1)[0] for row in csv.DictReader(listed)}
    return files != {entry.name[: -len(".html")] for entry in letters}


def _finish(
    folder: Path,
    day: str,
    names: list[str],
    pdf: PdfWriter | None,
    merge: PdfMerger | None,
) -> DayBundle:
    rows = []
    for name in names:
        address = address_of((folder / name).read_text(encoding="utf-8"))
        rows.append({**address, "file": name})
    # Sorted for the post: domestic first, then by country and postcode.
    rows.sort(
        key=lambda r: (
            r["abroad"],
            r["country"] if r["abroad"] else "",
            r["postcode"].replace(" ", ""),
            r["contact_id"],
            r["file"],
        )
    )
    bundle = folder / day
    bundle.mkdir(exist_ok=True)
    made = 0
    merged = None
    if pdf is not None:
        missing = [folder / r["file"] for r in rows if _needs_pdf(folder / r["file"])]
        make_pdfs(missing, pdf)
        made = len(missing)
        for row in rows:
            row["file"] = _pdf_name(row["file"])
        if merge is not None:
            data, counts = merge([folder / row["file"] for row in rows])
            page = 1
            for row, count in zip(rows, counts, strict=True):
                row["first_page"], row["pages"] = str(page), str(count)
                page += count
            merged = bundle / LETTERS_PDF
            write_atomically(merged, data)
    text = io.StringIO()
    writer = csv.DictWriter(text, COLUMNS, restval="", extrasaction="ignore", lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    addresses = bundle / ADDRESSES_CSV
    # Written last: its time says the day is complete up to here (see `_stale`).
    write_atomically(addresses, text.getvalue().encode("utf-8"))
    return DayBundle(day, len(rows), made, merged, addresses)


def _needs_pdf(letter: Path) -> bool:
    """No PDF yet, or one older than the letter (written again)."""
    try:
        return letter.with_suffix(".pdf").stat().st_mtime_ns < letter.stat().st_mtime_ns
    except FileNotFoundError:
        return True


def _pdf_name(letter: str) -> str:
    return letter[: -len(".html")] + ".pdf"


def make_pdfs(letters: Sequence[Path], pdf: PdfWriter) -> None:
    """Each letter's PDF beside it; many at once in a few processes.

    This process makes its share while helpers make theirs: fresh interpreters
    (running `_work`, their letters' paths on stdin), not forks of this process
    with its threads and connections. What a helper leaves undone (it died) is
    made here after.
    """
    workers = min(os.cpu_count() or 1, MAX_WORKERS, len(letters) // PARALLEL_FROM + 1)
    helpers = []
    try:
        for index in range(1, workers):
            with tempfile.TemporaryFile("w+", encoding="utf-8") as share:
                share.writelines(f"{path}\n" for path in letters[index::workers])
                share.seek(0)
                command = [sys.executable, "-c", f"from {__name__} import _work; _work()"]
                helpers.append(subprocess.Popen(command, stdin=share))
        for letter in letters[::workers]:
            _write_pdf(letter, pdf)
        for helper in helpers:
            helper.wait()
    finally:
        for helper in helpers:
            if helper.poll() is None:  # interrupted: stop them all
                helper.kill()
                helper.wait()
    for letter in letters:
        if workers > 1 and _needs_pdf(letter):
            _write_pdf(letter, pdf)


def _write_pdf(letter: Path, pdf: PdfWriter) -> None:
    data = pdf(letter.read_text(encoding="utf-8"))
    write_atomically(letter.with_suffix(".pdf"), data)


def _work() -> None:
    """A worker process: the PDF of each letter named on stdin."""
    pdf = pdf_writer()
    if pdf is None:
        raise SystemExit("the pdf extra is not installed")
    for line in sys.stdin:
        if line.strip():
            _write_pdf(Path(line.strip()), pdf)


__all__ = ["DayBundle", "finish_days", "make_pdfs", "pdf_merger", "write_atomically"]
