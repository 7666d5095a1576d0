"""The cron and systemd examples in scripts/cron/, run the way cron and systemd run them.

The command lines are read from the files themselves: the crontab's variable
lines and jobs (`%` as cron reads it), the units' WorkingDirectory,
EnvironmentFile, ExecStart and SuccessExitStatus (`$$` and `%%` as systemd reads
them). The paths the files tell a shop to adjust (SHOP and TROUW; /srv/trouw/shop,
/srv/trouw/venv/bin/trouw and /etc/trouw/shop.env) point into a small project
made with `trouw init`, with the example contacts imported: two by mail, one by
post. The jobs run with cron's bare environment, against SQLite (the project's
own .trouw/trouw.db) and PostgreSQL (TROUW_DATABASE_URL, as the files say), the
mail going to an SMTP server on loopback (TROUW_SMTP_URL) and the letters into
the project's [letters] dir.

The one thing not as in production is the clock: `date` is a shim that answers
for a given moment (the jobs take their days from it), and each job runs at a
moment its own schedule names (the crontab's fields, the timers' OnCalendar).
The starter's send_window is taken out of the project, because the send judges
it by the real clock.
"""

from __future__ import annotations

import csv
import io
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from tests.sending.conftest import SmtpServer
from trouw.cli import main
from trouw.store import ledger, open_store

CRON = Path(__file__).resolve().parents[2] / "scripts" / "cron"
SHOP, TROUW, ENV_FILE = "/srv/trouw/shop", "/srv/trouw/venv/bin/trouw", "/etc/trouw/shop.env"
ZONE = "Europe/Amsterdam"  # the machine's zone in these runs, as the project's
NEWSLETTER_DAY = "2027-04-06"  # the starter's newsletter: the first Tuesday of the month

pytestmark = pytest.mark.slow


# ---------------------------------------------------------------------- reading the files


@dataclass(frozen=True)
class CronJob:
    schedule: tuple[str, str, str, str, str]  # minute hour day-of-month month day-of-week
    command: str  # as the shell gets it: `\%` read as `%`
    stdin: str | None  # what followed the first unescaped `%`


def read_crontab(path: Path) -> tuple[dict[str, str], list[CronJob]]:
    """The variables and the jobs of a crontab, as cron reads them."""
    variables: dict[str, str] = {}
    jobs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        assignment = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)", line)
        if assignment:
            value = assignment.group(2)
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            variables[assignment.group(1)] = value  # cron expands nothing here
            continue
        parts = line.split(None, 5)
        command, stdin = _cron_percent(parts[5])
        jobs.append(CronJob((parts[0], parts[1], parts[2], parts[3], parts[4]), command, stdin))
    return variables, jobs


def _cron_percent(text: str) -> tuple[str, str | None]:
    """crontab(5): an unescaped `%` ends the command (the rest, `%` as newlines, is its
    input); `\\%` is a `%`."""
    command, index = [], 0
    while index < len(text):
        if text.startswith("\\%", index):
            command.append("%")
            index += 2
        elif text[index] == "%":
            return "".join(command), text[index + 1 :].replace("%", "\n")
        else:
            command.append(text[index])
            index += 1
    return "".join(command), None


def cron_runs_at(schedule: tuple[str, ...], when: datetime) -> bool:
    """Whether cron starts a job with these five fields at `when` (no names, no @-forms)."""
    values = (when.minute, when.hour, when.day, when.month, when.isoweekday() % 7)
    return all(_field_has(field, value) for field, value in zip(schedule, values, strict=True))


def _field_has(field: str, value: int) -> bool:
    for part in field.split(","):
        step = 1
        if "/" in part:
            part, by = part.split("/")
            step = int(by)
        if part == "*":
            low, high = 0, 59
        elif "-" in part:
            low, high = (int(x) for x in part.split("-"))
        else:
            low = high = int(part)
        if low <= value <= high and (value - low) % step == 0:
            return True
    return False


def read_unit(path: Path) -> dict[str, list[str]]:
    """`Section.Key` -> its values, in order (ExecStart may come more than once)."""
    found: dict[str, list[str]] = {}
    section = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        found.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return found


