"""Normalisation used for matching: names, emails, tax IDs, countries."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from functools import lru_cache

LEGAL_SUFFIXES = {
    "ltd", "limited", "inc", "incorporated", "llc", "llp", "lp", "plc", "co", "company", "corp",
    "corporation", "gmbh", "ag", "kg", "ug", "bv", "nv", "sa", "sarl", "sas", "srl", "spa", "pty",
    "pte", "oy", "ab", "as", "aps", "kk", "the",
}
_PUNCT = re.compile(r"[^\w\s]", re.UNICODE)
_SPACE = re.compile(r"\s+")


# Characters that only steer how text is shown: right-to-left and left-to-right overrides, embeddings
# and isolates, direction marks, and byte-order marks. A name holding them can display as something
# else than what it says ("\u202eexe.live Trading"), so they are taken out before a name is written.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
BOM = "\ufeff"
# Zero-width characters with no meaning in a business name (a zero-width space, a word joiner).
# Zero-width joiners and non-joiners are kept: emoji sequences and some scripts need them.
ZERO_WIDTH = frozenset("\u200b\u2060\u180e")
REMOVED_INVISIBLE = BIDI_CONTROLS | ZERO_WIDTH | {BOM}
# Look-alike punctuation folded for matching: curly quotes, dashes and the minus sign.
_LOOKALIKES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u02bc": "'", "\u201c": '"', "\u201d": '"',
                             "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-",
                             "\u2212": "-"})


class _DropWhere(dict[int, int | None]):
    """A ``str.translate`` table that drops the characters a test picks and keeps the rest, working out
    each character once (the table fills as text is seen): one C call a string instead of a Python step a
    character."""

    def __init__(self, drop: Callable[[str], bool]) -> None:
        super().__init__()
        self._drop = drop

    def __missing__(self, code: int) -> int | None:
        kept = None if self._drop(chr(code)) else code
        self[code] = kept
        return kept


_COMBINING = _DropWhere(lambda c: bool(unicodedata.combining(c)))
_FORMAT = _DropWhere(lambda c: unicodedata.category(c) == "Cf")


def strip_accents(text: str) -> str:
    return unicodedata.normalize("NFKD", text).translate(_COMBINING)


def remove_invisible(text: str) -> tuple[str, list[str]]:
    """The text without direction controls, byte-order marks and zero-width spaces, and what kinds were
    taken out, in a bookkeeper's words ('right-to-left or left-to-right controls', ...)."""
    if not any(c in REMOVED_INVISIBLE for c in text):
        return text, []
    kinds = []
    if any(c in BIDI_CONTROLS for c in text):
        kinds.append("text-direction controls")
    if BOM in text:
        kinds.append("byte-order marks")
    if any(c in ZERO_WIDTH for c in text):
        kinds.append("zero-width spaces")
    return "".join(c for c in text if c not in REMOVED_INVISIBLE), kinds


_SURROGATE = re.compile("[\ud800-\udfff]")


def has_broken(text: str) -> bool:
    """Half of a character: a lone UTF-16 surrogate, as left when an emoji is cut in two."""
    return _SURROGATE.search(text) is not None


def mend_broken(text: str) -> str:
    """The text with each half of a character shown as a replacement mark, so it can be stored and sent."""
    return _SURROGATE.sub("\ufffd", text) if text else text


def plural(n: int, one: str, many: str | None = None) -> str:
    """"1 record", "2 records", "1,200 changes": a count with its noun as a person writes it."""
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


def text_or_none(value: object) -> str | None:
    """A provider's value as text, spaces trimmed; None when nothing is left (or there was nothing)."""
    text = str(value).strip() if value is not None else ""
    return text or None


def is_blank(text: str | None) -> bool:
    """Nothing a reader could see: empty, spaces, or only invisible (format) characters."""
    return not any(not c.isspace() and unicodedata.category(c) != "Cf" for c in text or "")


