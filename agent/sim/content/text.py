"""Seeded, compressible everyday content: words, people, identifiers, plists, JSON, logs."""

from __future__ import annotations

import json
import plistlib
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

COCOA_EPOCH = 978_307_200  # 2001-01-01 in unix seconds; Apple databases count from here


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


WORDS = _words(
    "the be to of and a in that have it for not on with he as you do at this but his by from they we say her "
    "she or an will my one all would there their what so up out if about who get which go me when make can like "
    "time no just him know take people into year your good some could them see other than then now look only "
    "come its over think also back after use two how our work first well way even new want because any these "
    "give day most us dinner tomorrow tonight meeting office train station coffee lunch weekend holiday photo "
    "birthday party call later home running late sounds great thanks see you soon love it haha okay sure maybe "
    "project deadline report budget flight hotel booking ticket concert movie game match school pick kids "
    "grocery list milk bread eggs cheese apples doctor appointment dentist gym yoga walk park beach mountain "
    "lake weather rain sunny cold warm snow car parking fuel bike bus taxi airport gate delayed landed"
)

FIRST_NAMES = _words(
    "Anna Ben Carla David Elena Felix Greta Hugo Ines Jonas Kim Lara Marco Nina Oscar Paula Quentin Rosa Sven "
    "Tina Umberto Vera Walter Xenia Yusuf Zoe Alice Bruno Chloe Diego Emma Finn Hanna Ivan Julia Leo Mia Noah "
    "Olivia Pedro Sara Tom Lena Max Sofia Luca"
)

LAST_NAMES = _words(
    "Meier Schmid Keller Weber Huber Schneider Fischer Brunner Baumann Frei Gerber Moser Widmer Wyss Graf "
    "Roth Steiner Kaufmann Suter Berger Rossi Bianchi Dubois Martin Lambert Smith Jones Taylor Brown Wilson "
    "Garcia Lopez Silva Costa Novak Kowalski Jensen Larsen"
)

CITIES = _words(
    "Zurich Geneva Basel Bern Lausanne Lucerne Lugano Winterthur St.Gallen Zug Milan Paris Berlin Vienna "
    "London Lyon Munich Amsterdam Barcelona Lisbon"
)

WEBSITES = _words(
    "news.example.com shop.example.org weather.example.net maps.example.com recipes.example.org "
    "video.example.com wiki.example.org mail.example.com travel.example.net bank.example.com "
    "sports.example.org forum.example.net docs.example.com music.example.org"
)


@dataclass(frozen=True)
class Person:
    first: str
    last: str
    phone: str
    email: str

    @property
    def name(self) -> str:
        return f"{self.first} {self.last}"


def person(rng: random.Random) -> Person:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    phone = f"+417{rng.randint(5, 9)}{rng.randint(1_000_000, 9_999_999)}"
    email = f"{first.lower()}.{last.lower()}{rng.randint(1, 99)}@example.com"
    return Person(first, last, phone, email)


def people(rng: random.Random, count: int) -> list[Person]:
    return [person(rng) for _ in range(count)]


def sentence(rng: random.Random, low: int = 3, high: int = 14) -> str:
    text = " ".join(rng.choices(WORDS, k=rng.randint(low, high)))
    return text[0].upper() + text[1:] + rng.choice((".", ".", ".", "!", "?"))


def paragraph(rng: random.Random, sentences: int = 4) -> str:
    return " ".join(sentence(rng) for _ in range(sentences))


def guid(rng: random.Random) -> str:
    """An upper-case UUID as Apple writes them."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4)).upper()


def cocoa_seconds(unix_time: int) -> float:
    return float(unix_time - COCOA_EPOCH)


def cocoa_nanoseconds(unix_time: int) -> int:
    return (unix_time - COCOA_EPOCH) * 1_000_000_000


def url(rng: random.Random) -> str:
    return f"https://{rng.choice(WEBSITES)}/{'/'.join(rng.choices(WORDS, k=rng.randint(1, 3)))}"


def preferences_dict(rng: random.Random, approx_size: int, domain_name: str) -> dict[str, object]:
    """A preferences-like dictionary whose binary plist is roughly `approx_size` bytes."""
    values: dict[str, object] = {}
    size = 42
    while size < approx_size:
        key = f"{domain_name.rsplit('.', 1)[-1]}{rng.choice(WORDS).capitalize()}{rng.choice(WORDS).capitalize()}"
        kind = rng.randrange(6)
        value: object
        if kind == 0:
            value = rng.randint(0, 1 << 31)
        elif kind == 1:
            value = rng.random() < 0.5
        elif kind == 2:
            value = sentence(rng)
        elif kind == 3:
            # naive UTC: plistlib of Python 3.11 cannot write aware datetimes
            value = datetime(2001, 1, 1) + timedelta(seconds=rng.randint(500_000_000, 700_000_000))
        elif kind == 4:
            value = [rng.choice(WORDS) for _ in range(rng.randint(1, 6))]
        else:
            value = {rng.choice(WORDS): rng.randint(0, 1000) for _ in range(rng.randint(1, 4))}
        values[key] = value
        size += len(key) + 24
    return values


def plist_bytes(rng: random.Random, approx_size: int, domain_name: str = "com.apple.device") -> bytes:
    """A binary plist of roughly `approx_size` bytes, as iOS writes preferences."""
    return plistlib.dumps(
        preferences_dict(rng, approx_size, domain_name), fmt=plistlib.FMT_BINARY, sort_keys=True
    )


def json_bytes(rng: random.Random, approx_size: int) -> bytes:
    records = []
    size = 2
    while size < approx_size:
        record = {
            "id": guid(rng),
            "name": rng.choice(WORDS),
            "value": rng.randint(0, 10_000),
            "note": sentence(rng),
        }
        records.append(record)
        size += 100
    return json.dumps({"version": 1, "items": records}, indent=1).encode()


def log_bytes(rng: random.Random, size: int) -> bytes:
    """Log-like text, exactly `size` bytes."""
    lines: list[str] = []
    total = 0
    while total < size:
        line = f"{rng.randint(10_000, 99_999)} [{rng.choice(('info', 'debug', 'notice'))}] {sentence(rng)}\n"
        lines.append(line)
        total += len(line)
    return "".join(lines).encode()[:size]
