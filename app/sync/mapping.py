"""Field mapping: which provider field feeds which canonical field, with which transform.

Pure functions. A mapping is {object_type: {canonical_field: provider_field}}; a provider field
may carry a transform as 'field|transform' (e.g. 'country|country_code').
"""

from __future__ import annotations

from typing import Any

from app.domain.models import PARTY_FIELDS, CrmRecord, Party
from app.domain.text import country_code, country_name

Mapping = dict[str, dict[str, str]]

TRANSFORMS = {
    "trim": lambda v: v.strip() if isinstance(v, str) else v,
    "lower": lambda v: v.strip().lower() if isinstance(v, str) else v,
    "upper": lambda v: v.strip().upper() if isinstance(v, str) else v,
    "title": lambda v: v.strip().title() if isinstance(v, str) else v,
}


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
    for canonical, spec in fields.items():
        source, _, transform = spec.partition("|")
        value = _clean(record.properties.get(source))
        if transform and value is not None and transform in TRANSFORMS:
            value = TRANSFORMS[transform](value)
        values[canonical] = value
    if not values.get("name"):
        parts = [values.pop("first_name", None), values.pop("last_name", None)]
        values["name"] = " ".join(p for p in parts if p) or ""
    values.pop("first_name", None)
    values.pop("last_name", None)
    raw_country = values.get("country")
    if raw_country:
        values["country"] = country_code(raw_country) or raw_country
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