def _fold(text: str) -> str:
    """Width forms, ligatures, invisible characters, accents, case and look-alike punctuation folded."""
    if text.isascii():  # nothing to fold but case (most names): a quarter of matching's time otherwise
        return text.lower()
    text = unicodedata.normalize("NFKC", text).translate(_FORMAT)
    return strip_accents(text).casefold().translate(_LOOKALIKES)


_SYMBOL_SPACE = re.compile(r"\s*([^\w\s])\s*", re.UNICODE)


_SPELLED = re.compile(r"(?:[a-z]\.)*[a-z]\.?")  # 's.', 'a', 'r.l.', 'g.m.b.h.': letters spelled out with dots


def _join_spelled_forms(words: list[str]) -> list[str]:
    """A legal form spelled out in dotted letters across words ('S. A. R. L.', 'S.à r.l.', 'G. m. b. H.')
    becomes one word ('sarl'), so it is recognised and dropped like 'SARL'. Only letters that carry dots
    are joined (plain 'A B' stays two words), and only when together they make a legal form."""
    if not any("." in w for w in words[-6:]):
        return words
    for start in range(max(0, len(words) - 6), len(words)):
        tail = words[start:]
        if not all(_SPELLED.fullmatch(w.rstrip(",")) for w in tail) or "." not in "".join(tail[:-1] or tail):
            continue
        joined = "".join(w.replace(".", "").rstrip(",") for w in tail)
        if joined in LEGAL_SUFFIXES and start > 0:
            return [*words[:start], joined]
    return words


def folded_words(name: str | None) -> list[str]:
    """The name folded (``_fold``) and split into words, a spelled-out legal form joined into one: the
    first step of both ``name_key`` and ``normalise_name``, which a caller needing both can share."""
    return _join_spelled_forms(_fold(name).split()) if name else []


def name_key(name: str | None, words: list[str] | None = None) -> str:
    """The key two names must share to be linked on their names alone.

    Only case, spacing, accents, legal form and look-alike characters (width forms, invisible
    characters, curly quotes) are ignored; every letter, digit and symbol counts, so 'C# Academy' and
    'C++ Academy', 'A&B' and 'A+B', 'Unit 1' and 'Unit 7' keep different keys. ``words``, if given, is
    ``folded_words(name)`` already worked out.
    """
    if not name:
        return ""
    words = list(words) if words is not None else folded_words(name)
    while words:  # the legal form at the end: 'Widgets, Ltd.', 'Smith & Co', 'Cedar L.L.C.'
        last = words[-1].strip(".,")
        if last.replace(".", "") in LEGAL_SUFFIXES and len(words) > 1:
            words.pop()
            if words and words[-1] in ("&", "and", ","):
                words.pop()
            continue
        words[-1] = words[-1].rstrip(".,") or words[-1]
        break
    return _SYMBOL_SPACE.sub(r"\1", " ".join(words))


def normalise_name(name: str | None, words: list[str] | None = None) -> str:
    """'ACME Widgets, Ltd.' and 'Acme & Widgets Limited' -> comparable keys.

    Case, accents, punctuation, '&'/'and' and legal suffixes are dropped; the word order is kept
    (order-insensitive comparison is the fuzzy matcher's job, with a score). ``words``, if given, is
    ``folded_words(name)`` already worked out.
    """
    if not name:
        return ""
    text = " ".join(words if words is not None else folded_words(name)).replace("&", " and ")
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


# Addresses anyone can have: two customers sharing one say nothing about being the same business.
FREE_MAIL = frozenset({
    "gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "live.com", "yahoo.com", "icloud.com",
    "me.com", "proton.me", "protonmail.com", "aol.com", "gmx.de", "gmx.net", "web.de", "mail.com", "yandex.ru",
    "btinternet.com", "bigpond.com", "hotmail.co.uk", "yahoo.co.uk",
})


def company_domain(email: str | None) -> str:
    """The domain of a business's own email address ('' for none, or for a free mail service)."""
    email = normalise_email(email)
    domain = email.rpartition("@")[2] if "@" in email else ""
    return domain if domain not in FREE_MAIL else ""


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
