"""Each PII detector on realistic Turkish and English text, checksummed numbers made here,
and look-alikes (order numbers, dates, versions, prices, non-Luhn numbers) that must not match."""

from __future__ import annotations

import random
import re
import time
from pathlib import Path

import pytest

from plugins.redaction.detectors import BUILT_IN, KINDS, custom_detector, detectors_for
from plugins.redaction.detectors.card import luhn_valid
from plugins.redaction.detectors.turkish import iban_valid, tckn_valid
from plugins.redaction.scanner import Scanner

DATA = Path(__file__).parent.parent / "data"
MARK = re.compile(r"\{\{(\w+):(.*?)\}\}")
ALL = Scanner(detectors_for(list(KINDS)))


# --- valid numbers, computed -----------------------------------------------------------------

def make_tckn(first_nine: str) -> str:
    d = [int(c) for c in first_nine]
    tenth = ((d[0] + d[2] + d[4] + d[6] + d[8]) * 7 - (d[1] + d[3] + d[5] + d[7])) % 10
    return first_nine + str(tenth) + str((sum(d) + tenth) % 10)


def make_iban_tr(bban: str) -> str:
    """TR + check digits + 22-digit BBAN; check = 98 - (BBAN + 'TR00' as digits) mod 97."""
    check = 98 - int(bban + "2927" + "00") % 97
    return f"TR{check:02d}{bban}"


def make_card(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + "".join(str(rng.randrange(10)) for _ in range(length - len(prefix) - 1))
    return next(body + str(d) for d in range(10) if luhn_valid(body + str(d)))


def grouped(number: str, size: int = 4, sep: str = " ") -> str:
    return sep.join(number[i:i + size] for i in range(0, len(number), size))


def found(text: str, scanner: Scanner = ALL) -> list[tuple[str, str]]:
    return [(d.kind, text[start:end]) for start, end, d in scanner.find(text)]


def corpus(name: str) -> list[str]:
    lines = (DATA / name).read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line and not line.startswith("#")]


# --- corpora ---------------------------------------------------------------------------------

@pytest.mark.parametrize("line", corpus("pii_tr.txt") + corpus("pii_en.txt"))
def test_corpus_lines_yield_exactly_the_marked_values(line):
    expected = MARK.findall(line)
    text = MARK.sub(r"\2", line)
    assert found(text) == expected


@pytest.mark.parametrize("line", corpus("pii_negatives.txt"))
def test_look_alikes_are_not_personal_data(line):
    assert found(line) == []


def test_the_issue_example_finds_each_kind_once():
    text = ("Merhaba, ben Ayşe Yılmaz, TC kimlik no 10000000146, IBAN TR33 0006 1005 1978 "  # noqa: RUF001
            "6457 8413 26, telefon 0532 123 45 67, e-posta ayse@ornek.com.tr")
    assert [kind for kind, _ in found(text)] == ["tckn", "iban_tr", "phone", "email"]


# --- TCKN ------------------------------------------------------------------------------------

def test_generated_tckns_pass_and_are_found():
    rng = random.Random(8)
    for _ in range(200):
        tckn = make_tckn(str(rng.randrange(100_000_000, 1_000_000_000)))
        assert tckn_valid(tckn)
        assert found(f"Kimlik no: {tckn}.") == [("tckn", tckn)]


def test_random_eleven_digit_numbers_failing_the_checksum_are_left_alone():
    rng = random.Random(11)
    rejected = 0
    for _ in range(500):
        number = str(rng.randrange(10_000_000_000, 100_000_000_000))
        if tckn_valid(number):
            continue
        rejected += 1
        assert found(f"Sipariş no {number} kargoda.") == []
    assert rejected > 480  # about one random number in a hundred passes the check


def test_tckn_rules():
    assert tckn_valid("10000000146")
    assert not tckn_valid("00000000146")  # first digit zero
    assert not tckn_valid("10000000147")  # second check digit wrong
    assert not tckn_valid("10000000156")  # first check digit wrong
    assert found("no 010000000146 ve 100000001460") == []  # inside longer numbers


# --- IBAN ------------------------------------------------------------------------------------

@pytest.mark.parametrize("sep", ["", " ", "-"])
def test_generated_turkish_ibans_are_found_in_every_print_form(sep):
    rng = random.Random(13)
    for _ in range(50):
        iban = make_iban_tr("".join(str(rng.randrange(10)) for _ in range(22)))
        assert iban_valid(iban)
        printed = grouped(iban, sep=sep) if sep else iban
        assert found(f"IBAN: {printed}") == [("iban_tr", printed)]


def test_an_iban_with_one_digit_changed_is_not_an_iban():
    iban = make_iban_tr("0006100519786457841326")
    broken = iban[:-1] + str((int(iban[-1]) + 1) % 10)
    assert not iban_valid(broken)
    assert all(kind != "iban_tr" for kind, _ in found(f"IBAN {broken}"))


