"""Normalisation used for matching: names, emails, tax IDs, countries."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

LEGAL_SUFFIXES = {
    "ltd", "limited", "inc", "incorporated", "llc", "llp", "lp", "plc", "co", "company", "corp",
    "corporation", "gmbh", "ag", "kg", "ug", "bv", "nv", "sa", "sarl", "sas", "srl", "spa", "pty",
    "pte", "oy", "ab", "as", "aps", "kk", "the",
}
_PUNCT = re.compile(r"[^\w\s]", re.UNICODE)
_SPACE = re.compile(r"\s+")


def strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def normalise_name(name: str | None) -> str:
    """'ACME Widgets, Ltd.' and 'Acme & Widgets Limited' -> comparable keys.

    Case, accents, punctuation, '&'/'and' and legal suffixes are dropped; the word order is kept
    (order-insensitive comparison is the fuzzy matcher's job, with a score).
    """
    if not name:
        return ""
    text = strip_accents(name).casefold().replace("&", " and ")
    text = text.replace("l.l.c", "llc").replace("b.v", "bv").replace("n.v", "nv")
    text = _PUNCT.sub(" ", text)
    words = [w for w in _SPACE.split(text) if w and w != "and"]
    while words and words[-1] in LEGAL_SUFFIXES:
        words.pop()
    while words and words[0] == "the":
        words.pop(0)
    return " ".join(words)


def normalise_email(email: str | None) -> str:
    return (email or "").strip().casefold()


def compact_tax_id(tax_id: str | None) -> str:
    return re.sub(r"[^0-9A-Za-z]", "", tax_id or "").upper()


_COUNTRY_ALIASES = {
    "uk": "GB", "great britain": "GB", "england": "GB", "scotland": "GB", "wales": "GB",
    "northern ireland": "GB", "britain": "GB", "usa": "US", "u.s.a.": "US", "u.s.": "US",
    "america": "US", "united states of america": "US", "holland": "NL", "the netherlands": "NL",
    "deutschland": "DE", "österreich": "AT", "schweiz": "CH", "suisse": "CH", "españa": "ES",
    "italia": "IT", "россия": "RU", "south korea": "KR", "korea": "KR", "uae": "AE",
}


@lru_cache(maxsize=512)
def country_code(value: str | None) -> str | None:
    """A country name or code as typed in a CRM -> ISO 3166-1 alpha-2, or None if unknown."""
    if not value or not value.strip():
        return None
    text = value.strip()
    alias = _COUNTRY_ALIASES.get(text.casefold())
    if alias:
        return alias
    import pycountry

    try:
        return pycountry.countries.lookup(text).alpha_2
    except LookupError:
        return None


def country_name(code: str | None) -> str | None:
    if not code:
        return None
    import pycountry

    country = pycountry.countries.get(alpha_2=code.upper())
    return getattr(country, "common_name", None) or (country.name if country else None)
