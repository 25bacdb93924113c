"""Field mapping: which provider field feeds which canonical field, with which transform.

Pure functions. A mapping is {object_type: {canonical_field: provider_field}}; a provider field
may carry a transform as 'field|transform' (e.g. 'country|country_code').
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.domain.models import PARTY_FIELDS, CrmRecord, Party
from app.domain.text import country_code, country_name

Mapping = dict[str, dict[str, str]]

def _last_first(value: str) -> str:
    """'O'Brien, Zoë' -> 'Zoë O'Brien' (a name kept last name first)."""
    last, sep, first = value.partition(",")
    return f"{first.strip()} {last.strip()}".strip() if sep and first.strip() else value.strip()


TRANSFORMS: dict[str, Callable[[str], str]] = {
    "trim": lambda v: v.strip() if isinstance(v, str) else v,
    "lower": lambda v: v.strip().lower() if isinstance(v, str) else v,
    "upper": lambda v: v.strip().upper() if isinstance(v, str) else v,
    "title": lambda v: v.strip().title() if isinstance(v, str) else v,
    "last_first": lambda v: _last_first(v) if isinstance(v, str) else v,
    "country_code": lambda v: (country_code(v) or v) if isinstance(v, str) else v,
    "phone": lambda v: v,  # needs the record's country: applied in map_record
}
# What the mapping wizard offers, in a bookkeeper's words.
TRANSFORM_LABELS = {
    "": "As is (spaces tidied)",
    "trim": "Trim spaces",
    "lower": "lower case",
    "upper": "UPPER CASE",
    "title": "Title Case",
    "last_first": "Name as “Last, First”",
    "country_code": "Country → ISO code",
    "phone": "Phone, international",
}


def normalise_phone(value: str, country: str | None) -> str:
    """A phone number in international format (+44 20 7946 0123); left as typed if it cannot be read."""
    import phonenumbers

    try:
        number = phonenumbers.parse(value, (country or "").upper() or None)
    except phonenumbers.NumberParseException:
        return value
    if not phonenumbers.is_possible_number(number):
        return value
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def _clean(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, list):  # e.g. Pipedrive email/phone arrays
        value = next((v.get("value") if isinstance(v, dict) else v for v in value if v), None)
        if value is None:
            return None
    text = " ".join(str(value).split())
    return text or None


def map_record(record: CrmRecord, mapping: Mapping) -> Party:
    """A CRM record's provider fields -> a canonical Party, as the workspace's mapping says."""
    fields = mapping.get(record.object_type, {})
    values: dict[str, str | None] = {}
    phones: list[str] = []
    for canonical, spec in fields.items():
        source, _, transform = spec.partition("|")
        value = _clean(record.properties.get(source))
        if transform and value is not None and transform in TRANSFORMS:
            value = TRANSFORMS[transform](value)
            if transform == "phone":
                phones.append(canonical)
        values[canonical] = value
    if not values.get("name"):
        parts = [values.pop("first_name", None), values.pop("last_name", None)]
        values["name"] = " ".join(p for p in parts if p) or ""
    values.pop("first_name", None)
    values.pop("last_name", None)
    raw_country = values.get("country")
    if raw_country:
        values["country"] = country_code(raw_country) or raw_country
    for canonical in phones:
        if phone := values.get(canonical):
            values[canonical] = normalise_phone(phone, values.get("country"))
    party = Party(kind="company" if record.object_type == "company" else "person", name=values.get("name") or "")
    return party.with_fields({k: v for k, v in values.items() if k in PARTY_FIELDS and k != "name"})


def reverse_map(changes: dict[str, str | None], object_type: str, mapping: Mapping) -> dict[str, Any]:
    """Canonical field changes -> provider fields to write back to the CRM.

    Only fields mapped one-to-one are written back; a person's name split over two fields is not
    (renaming a person is left to the CRM), and countries are written as names.
    """
    fields = mapping.get(object_type, {})
    out: dict[str, Any] = {}
    for canonical, value in changes.items():
        spec = fields.get(canonical)
        if not spec:
            continue
        source = spec.partition("|")[0]
        if canonical == "country":
            value = country_name(value) or value
        out[source] = value if value is not None else ""
    return out
