"""Deterministic synthetic customers and behaviour for the Huis & Tuin example shop.

`write_demo_files` writes `contacts.csv` and `events.jsonl` in the formats that
`trouw import` reads. The data is shaped so that every campaign of the example
project finds an audience: new customers, families and singles, lapsed buyers,
cart abandoners, fire-safety clickers without a smoke detector, NPS answers of
every class, birthdays on 29 February.

Same arguments, same bytes: every contact draws from its own `random.Random`
seeded with (seed, number), so contact 17 is the same whether 20 or a million
are generated, and nothing reads the clock. The files are written as the rows
are made, so memory stays flat however many contacts are asked for.
"""

from __future__ import annotations

import csv
import json
import os
import random
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

CONTACT_COLUMNS = (
    "id", "email", "first_name", "last_name", "locale", "timezone", "birthday",
    "customer_since", "channel", "street", "postcode", "city", "country", "household",
    "children", "points",
)  # fmt: skip

SHOP_URL = "https://www.huisentuin.example"
ZONE = ZoneInfo("Europe/Amsterdam")

# Customers joined over the last eight years; 8% in the last 90 days, so the
# welcome trajectory always has an audience.
HISTORY_DAYS = 8 * 365 + 2
NEW_CUSTOMER_SHARE = 0.08
NEW_CUSTOMER_DAYS = 90

# 29 February is rare (about 1 in 1461 random birthdays), and the birthday
# campaign must be seen to handle it, so every 1400th contact, starting with
# number 50, is born on a leap day. Tied to the number, not the total count.
LEAP_DAY_EVERY = 1400
LEAP_DAY_FIRST = 50

# Events happen between 06:00 and midnight local time. Avoiding the night also
# avoids the hour that does not exist (last Sunday of March, 02:00-03:00) and
# the one that happens twice (October), so one UTC offset per day is right.
DAY_START = 6 * 3600
DAY_LENGTH = 18 * 3600
SECONDS_PER_DAY = 86400

# ----------------------------------------------------------------------------- people

FIRST_NAMES = (
    "Jan", "Piet", "Kees", "Henk", "Gerrit", "Willem", "Johannes", "Cornelis", "Hendrik",
    "Pieter", "Sander", "Bas", "Thijs", "Daan", "Sem", "Lucas", "Finn", "Levi", "Noah", "Luuk",
    "Milan", "Jesse", "Bram", "Ruben", "Tim", "Lars", "Niels", "Joost", "Maarten", "Erik",
    "Mark", "Dennis", "Martijn", "Jeroen", "Wouter", "Gert-Jan", "Jan-Willem", "Mohammed",
    "Youssef", "Emre", "Rachid", "Stefan", "Ricardo", "Koen", "Anna", "Maria", "Johanna",
    "Cornelia", "Wilhelmina", "Els", "Ingrid", "Monique", "Sandra", "Marieke", "Linda",
    "Anouk", "Sanne", "Lotte", "Femke", "Fleur", "Eva", "Emma", "Julia", "Sophie", "Tess",
    "Lieke", "Noor", "Mila", "Zoë", "Saar", "Iris", "Fenna", "Yara", "Fatima", "Ayşe", "Esra",
    "Chantal", "Petra", "Annelies", "Joke", "Truus", "Ria", "Anne-Marie", "Renée", "Inge",
    "Mirjam", "Naomi", "Priya", "Shanti", "Kim",
)  # fmt: skip

# Tussenvoegsels belong to the last name ("van der Meer"), as the shop's
# customer file keeps them; a few names from Dutch families of other origins.
LAST_NAMES = (
    "de Jong", "Jansen", "de Vries", "van den Berg", "van Dijk", "Bakker", "Janssen",
    "Visser", "Smit", "Meijer", "de Boer", "Mulder", "de Groot", "Bos", "Vos", "Peters",
    "Hendriks", "van Leeuwen", "Dekker", "Brouwer", "de Wit", "Dijkstra", "Smits",
    "de Graaf", "van der Meer", "van der Linden", "Kok", "Jacobs", "de Haan", "Vermeulen",
    "van den Heuvel", "van der Veen", "van den Broek", "de Bruijn", "de Bruin",
    "van der Heijden", "Schouten", "van Beek", "Willems", "van Vliet", "van de Ven",
    "Hoekstra", "Maas", "Verhoeven", "Koster", "van Dam", "van der Wal", "Prins", "Blom",
    "Huisman", "Peeters", "van den Bosch", "Kuipers", "Veenstra", "Kramer", "van der Laan",
    "Post", "Scholten", "van Wijk", "Postma", "Martens", "Vink", "de Ruiter", "Timmermans",
    "Groen", "Gerritsen", "Jonker", "van Loon", "van der Velde", "Willemsen", "Smeets",
    "de Lange", "de Vos", "van Dongen", "Schipper", "de Koning", "Sanders", "van Rijn",
    "ter Horst", "ten Brink", "in 't Veld", "van 't Hof", "op de Weegh", "Y\u0131lmaz",
    "El Amrani", "Kaya", "Öztürk", "Nguyen", "Pinas", "Biharie", "Wong", "Bouzid",
)  # fmt: skip

