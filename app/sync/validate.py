"""Validation before anything is written: emails, phones (E.164), tax IDs per country.

Each problem is a sentence a bookkeeper can act on, naming the field and what to do.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from stdnum import get_cc_module
from stdnum.eu import vat as eu_vat
from stdnum.exceptions import ValidationError as StdnumError

from app.domain.models import Party
from app.domain.text import country_name

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


def _control_chars(text: str) -> bool:
    return any(ord(c) < 32 or ord(c) == 127 for c in text)


def validate_party(party: Party) -> tuple[Party, list[Problem]]:
    """Return the party with normalised values (E.164 phone, compact tax ID) and any problems."""
    problems: list[Problem] = []
    updates: dict[str, Any] = {}  # Party fields by name, for dataclasses.replace
    name = (party.name or "").strip()
    if not name:
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
    if country and len(country) != 2:
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
