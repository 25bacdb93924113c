"""Validation before anything is written: emails, phones (E.164), tax IDs per country.

Each problem is a sentence a bookkeeper can act on, naming the field and what to do.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import phonenumbers
import pycountry
from email_validator import EmailNotValidError, validate_email
from stdnum import get_cc_module
from stdnum.eu import vat as eu_vat
from stdnum.exceptions import ValidationError as StdnumError

from app.domain.models import PARTY_FIELDS, Party
from app.domain.text import country_name, has_broken, is_blank, mend_broken, remove_invisible

if TYPE_CHECKING:
    from stdnum.util import NumberValidationModule

MAX_NAME = 100  # the tightest display-name limit of the three ledgers (QBO: 100 characters)

# Which stdnum module checks a business tax number in each country, tried in order.
TAX_SCHEMES: dict[str, tuple[str, ...]] = {
    "US": ("ein",),
    "GB": ("vat", "utr"),
    "AU": ("abn", "acn"),
    "NZ": ("gst", "ird"),
    "CA": ("bn",),
    "IN": ("gstin", "pan"),
    "CH": ("vat", "uid"),
    "NO": ("mva", "orgnr"),
    "ZA": ("vat",),
    "SG": ("gst", "uen"),
}
TAX_LABEL = {"ein": "EIN", "vat": "VAT number", "abn": "ABN", "gstin": "GSTIN", "btw": "BTW number",
             "bn": "Business Number", "gst": "GST number", "mva": "MVA number"}


@dataclass(frozen=True, slots=True)
class Problem:
    field: str
    message: str


FIELD_WORDS = {"name": "name", "email": "email address", "phone": "phone number", "address_line1": "address",
               "address_line2": "address (second line)", "city": "town or city", "region": "region",
               "postal_code": "postcode", "country": "country", "tax_id": "tax ID"}


def _control_chars(text: str) -> bool:
    return any(ord(c) < 32 or 127 <= ord(c) < 160 for c in text)


def invisible_removed(party: Party) -> list[str]:
    """The fields from which validate_party takes out direction controls, byte-order marks or zero-width
    spaces (the history says so when such a value is written)."""
    return [f for f, v in party.fields().items() if isinstance(v, str) and remove_invisible(v)[1]]


def validate_party(party: Party) -> tuple[Party, list[Problem]]:
    """Return the party with normalised values (E.164 phone, compact tax ID, direction controls, byte-order
    marks and zero-width spaces taken out) and any problems."""
    problems: list[Problem] = []
    updates: dict[str, Any] = {}  # Party fields by name, for dataclasses.replace
    only_invisible = bool((party.name or "").strip()) and is_blank(party.name)
    for f in PARTY_FIELDS:
        value = getattr(party, f)
        if not isinstance(value, str):
            continue
        if has_broken(value):
            problems.append(Problem(f, f"Its {FIELD_WORDS[f]} contains a broken character (often half of an "
                                       "emoji or symbol cut off on import). Retype it in the CRM."))
            updates[f] = mend_broken(value)
            continue
        cleaned = remove_invisible(value)[0]
        if f != "name" and cleaned.strip() != value.strip():
            cleaned = cleaned.strip() or None  # type: ignore[assignment]
        if cleaned != value:
            updates[f] = cleaned
        if f != "name" and cleaned and _control_chars(cleaned):
            problems.append(Problem(f, f"Its {FIELD_WORDS[f]} contains invisible control characters. "
                                       "Retype it in the CRM."))
    if updates:
        party = replace(party, **updates)
        updates = {}
    raw_name = party.name or ""
    name = raw_name.strip()
    if any(p.field == "name" for p in problems):
        pass
    elif only_invisible:
        problems.append(Problem("name", "Its name is made only of invisible characters, so the ledger would show "
                                        "a blank name. Type the name in the CRM."))
    elif is_blank(name):
        problems.append(Problem("name", "It has no name. Add a name in the CRM so the ledger can show it."))
    elif len(name) > MAX_NAME:
        problems.append(Problem("name", f"Its name is {len(name)} characters long; ledgers accept at most "
                                        f"{MAX_NAME}. Shorten it in the CRM."))
    elif _control_chars(name):
        problems.append(Problem("name", "Its name contains invisible control characters. Retype it in the CRM."))
    if name != party.name:
        updates["name"] = name

    if party.email:
        email = party.email.strip()
        try:
            updates["email"] = validate_email(email, check_deliverability=False).normalized
        except EmailNotValidError:
            problems.append(Problem("email", f"The email address '{email}' is not valid. Correct it in the CRM."))

    country = party.country
    if country and not (len(country) == 2 and country.isascii() and country.isalpha()
                        and pycountry.countries.get(alpha_2=country.upper()) is not None):
        problems.append(Problem("country", f"The country '{country}' is not one Crossledger recognises. "
                                           "Use the country's full English name or its two-letter code."))
        country = None

    if party.phone:
        try:
            number = phonenumbers.parse(party.phone, country)
            if not phonenumbers.is_possible_number(number):
                raise phonenumbers.NumberParseException(0, "impossible")
            updates["phone"] = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        except phonenumbers.NumberParseException:
            if country or party.phone.strip().startswith("+"):
                problems.append(Problem("phone", f"The phone number '{party.phone}' is not a valid number"
                                                 f"{' for ' + country if country else ''}. Correct it in the CRM."))
            # Without a country and without a +prefix it cannot be normalised: keep it as typed.

    if party.tax_id:
        tax_id, problem = check_tax_id(party.tax_id, country)
        if problem:
            problems.append(problem)
        else:
            updates["tax_id"] = tax_id
    return (replace(party, **updates) if updates else party), problems


def check_tax_id(raw: str, country: str | None) -> tuple[str, Problem | None]:
    value = raw.strip()
    if not country:
        try:
            return eu_vat.compact(eu_vat.validate(value)), None
        except StdnumError:
            return value, Problem("tax_id", f"The tax ID '{value}' cannot be checked because the record has no "
                                            "country. Add the country in the CRM.")
    schemes = TAX_SCHEMES.get(country, ("vat",) if country in eu_vat.MEMBER_STATES or country == "GR" else ())
    if not schemes:
        for guess in ("vat", "tin"):
            if _module(country, guess) is not None:
                schemes = (guess,)
                break
    if not schemes:
        return value, None  # no checker for this country: accept as typed
    for scheme in schemes:
        mod = _module(country, scheme)
        if mod is None:
            continue
        try:
            valid = mod.validate(value)
        except StdnumError:
            continue
        except Exception:  # noqa: BLE001, S112 - a checker choking on odd input is just 'not valid'
            continue
        if country in {"US", "AU"} and hasattr(mod, "format"):
            return mod.format(valid), None
        compact = mod.compact(valid)
        if scheme == "vat" and not compact[:2].isalpha():
            compact = ("EL" if country == "GR" else country) + compact
        return compact, None
    label = TAX_LABEL.get(schemes[0], "tax ID")
    where = country_name(country) or country
    return value, Problem("tax_id", f"The {label} '{value}' is not valid for {where} (the check digits do not "
                                    "add up). Correct it in the CRM.")


def _module(country: str, scheme: str) -> NumberValidationModule | None:
    try:
        return get_cc_module(country.lower(), scheme)
    except (ImportError, ValueError):
        return None