STREETS = (
    "Kerkstraat", "Dorpsstraat", "Molenweg", "Schoolstraat", "Stationsweg", "Julianastraat",
    "Beatrixlaan", "Wilhelminastraat", "Oranjestraat", "Nieuwstraat", "Hoofdstraat",
    "Marktplein", "Lindelaan", "Eikenlaan", "Berkenlaan", "Rozenstraat", "Tulpstraat",
    "Sportlaan", "Parallelweg", "Prins Bernhardlaan", "Emmastraat", "Irenestraat",
    "Vondelstraat", "Rembrandtlaan", "Van Goghstraat", "Achterom", "Singel", "Havenstraat",
    "Veldweg", "Esdoornlaan", "Burgemeester de Withstraat", "'t Zand", "Dijkweg",
    "Kastanjelaan", "Meidoornstraat", "Zonnebloemstraat",
)  # fmt: skip
HOUSE_NUMBER_SUFFIXES = ("",) * 16 + ("A", "B", "-1", "-2", " hs", "bis")

# (city, first and last postcode number, weight ~ population in 10,000s)
NL_CITIES = (
    ("Amsterdam", 1011, 1109, 90), ("Rotterdam", 3011, 3089, 65), ("Den Haag", 2491, 2599, 55),
    ("Utrecht", 3511, 3585, 36), ("Eindhoven", 5611, 5658, 24), ("Groningen", 9711, 9747, 24),
    ("Tilburg", 5011, 5049, 22), ("Almere", 1311, 1363, 22), ("Breda", 4811, 4839, 19),
    ("Nijmegen", 6511, 6546, 18), ("Apeldoorn", 7311, 7339, 17), ("Haarlem", 2011, 2037, 16),
    ("Arnhem", 6811, 6846, 16), ("Enschede", 7511, 7548, 16), ("Amersfoort", 3811, 3829, 16),
    ("Zaandam", 1501, 1509, 10), ("'s-Hertogenbosch", 5211, 5237, 16), ("Zwolle", 8011, 8043, 13),
    ("Leiden", 2311, 2334, 13), ("Maastricht", 6211, 6229, 12), ("Dordrecht", 3311, 3329, 12),
    ("Zoetermeer", 2711, 2729, 12), ("Deventer", 7411, 7431, 10), ("Delft", 2611, 2629, 10),
    ("Alkmaar", 1811, 1834, 11), ("Leeuwarden", 8911, 8939, 12), ("Hilversum", 1211, 1223, 9),
    ("Ede", 6711, 6721, 12), ("Gouda", 2801, 2809, 7), ("Emmen", 7811, 7833, 10),
    ("Harderwijk", 3841, 3849, 5), ("Hoorn", 1621, 1628, 7), ("Assen", 9401, 9409, 7),
    ("Wageningen", 6701, 6709, 4), ("Zierikzee", 4301, 4301, 1), ("Drachten", 9201, 9203, 5),
)  # fmt: skip
BE_CITIES = (
    ("Antwerpen", 2000, 2060, 5), ("Gent", 9000, 9052, 3), ("Brussel", 1000, 1000, 2),
    ("Leuven", 3000, 3012, 1), ("Brugge", 8000, 8000, 1), ("Hasselt", 3500, 3500, 1),
)  # fmt: skip
BE_SHARE = 0.03
# Dutch postcodes never use SA, SD or SS (their wartime connotations).
POSTCODE_LETTERS = tuple(
    a + b
    for a in "ABCDEGHJKLMNPRSTVWXZ"
    for b in "ABCDEGHJKLMNPRSTVWXZ"
    if a + b not in ("SA", "SD", "SS")
)

EMAIL_DOMAINS = (
    ("example.nl",) * 12 + ("example.com",) * 5 + ("example.net",) * 2 + ("example.org",)
)

HOUSEHOLDS = ("family", "couple", "single")
# (household, share, youngest and oldest age, most common age)
HOUSEHOLD_AGES = (("family", 0.36, 25, 62, 41), ("couple", 0.34, 20, 85, 56),
                  ("single", 0.30, 18, 85, 33))  # fmt: skip
CHILDREN = (1,) * 30 + (2,) * 45 + (3,) * 18 + (4,) * 7

# ----------------------------------------------------------------------------- the shop