# --- cards -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("prefix", "length"), [("4", 16), ("51", 16), ("37", 15), ("6", 19),
                                                ("4", 13), ("9792", 16)])
def test_generated_card_numbers_are_found(prefix, length):
    rng = random.Random(length)
    card = make_card(prefix, length, rng)
    assert found(f"Kart: {card}") == [("card", card)]
    if length == 16:
        for sep in (" ", "-"):
            assert found(f"card {grouped(card, sep=sep)} ok") == [("card", grouped(card, sep=sep))]


def test_sixteen_digit_numbers_failing_luhn_are_left_alone():
    rng = random.Random(16)
    for _ in range(300):
        number = str(rng.randrange(10**15, 10**16))
        if not luhn_valid(number):
            assert found(f"Takip no {number}") == []
            assert found(f"ref {grouped(number)}") == []


def test_mixed_separators_do_not_make_a_card():
    card = make_card("4", 16, random.Random(1))
    mixed = f"{card[:4]} {card[4:8]}-{card[8:12]} {card[12:]}"
    assert found(mixed) == []


# --- phones ----------------------------------------------------------------------------------

@pytest.mark.parametrize("phone", [
    "+90 532 123 45 67", "+90 (532) 123-45-67", "+905321234567", "0090 532 123 45 67",
    "0532 123 45 67", "05321234567", "0 532 123 45 67", "0(532) 123 45 67", "(0212) 444 12 34",
    "0212 444 12 34", "+90 212 444 12 34", "0850 222 33 44", "532 123 45 67", "(532) 123 45 67",
    "+1 (415) 555-2671", "+44 20 7946 0958", "+49 30 12345678", "+33 1 23 45 67 89",
    "+1-212-555-0199", "+4915112345678",
])
def test_phone_formats(phone):
    assert found(f"Tel: {phone}.") == [("phone", phone)]


@pytest.mark.parametrize("text", [
    "5321234567", "2024-05-12", "12.05.2024", "1.250,00 TL", "300 TL", "+5 (10)",
    "oda 0212", "123 45 67", "x+44 20 7946 0958",
])
def test_not_phones(text):
    assert [k for k, _ in found(text) if k == "phone"] == []


# --- e-mail and IP ---------------------------------------------------------------------------

def test_email_addresses_with_unicode_plus_and_subdomains():
    for email in ("ayse@ornek.com.tr", "a.b+tag@mail.example.co.uk", "ali@şirket.com.tr",
                  "o'brien@example.org", "x_y-z@sub.domain.io"):
        assert found(f"<{email}>") == [("email", email)]
    assert found("user@localhost, @handle, a@b, end@example.com.") == [
        ("email", "end@example.com")]


def test_email_local_parts_up_to_the_rfc_limit_and_addresses_side_by_side():
    longest = "a" * 64 + "@example.com"
    assert found(f"to {longest}") == [("email", longest)]
    assert found("to " + "a" * 65 + "@example.com") == []
    assert found("a@b.co,c.d@e.io;x@y.org") == [
        ("email", "a@b.co"), ("email", "c.d@e.io"), ("email", "x@y.org")]


def test_ip_addresses_and_their_look_alikes():
    assert found("from 192.168.1.10, 8.8.8.8 and fe80::1 or 2001:db8::ff00:42:8329.") == [
        ("ip", "192.168.1.10"), ("ip", "8.8.8.8"), ("ip", "fe80::1"),
        ("ip", "2001:db8::ff00:42:8329")]
    for text in ("1.2.3.4.5", "256.1.1.1", "v1.2.3.4", "12:30:45", "std::map", "dead::beef",
                 "00:1A:2B:3C:4D:5E", "3.14159", "x::1", "1.2.3.04"):
        assert found(text) == [], text


# --- custom patterns and the scanner ---------------------------------------------------------

def test_custom_detector_uses_its_name_as_label():
    detector = custom_detector("employee_id", r"\bEMP-\d{6}\b")
    scanner = Scanner([detector, *BUILT_IN["email"]])
    text = "EMP-004211 wrote from emp@firma.com"
    assert found(text, scanner) == [("employee_id", "EMP-004211"), ("email", "emp@firma.com")]
    assert detector.label == "EMPLOYEE_ID"


def test_overlapping_findings_keep_the_earliest_longest():
    iban = make_iban_tr("0006100519786457841326")
    assert found(f"{grouped(iban)} {make_tckn('123456789')}") == [
        ("iban_tr", grouped(iban)), ("tckn", make_tckn("123456789"))]


def test_replace_keeps_the_text_around_findings():
    text, spans = ALL.replace("a@b.co and 10.0.0.1!", lambda d, v: f"[{d.label}]")
    assert text == "[EMAIL] and [IP]!"
    assert len(spans) == 2


def test_scanning_is_linear_on_long_unbroken_text():
    # Patterns anchored by look-behinds: a 200 kB run without separators is one pass each.
    blob = "a" * 100_000 + "1" * 100_000
    started = time.perf_counter()
    assert found(blob) == []
    assert time.perf_counter() - started < 1.0