def exec_argv(line: str, environment: dict[str, str]) -> list[str]:
    """An ExecStart= line as systemd.service(5) runs it: `%%` is `%`, `$$` is `$`, and
    `$NAME`/`${NAME}` are the unit's environment (no specifiers are used by ours)."""

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in ("%%", "$$"):
            return token[0]
        if token.startswith("%"):
            raise AssertionError(f"a specifier the test does not know: {token} in {line}")
        return environment.get(token.strip("${}"), "")

    text = re.sub(r"%%|\$\$|%.|\$\{\w+\}|\$\w+", replace, line)
    return shlex.split(text.lstrip("-@:+!"))


def read_env_file(path: Path) -> dict[str, str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    pairs = (line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


# ---------------------------------------------------------------------- the machine


@dataclass
class Machine:
    """A shop as the examples expect one: the project, `trouw` in a "virtualenv", a
    clock, and the environment every job gets."""

    root: Path
    shop: Path
    trouw: Path
    bin: Path
    env_file: Path
    database: str  # the URL the test reads the ledger with
    settings: dict[str, str]  # TROUW_SMTP_URL, and TROUW_DATABASE_URL on PostgreSQL

    def base_env(self, now: str) -> dict[str, str]:
        """What cron gives a job (HOME, LOGNAME, SHELL, PATH), the machine's zone, and the
        clock the `date` shim reads."""
        return {
            "HOME": str(self.root),
            "LOGNAME": "trouw",
            "SHELL": "/bin/sh",
            "PATH": f"{self.bin}:/usr/bin:/bin",  # the shim first; cron's PATH after it
            "TZ": ZONE,
            "TROUW_TEST_NOW": now,
        }

    def ledger(self) -> dict[str, str]:
        engine = open_store(self.database)
        try:
            with engine.connect() as connection:
                rows = connection.execute(select(ledger.c.contact_id, ledger.c.status))
                return {str(r[0]): str(r[1]) for r in rows}
        finally:
            engine.dispose()


@pytest.fixture
def machine(tmp_path: Path, db_url: str, smtp_server: SmtpServer) -> Machine:
    shop = tmp_path / "shop"
    runner = CliRunner()
    made = runner.invoke(main, ["init", str(shop)], catch_exceptions=False)
    assert made.exit_code == 0, made.output
    # The send window is judged by the real clock, which the shim does not move.
    settings = shop / "trouw.toml"
    text = re.sub(r"(?m)^send_window\s*=.*\n", "", settings.read_text(encoding="utf-8"))
    settings.write_text(text, encoding="utf-8")
    postgres = not db_url.startswith("sqlite")
    database = db_url if postgres else f"sqlite:///{shop / '.trouw' / 'trouw.db'}"
    contacts = shop / "examples" / "contacts.csv"
    imported = runner.invoke(
        main,
        ["--project", str(shop), "--db", database, "import", "contacts", str(contacts)],
        catch_exceptions=False,
    )
    assert imported.exit_code == 0, imported.output
    bin_dir = tmp_path / "bin"
    venv = tmp_path / "venv" / "bin"
    for folder in (bin_dir, venv):
        folder.mkdir(parents=True)
    real_date = shutil.which("date", path="/usr/bin:/bin")
    assert real_date is not None
    _script(bin_dir / "date", f'exec {real_date} -d "$TROUW_TEST_NOW" "$@"')
    trouw = venv / "trouw"
    _script(trouw, f'exec {shlex.quote(sys.executable)} -m trouw "$@"')
    settings_env = {"TROUW_SMTP_URL": smtp_server.url}
    if postgres:
        settings_env["TROUW_DATABASE_URL"] = db_url
    env_file = tmp_path / "shop.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in settings_env.items()), "utf-8")
    return Machine(tmp_path, shop, trouw, bin_dir, env_file, database, settings_env)


def _script(path: Path, body: str) -> None:
    path.write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
    path.chmod(0o755)


def _moment(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M")


# ---------------------------------------------------------------------- cron


def _cron_job(machine: Machine, job: CronJob, variables: dict[str, str], now: str) -> int:
    assert cron_runs_at(job.schedule, _moment(now)), f"cron does not start {job} at {now}"
    env = machine.base_env(now)
    env.update(variables)
    env.update(machine.settings)  # the crontab's commented settings, filled in
    env.update({"SHOP": str(machine.shop), "TROUW": str(machine.trouw)})
    done = subprocess.run(
        [env.get("SHELL", "/bin/sh"), "-c", job.command],
        cwd=machine.root,  # cron starts in HOME; each job changes to $SHOP itself
        env=env,
        input=job.stdin or "",
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.stdout == "" and done.stderr == "", (done.stdout, done.stderr)  # all logged
    return done.returncode


def test_the_crontab_plans_and_sends_mail_and_letters(
    machine: Machine, smtp_server: SmtpServer
) -> None:
    variables, jobs = read_crontab(CRON / "crontab")
    assert {"SHOP", "TROUW"} <= set(variables)  # the paths the file tells a shop to adjust
    plan_next_year, plan_refresh, send = jobs
    assert " plan " in plan_next_year.command and " send " in send.command
    # December: next year's plan; the 1st of April: this year's again; then the hourly send.
    assert _cron_job(machine, plan_next_year, variables, "2026-12-01 02:15") == 0
    assert _cron_job(machine, plan_refresh, variables, "2027-04-01 02:45") == 0
    assert _cron_job(machine, send, variables, f"{NEWSLETTER_DAY} 10:05") == 0
    assert sorted(m.rcpt_tos[0] for m in smtp_server.handler.received) == [
        "anna.de.vries@example.com",
        "tom.baker@example.com",
    ]
    _assert_the_letter_arrived(machine)
    # The next hour's run finds nothing owed: nothing twice.
    assert _cron_job(machine, send, variables, f"{NEWSLETTER_DAY} 11:05") == 0
    assert len(smtp_server.handler.received) == 2
    assert machine.ledger() == {"example-1": "sent", "example-2": "sent", "example-3": "sent"}
    logs = machine.shop / ".trouw" / "logs"
    assert "sent 3" in (logs / "send.log").read_text(encoding="utf-8")
    assert (logs / "plan.log").stat().st_size > 0


def _assert_the_letter_arrived(machine: Machine) -> None:
    letters = machine.shop / "letters"  # the starter's [letters] dir
    [letter] = letters.glob(f"{NEWSLETTER_DAY}-*.html")
    assert "Joke Jansen" in letter.read_text(encoding="utf-8")
    assert letter.with_suffix(".pdf").read_bytes().startswith(b"%PDF-")
    day = letters / NEWSLETTER_DAY
    assert (day / "letters.pdf").read_bytes().startswith(b"%PDF-")
    rows = list(csv.DictReader(io.StringIO((day / "addresses.csv").read_text("utf-8"))))
    assert [(r["contact_id"], r["file"]) for r in rows] == [("example-3", letter.stem + ".pdf")]


# ---------------------------------------------------------------------- systemd


def _unit(name: str) -> dict[str, list[str]]:
    return read_unit(CRON / name)


def _service_env(machine: Machine, unit: dict[str, list[str]], now: str) -> dict[str, str]:
    env = machine.base_env(now)
    for line in unit.get("Service.Environment", []):
        for pair in shlex.split(line):
            key, _, value = pair.partition("=")
            env[key] = value
    for line in unit.get("Service.EnvironmentFile", []):
        optional = line.startswith("-")
        assert line.lstrip("-") == ENV_FILE, line  # the path the file names
        if not optional or machine.env_file.exists():
            env.update(read_env_file(machine.env_file))
    return env


def _commands(machine: Machine, unit: dict[str, list[str]], env: dict[str, str]) -> list[list[str]]:
    [directory] = unit["Service.WorkingDirectory"]
    assert directory == SHOP
    argvs = []
    for line in unit["Service.ExecStart"]:
        argv = exec_argv(line, env)
        argvs.append([arg.replace(TROUW, str(machine.trouw)) for arg in argv])
    return argvs


def _timer_fires_at(timer: str, now: str) -> None:
    """The timer's OnCalendar elapses at `now` (systemd-analyze's own reading, when there)."""
    [calendar] = _unit(timer)["Timer.OnCalendar"]
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        return
    before = (_moment(now) - timedelta(minutes=1)).strftime("%Y-%m-%d %H:%M:%S")
    done = subprocess.run(
        [analyze, "calendar", calendar, f"--base-time={before}"],
        capture_output=True,
        text=True,
        env={"TZ": ZONE, "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    assert f"Next elapse: {_moment(now):%a %Y-%m-%d %H:%M}:00" in done.stdout, done.stdout


def _run_service(machine: Machine, name: str, now: str) -> list[int]:
    """Each ExecStart of the service in turn, as a oneshot runs them: stop at a failure."""
    unit = _unit(name)
    env = _service_env(machine, unit, now)
    success = {0, *(int(code) for line in unit.get("Service.SuccessExitStatus", [])
                    for code in line.split())}  # fmt: skip
    codes = []
    for argv in _commands(machine, unit, env):
        done = subprocess.run(
            argv, cwd=machine.shop, env=env, capture_output=True, text=True, timeout=300
        )
        codes.append(done.returncode)
        assert done.returncode in success, (argv, done.stdout, done.stderr)
    return codes


def test_the_systemd_units_plan_and_send_mail_and_letters(
    machine: Machine, smtp_server: SmtpServer
) -> None:
    assert _unit("trouw-plan.service")["Service.Type"] == ["oneshot"]
    verify = shutil.which("systemd-analyze")
    if verify is not None:
        names = ["trouw-plan.service", "trouw-plan.timer", "trouw-send.service", "trouw-send.timer"]
        done = subprocess.run(
            [verify, "verify", *(str(CRON / n) for n in names)], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
    # The 1st of December: this year's plan and next year's.
    _timer_fires_at("trouw-plan.timer", "2026-12-01 02:15")
    assert _run_service(machine, "trouw-plan.service", "2026-12-01 02:15") == [0, 0]
    calendar = CliRunner().invoke(
        main, ["--project", str(machine.shop), "--db", machine.database, "calendar", "2027"]
    )
    assert calendar.exit_code == 0, calendar.output  # next year was planned in December
    # The 1st of April: this year's again (the December line does nothing).
    _timer_fires_at("trouw-plan.timer", "2027-04-01 02:15")
    assert _run_service(machine, "trouw-plan.service", "2027-04-01 02:15") == [0, 0]
    _timer_fires_at("trouw-send.timer", f"{NEWSLETTER_DAY} 10:05")
    assert _run_service(machine, "trouw-send.service", f"{NEWSLETTER_DAY} 10:05") == [0]
    assert len(smtp_server.handler.received) == 2
    _assert_the_letter_arrived(machine)
    assert machine.ledger() == {"example-1": "sent", "example-2": "sent", "example-3": "sent"}


def test_stopping_the_send_service_is_a_clean_stop(
    machine: Machine, smtp_server: SmtpServer
) -> None:
    """`systemctl stop` sends SIGTERM to the service's process: the send finishes the mail
    on the wire, gives the rest back, and exits with a status the unit counts as success."""
    more = "".join(f"x-{i:02},x{i}@example.com,Xan,Mail{i},nl,,,email,,,,NL\n" for i in range(20))
    extra = machine.root / "more.csv"
    header = (machine.shop / "examples" / "contacts.csv").read_text("utf-8").splitlines()[0]
    extra.write_text(header + "\n" + more, encoding="utf-8")
    runner = CliRunner()
    base = ["--project", str(machine.shop), "--db", machine.database]
    assert runner.invoke(main, [*base, "import", "contacts", str(extra)]).exit_code == 0
    assert _run_service(machine, "trouw-plan.service", "2027-04-01 02:15") == [0, 0]
    smtp_server.handler.delay = 0.2  # a slow server: the run is still sending when stopped
    unit = _unit("trouw-send.service")
    now = f"{NEWSLETTER_DAY} 10:05"
    env = _service_env(machine, unit, now)
    [argv] = _commands(machine, unit, env)
    process = subprocess.Popen(
        argv, cwd=machine.shop, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 120
    while not smtp_server.handler.received and time.monotonic() < deadline:
        time.sleep(0.05)
    assert smtp_server.handler.received, "no mail arrived"
    process.send_signal(signal.SIGTERM)  # what systemd sends to the main process
    output = process.communicate(timeout=120)[0].decode()
    [success] = unit["Service.SuccessExitStatus"]
    assert process.returncode == int(success), output  # 143: 128 + SIGTERM
    statuses = machine.ledger()
    assert "sending" not in statuses.values() and "reserved" not in statuses.values()
    stopped_with = len(smtp_server.handler.received)
    assert stopped_with < 22
    # The next hour's run sends the rest, none twice.
    smtp_server.handler.delay = 0.0
    assert _run_service(machine, "trouw-send.service", f"{NEWSLETTER_DAY} 11:05") == [0]
    addresses = [m.rcpt_tos[0] for m in smtp_server.handler.received]
    assert len(addresses) == len(set(addresses)) == 22
    assert set(machine.ledger().values()) == {"sent"}