# category -> (product, lowest and highest price in euros)
CATALOGUE: dict[str, tuple[tuple[str, int, int], ...]] = {
    "garden": (("garden-hose", 15, 45), ("lawn-mower", 149, 499), ("garden-chair", 25, 89),
               ("plant-pots", 8, 35), ("hedge-trimmer", 49, 179), ("garden-soil", 4, 12),
               ("seeds", 2, 6)),
    "kitchen": (("pan-set", 49, 199), ("knife-set", 29, 129), ("coffee-maker", 39, 249),
                ("kettle", 19, 59), ("blender", 29, 119), ("oven-dish", 12, 39)),
    "tools": (("drill", 49, 199), ("screwdriver-set", 12, 45), ("ladder", 59, 219),
              ("paint", 15, 69), ("toolbox", 19, 79), ("sander", 39, 129)),
    "fire-safety": (("smoke-detector", 15, 39), ("fire-blanket", 12, 29),
                    ("fire-extinguisher", 29, 79), ("co-detector", 25, 49),
                    ("escape-ladder", 59, 119)),
    "kids": (("sandbox", 29, 99), ("swing", 39, 149), ("kids-bike", 99, 249),
             ("trampoline", 149, 399), ("water-pistol", 5, 15), ("playhouse", 199, 599)),
    "living": (("lamp", 19, 129), ("cushion", 9, 29), ("rug", 39, 249),
               ("candle-set", 7, 25), ("curtains", 29, 119), ("storage-box", 8, 29)),
    "bbq": (("bbq-gas", 199, 799), ("bbq-charcoal", 49, 299), ("bbq-tools", 15, 49),
            ("bbq-cover", 19, 45), ("charcoal", 8, 19)),
    "christmas": (("christmas-tree", 29, 79), ("christmas-lights", 12, 49),
                  ("baubles", 6, 25), ("wreath", 15, 39)),
}  # fmt: skip
SMOKE_DETECTOR = "smoke-detector"

# Shop pages per category, used by page views.
CATEGORY_PAGES = {
    "garden": "/tuin", "kitchen": "/keuken", "tools": "/klussen", "fire-safety": "/brandveiligheid",
    "kids": "/kinderen", "living": "/wonen", "bbq": "/bbq", "christmas": "/kerst",
}  # fmt: skip

# Relative interest per category; a family buys for its kids, nobody else much.
CATEGORY_WEIGHTS = {
    "garden": 18, "kitchen": 16, "tools": 16, "fire-safety": 6, "kids": 3, "living": 18,
    "bbq": 8, "christmas": 4,
}  # fmt: skip
HOUSEHOLD_FACTORS = {"family": {"kids": 8.0, "bbq": 1.3}, "couple": {"garden": 1.3},
                     "single": {"kitchen": 1.3, "garden": 0.6, "living": 1.3}}  # fmt: skip
# Seasons: garden and bbq in spring and summer, christmas in November/December.
MONTH_FACTORS = {
    "garden": (0.3, 0.4, 1.5, 2.5, 2.5, 2.0, 1.5, 1.2, 1.0, 0.8, 0.4, 0.3),
    "bbq": (0.1, 0.1, 0.4, 1.2, 2.5, 3.0, 3.0, 2.0, 0.6, 0.2, 0.1, 0.1),
    "christmas": (0, 0, 0, 0, 0, 0, 0, 0, 0, 0.5, 8.0, 12.0),
    "fire-safety": (1.5, 1.2, 1.0, 0.8, 0.6, 0.6, 0.6, 0.6, 0.8, 1.2, 1.5, 1.8),
}  # fmt: skip

# Click tags -> pages on the shop's site (several, so URLs vary).
CLICK_PAGES = {
    "fire-safety": ("/brandveiligheid/rookmelders", "/brandveiligheid/blusdekens",
                    "/brandveiligheid/tips"),
    "garden": ("/tuin", "/tuin/tuinslangen", "/tuin/grasmaaiers"),
    "family-day-out": ("/uitjes/gezinsdag", "/uitjes/gezinsdag?ticket=kinderen"),
    "evening-out": ("/uitjes/avondje-uit", "/uitjes/avondje-uit?stad=utrecht"),
    "christmas": ("/kerst", "/kerst/verlichting"),
    "points": ("/mijn-punten", "/mijn-punten/inwisselen"),
    "survey": ("/enquete",),
    "kitchen": ("/keuken", "/keuken/pannen"),
    "bbq": ("/bbq", "/bbq/gas"),
    "tools": ("/klussen", "/klussen/boormachines"),
    "newsletter": ("/nieuwsbrief", "/aanbiedingen"),
}  # fmt: skip
CLICK_WEIGHTS = {
    "fire-safety": 5, "garden": 14, "family-day-out": 3, "evening-out": 3, "christmas": 4,
    "points": 8, "survey": 3, "kitchen": 10, "bbq": 6, "tools": 10, "newsletter": 20,
}  # fmt: skip
CLICK_HOUSEHOLD = {"family": {"family-day-out": 6.0}, "couple": {"evening-out": 3.0},
                   "single": {"evening-out": 5.0}}  # fmt: skip
