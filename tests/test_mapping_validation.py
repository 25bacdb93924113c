"""Mapping provider fields to the canonical party, and validating before anything is written."""

from __future__ import annotations

import pytest

from app.domain.models import CrmRecord, Party
from app.domain.text import country_code, name_key, normalise_name, plural, text_or_none
from app.sync.mapping import map_record, reverse_map
from app.sync.validate import invisible_removed, validate_party

MAPPING = {
    "company": {"name": "name", "email": "billing_email", "phone": "phone", "address_line1": "address",
                "city": "city", "country": "country", "tax_id": "vat_number|upper"},
    "person": {"first_name": "firstname", "last_name": "lastname", "email": "email", "country": "country"},
}


def test_company_fields_map_and_country_name_becomes_iso_code():
    rec = CrmRecord("company", "1", {"name": "  Maple   Bakery Ltd ", "billing_email": "accounts@maple.co",
                                     "phone": "020 7946 0123", "country": "United Kingdom",
                                     "vat_number": "gb824504000"})
    party = map_record(rec, MAPPING)
    assert party.kind == "company"
    assert party.name == "Maple Bakery Ltd"
    assert party.country == "GB"
    assert party.tax_id == "GB824504000"


def test_person_name_is_joined_from_first_and_last():
    party = map_record(CrmRecord("person", "7", {"firstname": "Zoë", "lastname": "O'Brien"}), MAPPING)
    assert party.name == "Zoë O'Brien"
    assert party.kind == "person"


def test_reverse_map_writes_country_names_and_skips_unmapped_fields():
    props = reverse_map({"country": "DE", "email": "a@b.de", "region": "BY"}, "company", MAPPING)
    assert props == {"country": "Germany", "billing_email": "a@b.de"}


@pytest.mark.parametrize(("typed", "iso"), [("UK", "GB"), ("Deutschland", "DE"), ("United States", "US"),
                                             ("nl", "NL"), ("Narnia", None), ("", None)])
def test_country_names_as_typed_in_crms(typed, iso):
    assert country_code(typed) == iso


def test_phone_is_normalised_to_e164_when_the_country_is_known():
    party, problems = validate_party(Party("company", "A", phone="020 7946 0123", country="GB"))
    assert problems == []
    assert party.phone == "+442079460123"


@pytest.mark.parametrize("email", ["accounts@@maple.co", "billing at maple.co", "finance@", "a b@c.com"])
def test_invalid_emails_are_reported_in_plain_words(email):
    _, problems = validate_party(Party("company", "A", email=email))
    assert [p.field for p in problems] == ["email"]
    assert "not valid" in problems[0].message and "CRM" in problems[0].message


@pytest.mark.parametrize(("tax_id", "country", "ok"), [
    ("GB824504000", "GB", True), ("GB824504001", "GB", False), ("27-2521911", "US", True),
    ("DE757249208", "DE", True), ("DE757249209", "DE", False), ("51 824 753 556", "AU", True),
    ("51 824 753 557", "AU", False), ("DE757249208", None, True), ("12345", None, False),
])
def test_tax_ids_are_checked_per_country(tax_id, country, ok):
    _, problems = validate_party(Party("company", "A", tax_id=tax_id, country=country))
    assert (problems == []) is ok
    if not ok:
        assert problems[0].field == "tax_id"


def test_missing_name_and_control_characters_are_held_back():
    assert validate_party(Party("company", ""))[1][0].field == "name"
    assert validate_party(Party("company", "Bad\x07Name"))[1][0].field == "name"
    assert validate_party(Party("company", "x" * 101))[1][0].field == "name"


@pytest.mark.parametrize(("a", "b"), [("ACME Widgets, Ltd.", "Acme & Widgets Limited"),
                                      ("Cedar Brewing L.L.C.", "cedar brewing llc"),
                                      ("Müller GmbH", "Muller"), ("The Harbour Co", "Harbour")])
def test_normalised_names_agree_across_case_suffix_and_accents(a, b):
    assert normalise_name(a) == normalise_name(b)


@pytest.mark.parametrize(("name", "message"), [
    ("\u200b\u200b\u200b", "made only of invisible characters"), ("\u200d\ufeff", "made only of invisible characters"),
    ("   ", "It has no name"), ("", "It has no name"),
])
def test_blank_and_invisible_only_names_are_held_with_a_plain_reason(name, message):
    _, problems = validate_party(Party("company", name))
    assert [p.field for p in problems] == ["name"] and message in problems[0].message


def test_direction_controls_byte_order_marks_and_zero_width_spaces_are_taken_out():
    raw = Party("company", "\ufeff\u202eevil.exe Trading\u202c", city="Lon\u200bdon\u200e")
    party, problems = validate_party(raw)
    assert problems == []
    assert (party.name, party.city) == ("evil.exe Trading", "London")
    assert invisible_removed(raw) == ["name", "city"]
    assert invisible_removed(party) == []


def test_a_broken_character_or_a_control_character_anywhere_is_held():
    _, problems = validate_party(Party("company", "Cut \ud83d Emoji Ltd", address_line1="1 High St\x00"))
    assert {p.field for p in problems} == {"name", "address_line1"}
    assert "broken character" in problems[0].message and "control characters" in problems[1].message


@pytest.mark.parametrize(("a", "b"), [("Zw\u200bsp Trading", "Zwsp Trading"),
                                      ("\uff21\uff43\uff4d\uff45 Ltd", "ACME LIMITED"),
                                      ("\u202aCedar Brewing L.L.C.\u202c", "cedar brewing llc")])
def test_look_alike_names_share_one_matching_key(a, b):
    assert name_key(a) == name_key(b)


@pytest.mark.parametrize(("a", "b"), [("C# Academy", "C++ Academy"), ("A&B", "A+B"), ("Unit 1", "Unit 7"),
                                      ("=1+1", "-1+1"), ("\uff1d1+1", "-1+1")])
def test_symbols_and_digits_count_in_the_matching_key(a, b):
    assert name_key(a) != name_key(b)


@pytest.mark.parametrize("country", ["XX", "\u0301\u0301", "1A", "\u00e9\u00e9"])
def test_two_characters_that_are_no_country_are_held(country):
    """Written to a ledger that drops them, they came back blank and blanked the CRM's country."""
    _, problems = validate_party(Party("company", "A", country=country))
    assert [p.field for p in problems] == ["country"]


@pytest.mark.parametrize(("written", "read"), [
    ("  INV-0042 ", "INV-0042"), (42, "42"), ("", None), ("   ", None), (None, None), (0, "0"),
])
def test_a_ledger_value_is_read_as_trimmed_text_or_nothing(written, read):
    assert text_or_none(written) == read


@pytest.mark.parametrize(("n", "one", "many", "said"), [
    (1, "record", None, "1 record"), (0, "record", None, "0 records"), (2, "change", None, "2 changes"),
    (1200, "customer", None, "1,200 customers"), (1, "thing needs", "things need", "1 thing needs"),
    (3, "thing needs", "things need", "3 things need"),
])
def test_a_count_is_said_with_its_noun_in_the_singular_or_the_plural(n, one, many, said):
    assert plural(n, one, many) == said
