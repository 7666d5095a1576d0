"""A small shop planned for 2027, for the calendar's tests: a scheduled spring mail with two
variants, a monthly newsletter, a birthday and a welcome journey, one mail a week (so some
sends are deferred and some dropped), and Anouk, whose year the contact filter shows."""

from __future__ import annotations

from tests.conftest import Cli, write_files
from tests.planning.shop import TEMPLATE, policy

CONTACTS = """\
id,email,first_name,last_name,birthday,customer_since,household,channel
anouk,anouk@x.example,Anouk,de Vries,1990-04-01,2019-06-03,family,email
bram,bram@x.example,Bram,Jansen,1985-04-01,2021-09-14,single,email
cor,cor@x.example,Cor,Smit,1970-07-20,2026-12-21,family,post
dina,dina@x.example,Dina,Bakker,2001-12-24,2018-02-02,,email
eef,eef@x.example,Eef,Visser,1999-04-27,2020-04-27,single,none
"""
FILES = {
    "segments/families.yaml": "where:\n  attribute: household\n  equals: family\n",
    "templates/mail.html": TEMPLATE,
    "templates/family.html": TEMPLATE,
    "templates/welcome.html": TEMPLATE,
    "campaigns/spring.yaml": (
        "description: Spring\nkind: promotional\npriority: 50\n"
        'schedule:\n  rrule: "FREQ=YEARLY;BYMONTH=4;BYMONTHDAY=2"\n'
        "variants:\n  - segment: families\n    template: family\n  - template: mail\n"
    ),
    "campaigns/news.yaml": (
        "description: News\nkind: promotional\npriority: 20\n"
        'schedule:\n  rrule: "FREQ=MONTHLY;BYMONTHDAY=1"\ntemplate: mail\n'
    ),
    "campaigns/birthday.yaml": "kind: lifecycle\npriority: 80\ntrigger: birthday\ntemplate: mail\n",
    "campaigns/welcome.yaml": (
        "kind: lifecycle\npriority: 90\ntrigger: signup\nsteps:\n"
        "  - {after: 0d, template: welcome}\n  - {after: 14d, template: welcome}\n"
    ),
}
SENDS = ("planned", "deferred")
WIDTHS = {"phone": (375, 812), "desktop": (1280, 900)}


def planned_shop(cli: Cli) -> Cli:
    """The shop, planned for 2027 as of 1 December 2026 (one mail a week: some deferred)."""
    write_files(cli.project, {**FILES, "contacts.csv": CONTACTS})
    settings = cli.project / "trouw.toml"
    settings.write_text(settings.read_text() + policy(week=1), encoding="utf-8")
    result = cli("import", "contacts", str(cli.project / "contacts.csv"))
    assert result.exit_code == 0, result.output
    result = cli("plan", "2027", "--as-of", "2026-12-01")
    assert result.exit_code == 0, result.output
    return cli