CLICK_MONTHS = {"christmas": MONTH_FACTORS["christmas"], "garden": MONTH_FACTORS["garden"],
                "bbq": MONTH_FACTORS["bbq"]}  # fmt: skip

# Mails that get opened: mostly the newsletter, seasonal actions in their month.
OPEN_TAGS = {"newsletter": (8,) * 12, "points": (1,) * 12, "survey": (1,) * 12,
             "birthday": (1,) * 12, "win-back": (1,) * 12,
             "spring-outing": (0, 0, 0, 4, 2, 0, 0, 0, 0, 0, 0, 0),
             "fire-safety": (0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2),
             "christmas": (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 5),
             "summer-sale": (0, 0, 0, 0, 0, 2, 3, 1, 0, 0, 0, 0)}  # fmt: skip
WELCOME_DAYS = 60

SIGNUP_SOURCES = ("webshop",) * 7 + ("store",) * 3 + ("app",)
COMPLAINT_TAGS = ("delivery", "delivery", "product", "service", "mail")

# NPS class -> share of contacts, NPS score range, CSAT score range.
NPS_CLASSES = ((0.45, 9, 10, 4, 5), (0.30, 7, 8, 3, 4), (0.25, 0, 6, 1, 3))  # fmt: skip


@dataclass(frozen=True)
class DemoFiles:
    """What `write_demo_files` wrote: the two files and how many rows each holds."""

    contacts_path: Path
    events_path: Path
    contacts: int
    events: int


def write_demo_files(folder: Path, *, contacts: int, as_of: date, seed: int = 42) -> DemoFiles:
    """Write `contacts.csv` and `events.jsonl` with `contacts` people into `folder`.

    Rows are written as they are generated, so memory does not grow with the
    count. Each file is written under a temporary name and renamed at the end,
    so an interrupted run leaves no half file behind under the real name.
    """
    if contacts < 0:
        raise ValueError(f"contacts must be 0 or more, got {contacts}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    contacts_path = folder / "contacts.csv"
    events_path = folder / "events.jsonl"
    contacts_partial = folder / "contacts.csv.partial"
    events_partial = folder / "events.jsonl.partial"
    generator = _Generator(as_of, seed)
    written = 0
    buffer = 1 << 20
    with (
        contacts_partial.open("w", encoding="utf-8", newline="", buffering=buffer) as people,
        events_partial.open("w", encoding="utf-8", newline="", buffering=buffer) as behaviour,
    ):
        writer = csv.writer(people, lineterminator="\n")
        writer.writerow(CONTACT_COLUMNS)
        write_lines = behaviour.writelines
        for number in range(1, contacts + 1):
            row, lines = generator.person(number)
            writer.writerow(row)
            write_lines(lines)
            written += len(lines)
    os.replace(contacts_partial, contacts_path)
    os.replace(events_partial, events_path)
    return DemoFiles(contacts_path, events_path, contacts, written)


def demo_contact(number: int, as_of: date, seed: int = 42) -> tuple[dict[str, str], list[Any]]:
    """Contact `number` (1-based) and its events, exactly as `write_demo_files` writes them."""
    row, lines = _Generator(as_of, seed).person(number)
    return dict(zip(CONTACT_COLUMNS, row, strict=True)), [json.loads(line) for line in lines]


def contact_rows(count: int, as_of: date, seed: int = 42) -> Iterator[dict[str, str]]:
    """The first `count` contacts as CSV rows (column -> text)."""
    generator = _Generator(as_of, seed)
    for number in range(1, count + 1):
        row, _ = generator.person(number)
        yield dict(zip(CONTACT_COLUMNS, row, strict=True))


def event_rows(count: int, as_of: date, seed: int = 42) -> Iterator[dict[str, Any]]:
    """The events of the first `count` contacts, as the parsed JSONL objects."""
    generator = _Generator(as_of, seed)
    for number in range(1, count + 1):
        _, lines = generator.person(number)
        for line in lines:
            yield json.loads(line)


# ----------------------------------------------------------------------------- machinery


def _slug(name: str) -> str:
    """A name as an email local part: ASCII, lower case, no spaces or apostrophes."""
    # The Turkish dotless i has no decomposition, so NFKD alone would drop it.
    folded = unicodedata.normalize("NFKD", name.replace("\u0131", "i"))
    return "".join(c for c in folded.lower() if c.isascii() and (c.isalnum() or c == "-"))


def _years_before(day: date, years: int) -> date:
    """The same calendar day `years` earlier; 29 February becomes 28 February."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        return day.replace(year=day.year - years, day=28)


def _table(weights: dict[str, float], scale: int = 400) -> tuple[str, ...]:
    """A lookup table in which each key appears in proportion to its weight.

    Indexing a table with one `random()` is several times cheaper than
    `random.choices`, which matters at ten million events.
    """
    total = sum(weights.values())
    table: list[str] = []
    for key, weight in weights.items():
        table.extend([key] * round(scale * weight / total))
    return tuple(table)


def _field(name: str, value: str) -> str:
    return f",{json.dumps(name)}:{json.dumps(value)}"


def _price_points(low: int, high: int) -> tuple[int, ...]:
    """A handful of shop prices in cents between low and high euros, ending in .95/.99/.49."""
    step = (high - low) / 4
    return tuple(
        max(int(low + step * i) * 100 + ending, 100)
        for i, ending in zip(range(5), (95, 99, 49, 95, 99), strict=True)
    )


def _amount(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


Event = tuple[int, str, str]  # (local seconds, type, the JSON fields after occurred_at)


class _Generator:
    """Tables built once per (as_of, seed); `person(number)` makes one contact."""

    def __init__(self, as_of: date, seed: int) -> None:
        self.seed = seed
        self.as_of = as_of
        self.end = as_of.toordinal()
        # Day tables cover the whole history, indexed by ordinal - base.
        self.base = self.end - HISTORY_DAYS - 1
        self.day_prefix: list[str] = []
        self.day_suffix: list[str] = []
        self.day_month: list[int] = []
        for ordinal in range(self.base, self.end + 1):
            day = date.fromordinal(ordinal)
            offset = datetime.combine(day, time(12), ZONE).utcoffset() or timedelta(0)
            minutes = int(offset.total_seconds()) // 60
            sign = "+" if minutes >= 0 else "-"
            self.day_prefix.append(f"{day.isoformat()}T")
            self.day_suffix.append(f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}")
            self.day_month.append(day.month - 1)
        self.clock = tuple(
            f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(SECONDS_PER_DAY)
        )

        # Birthdays: per household, the range of birth ordinals and the most common one.
        self.ages: list[tuple[str, float, int, int, int]] = []
        for household, share, youngest, oldest, mode in HOUSEHOLD_AGES:
            earliest = _years_before(as_of, oldest + 1).toordinal() + 1
            latest = _years_before(as_of, youngest).toordinal()
            self.ages.append(
                (household, share, earliest, latest, _years_before(as_of, mode).toordinal())
            )
        adults_from = _years_before(as_of, 86).toordinal() + 1
        adults_to = _years_before(as_of, 18).toordinal()
        self.leap_days = tuple(
            date(year, 2, 29).toordinal()
            for year in range(as_of.year - 86, as_of.year - 17)
            if year % 4 == 0
            and (year % 100 != 0 or year % 400 == 0)
            and adults_from <= date(year, 2, 29).toordinal() <= adults_to
        )

        self.first_names = tuple((name, _slug(name)) for name in FIRST_NAMES)
        self.last_names = tuple((name, _slug(name)) for name in LAST_NAMES)
        self.nl_cities = tuple(
            (city, low, high) for city, low, high, weight in NL_CITIES for _ in range(weight)
        )
        self.be_cities = tuple(
            (city, low, high) for city, low, high, weight in BE_CITIES for _ in range(weight)
        )

        # Purchases: per (household, month) a table of (product index); per product
        # its precomputed JSON fields for a purchase at each price point.
        self.products: list[tuple[str, str, tuple[int, ...]]] = []
        product_index: dict[str, list[int]] = {}
        for category, items in CATALOGUE.items():
            for product, low, high in items:
                product_index.setdefault(category, []).append(len(self.products))
                self.products.append((product, category, _price_points(low, high)))
        self.smoke_detector = next(
            i for i, (product, _, _) in enumerate(self.products) if product == SMOKE_DETECTOR
        )
        self.fire_blanket = next(
            i for i, (product, _, _) in enumerate(self.products) if product == "fire-blanket"
        )
        self.cart_fields = tuple(
            _field("product", product) + _field("category", category)
            for product, category, _ in self.products
        )
        self.purchase_fields = tuple(
            tuple(f'{fields},"amount":{_amount(cents)}' for cents in prices)
            for fields, (_, _, prices) in zip(self.cart_fields, self.products, strict=True)
        )
        self.purchase_tables: dict[str, tuple[tuple[int, ...], ...]] = {}
        for household in HOUSEHOLDS:
            product_months: list[tuple[int, ...]] = []
            for month in range(12):
                weights: dict[str, float] = {}
                for category, indexes in product_index.items():
                    weight = float(CATEGORY_WEIGHTS[category])
                    weight *= HOUSEHOLD_FACTORS[household].get(category, 1.0)
                    weight *= MONTH_FACTORS.get(category, (1.0,) * 12)[month]
                    for index in indexes:
                        weights[str(index)] = weight / len(indexes)
                product_months.append(tuple(int(key) for key in _table(weights, 600)))
            self.purchase_tables[household] = tuple(product_months)

        self.page_fields = tuple(
            _field("url", SHOP_URL + page) + _field("category", category)
            for category, page in CATEGORY_PAGES.items()
        )
        self.fire_click_fields = tuple(
            _field("tag", "fire-safety") + _field("url", SHOP_URL + page)
            for page in CLICK_PAGES["fire-safety"]
        )
        self.click_tables: dict[str, tuple[tuple[str, ...], ...]] = {}
        for household in HOUSEHOLDS:
            months: list[tuple[str, ...]] = []
            for month in range(12):
                click_weights: dict[str, float] = {}
                for tag, weight in CLICK_WEIGHTS.items():
                    factor = CLICK_HOUSEHOLD[household].get(tag, 1.0)
                    factor *= CLICK_MONTHS.get(tag, (1.0,) * 12)[month]
                    for page in CLICK_PAGES[tag]:
                        fields = _field("tag", tag) + _field("url", SHOP_URL + page)
                        click_weights[fields] = weight * factor / len(CLICK_PAGES[tag])
                months.append(_table(click_weights))
            self.click_tables[household] = tuple(months)
        self.open_tables = tuple(
            _table({_field("tag", tag): weights[month] for tag, weights in OPEN_TAGS.items()})
            for month in range(12)
        )
        self.welcome_open = _field("tag", "welcome")
        self.signup_fields = tuple(_field("tag", source) for source in SIGNUP_SOURCES)
        self.complaint_fields = tuple(_field("tag", tag) for tag in COMPLAINT_TAGS)
        self.nps_fields = tuple(f'{_field("tag", "nps")},"score":{s}' for s in range(11))
        self.csat_fields = tuple(f'{_field("tag", "csat")},"score":{s}' for s in range(6))
        self.unsubscribe_field = _field("tag", "newsletter")
        self.bounce_fields = (_field("tag", "hard"),) * 3 + (_field("tag", "soft"),)
        self.rng = random.Random()

    # ------------------------------------------------------------------------- one person

    def person(self, number: int) -> tuple[list[str], list[str]]:
        """Contact `number`: its CSV row and its JSONL event lines, oldest first."""
        rng = self.rng
        # A string seed is hashed with SHA-512: stable across Python versions and
        # platforms, and independent of every other contact.
        rng.seed(f"trouw-demo:{self.seed}:{number}")
        random = rng.random
        end = self.end
        contact_id = f"demo-{number:06d}"

        # Household and age go together: parents of young children are 25-62.
        pick = random()
        household, _, earliest, latest, mode = self.ages[-1]
        for option in self.ages:
            if pick < option[1]:
                household, _, earliest, latest, mode = option
                break
            pick -= option[1]
        children = CHILDREN[int(random() * len(CHILDREN))] if household == "family" else 0
        if number % LEAP_DAY_EVERY == LEAP_DAY_FIRST and self.leap_days:
            born = self.leap_days[int(random() * len(self.leap_days))]
        else:
            born = min(int(rng.triangular(earliest, latest + 1, mode)), latest)
        birthday = date.fromordinal(born)

        # Customer since: 8% in the last 90 days, the rest spread over eight years
        # with more recent customers (the shop grew), never before turning 18.
        if random() < NEW_CUSTOMER_SHARE:
            since = end - int(random() * NEW_CUSTOMER_DAYS)
        else:
            span = HISTORY_DAYS - NEW_CUSTOMER_DAYS
            since = end - NEW_CUSTOMER_DAYS - int(span * random() ** 1.3)
        since = min(max(since, born + 6575), end)

        first, first_slug = self.first_names[int(random() * len(self.first_names))]
        last, last_slug = self.last_names[int(random() * len(self.last_names))]
        pick = random()
        channel = "post" if pick < 0.05 else "none" if pick < 0.06 else "email"
        email = ""
        # Half of those who asked for letters never gave an email address.
        if channel != "post" or random() < 0.5:
            domain = EMAIL_DOMAINS[int(random() * len(EMAIL_DOMAINS))]
            pick = random()
            if pick < 0.55:
                local = f"{first_slug}.{last_slug}{number}"
            elif pick < 0.8:
                local = f"{first_slug[0]}.{last_slug}{number}"
            else:
                local = f"{first_slug}{last_slug}.{number}"
            email = f"{local}@{domain}"

        belgian = random() < BE_SHARE
        locale = "en" if random() < 0.10 else "nl"
        zone = ""
        if random() < 0.03:
            if belgian:
                zone = "Europe/Brussels"
            elif locale == "en":
                zone = "Europe/London"
            else:
                # Mostly the default spelled out; now and then the Caribbean part of the kingdom.
                zone = "America/Curacao" if random() < 0.1 else "Europe/Amsterdam"
        street = STREETS[int(random() * len(STREETS))]
        house = 1 + int(random() ** 2 * 240)
        suffix = HOUSE_NUMBER_SUFFIXES[int(random() * len(HOUSE_NUMBER_SUFFIXES))]
        if belgian:
            city, low, high = self.be_cities[int(random() * len(self.be_cities))]
            postcode = str(low + int(random() * (high - low + 1)))
            country = "BE"
        else:
            city, low, high = self.nl_cities[int(random() * len(self.nl_cities))]
            letters = POSTCODE_LETTERS[int(random() * len(POSTCODE_LETTERS))]
            postcode = f"{low + int(random() * (high - low + 1))} {letters}"
            country = "NL"

        events, earned = self._events(rng, household, since, channel, email != "")
        # Points: one per euro spent in the last two years (older points expired),
        # less what was redeemed in blocks of 250, plus 100 for signing up.
        redeemed = 250 * int(random() * (earned // 250 + 1))
        points = 100 + earned - redeemed

        row = [
            contact_id, email, first, last, locale, zone, birthday.isoformat(),
            date.fromordinal(since).isoformat(), channel, f"{street} {house}{suffix}",
            postcode, city, country, household, str(children), str(points),
        ]  # fmt: skip

        events.sort()
        base = self.base
        prefix = self.day_prefix
        suffix_of = self.day_suffix
        clock = self.clock
        head = f'{{"id":"{contact_id}-'
        middle = f'","contact_id":"{contact_id}","type":"'
        lines = []
        for index, (moment, kind, fields) in enumerate(events, 1):
            day = moment // SECONDS_PER_DAY - base
            second = moment % SECONDS_PER_DAY
            lines.append(
                f'{head}{index:04d}{middle}{kind}","occurred_at":"'
                f'{prefix[day]}{clock[second]}{suffix_of[day]}"{fields}}}\n'
            )
        return row, lines

    def _events(
        self, rng: random.Random, household: str, since: int, channel: str, has_email: bool
    ) -> tuple[list[Event], int]:
        """One contact's behaviour from `since` to as-of, and the points earned."""
        random = rng.random
        end = self.end
        base = self.base
        day_month = self.day_month
        signed_up = since * SECONDS_PER_DAY + 8 * 3600 + int(random() * 14 * 3600)  # 08:00-22:00
        events: list[Event] = [
            (signed_up, "signup", self.signup_fields[int(random() * len(self.signup_fields))])
        ]
        add = events.append

        def moment(first: int, last: int) -> int:
            """A time on a day in first..last (ordinals), after the signup."""
            at = (first + int(random() * (last - first + 1))) * SECONDS_PER_DAY
            at += DAY_START + int(random() * DAY_LENGTH)
            # Earlier on the signup day: move it to within the hour after signing
            # up (signup is 22:00 at the latest, so this stays on the same day).
            return at if at > signed_up else signed_up + 1 + int(random() * 3500)

        tenure = end - since + 1
        years = tenure / 365.25
        # Activity has a long tail: most people do a little, a few a lot.
        activity = min(rng.lognormvariate(-0.4, 0.9), 15.0)
        nps_class = NPS_CLASSES[0]
        pick = random()
        for option in NPS_CLASSES:
            nps_class = option
            if pick < option[0]:
                break
            pick -= option[0]
        detractor = nps_class is NPS_CLASSES[2]

        # Unsubscribes and bounces end the mail history; opens and clicks after
        # them would not happen, so mail events stop there.
        mailable = has_email and channel != "none"
        mail_until = (end + 1) * SECONDS_PER_DAY
        if (has_email and random() < (0.03 if detractor else 0.015)) or (
            channel == "none" and random() < 0.5
        ):
            at = moment(since, end)
            add((at, "unsubscribe", self.unsubscribe_field))
            mail_until = at
        if has_email and random() < 0.005:
            at = moment(since, end)
            add((at, "bounce", self.bounce_fields[int(random() * len(self.bounce_fields))]))
            mail_until = min(mail_until, at)
        if random() < (0.014 if detractor else 0.002):
            add((moment(since, end), "complaint",
                 self.complaint_fields[int(random() * len(self.complaint_fields))]))  # fmt: skip

        if mailable:
            reach = 1.0 if channel == "email" else 0.3
            opens = self.open_tables
            welcome_until = (since + WELCOME_DAYS) * SECONDS_PER_DAY
            count = int(0.9 * years * activity * reach + random())
            if tenure <= NEW_CUSTOMER_DAYS:
                count += 1 + int(random() * 3)  # the welcome mails get read
            for _ in range(count):
                at = moment(since, end)
                if at < mail_until:
                    if at < welcome_until:
                        add((at, "open", self.welcome_open))
                    else:
                        table = opens[day_month[at // SECONDS_PER_DAY - base]]
                        add((at, "open", table[int(random() * len(table))]))
            clicks = self.click_tables[household]
            for _ in range(int(0.4 * years * activity * reach + random())):
                at = moment(since, end)
                if at < mail_until:
                    table = clicks[day_month[at // SECONDS_PER_DAY - base]]
                    add((at, "click", table[int(random() * len(table))]))

        # Fire safety: some clicked a fire-safety link (often recently, so the
        # follow-up campaign has someone to follow up); most of them own no
        # smoke detector, which is exactly that campaign's audience.
        fire_clicker = mailable and random() < 0.14
        owns_detector = random() < (0.35 if fire_clicker else 0.25)
        if fire_clicker:
            recent = random() < 0.5
            at = moment(max(since, end - 29), end) if recent else moment(since, end)
            if at < mail_until:
                fields = self.fire_click_fields
                add((at, "click", fields[int(random() * len(fields))]))

        for _ in range(int(0.25 * years * activity + random())):
            at = moment(since, end)
            add((at, "page_view", self.page_fields[int(random() * len(self.page_fields))]))

        # Purchases. Lapsed customers bought at least twice, but not in the last
        # 180 days; cart abandoners put something in the cart in the last 14
        # days and bought nothing since; big spenders buy more and dearer.
        last_purchase_day = end
        lapsed = tenure > 400 and random() < 0.12
        if lapsed:
            last_purchase_day = end - 181
        abandoner = random() < 0.06
        if abandoner:
            last_purchase_day = min(last_purchase_day, end - 15)
            for _ in range(1 + int(random() * 2)):
                at = moment(max(since, end - 13), end)
                product = self._product(random, household, at, owns_detector)
                add((at, "add_to_cart", self.cart_fields[product]))
        big_spender = random() < 0.03
        purchases = int(0.25 * years * activity * (3 if big_spender else 1) + random())
        if lapsed:
            purchases = max(purchases, 2)
        earned = 0
        if last_purchase_day >= since:
            # (time, product or -1 for "what this household buys that month")
            bought = [(moment(since, last_purchase_day), -1) for _ in range(purchases)]
            # Most people first buy something around the day they sign up.
            if random() < 0.7:
                bought.append((moment(since, min(since + 30, last_purchase_day)), -1))
            # Regulars bought something in the last half year. Without them the thin
            # purchase history (a DIY shop sees most people once or twice a year)
            # would leave almost half the file lapsed.
            if not lapsed and last_purchase_day - since > 180 and random() < 0.45:
                bought.append((moment(last_purchase_day - 179, last_purchase_day), -1))
            if owns_detector:
                bought.append((moment(since, last_purchase_day), self.smoke_detector))
            points_from = (end - 729) * SECONDS_PER_DAY
            for at, product in bought:
                if product < 0:
                    product = self._product(random, household, at, owns_detector)
                prices = self.purchase_fields[product]
                pick = int(random() * len(prices))
                cents = self.products[product][2][pick]
                quantity = 1 + int(random() * 3) if big_spender else 1
                if quantity == 1:
                    add((at, "purchase", prices[pick]))
                else:
                    cents *= quantity
                    add((at, "purchase", f'{self.cart_fields[product]},"amount":{_amount(cents)}'))
                if at >= points_from:
                    earned += cents // 100
                # A third went through the cart first, minutes before paying.
                if random() < 0.3:
                    before = at - 60 - int(random() * 1740)
                    if before > signed_up:
                        add((before, "add_to_cart", self.cart_fields[product]))
                # Some answer the satisfaction question a few days later.
                if random() < 0.12:
                    day = at // SECONDS_PER_DAY + 1 + int(random() * 6)
                    if day <= end:
                        score = nps_class[3] + int(random() * (nps_class[4] - nps_class[3] + 1))
                        add((moment(day, day), "survey", self.csat_fields[score]))

        for _ in range(int(0.12 * years * activity + random())):
            at = moment(since, end)
            product = self._product(random, household, at, owns_detector)
            add((at, "add_to_cart", self.cart_fields[product]))

        # NPS: the same person answers in the same spirit each time.
        for _ in range(int(0.06 * years * (0.5 + activity) + random())):
            score = nps_class[1] + int(random() * (nps_class[2] - nps_class[1] + 1))
            add((moment(since, end), "survey", self.nps_fields[score]))
        return events, earned

    def _product(
        self, random: Callable[[], float], household: str, at: int, owns_detector: bool
    ) -> int:
        """A product for this household in the month of `at` (local seconds)."""
        month = self.day_month[at // SECONDS_PER_DAY - self.base]
        table: Sequence[int] = self.purchase_tables[household][month]
        product = table[int(random() * len(table))]
        # Only owners ever bought a smoke detector; others took a fire blanket.
        if product == self.smoke_detector and not owns_detector:
            return self.fire_blanket
        return product
