"""QBO's Fault envelope and error codes, its numbers, and the wire form of a stored record."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from app.sandbox.common import ExactJsonResponse, half_up
from app.sandbox.quickbooks.schema import NUMERIC


# -- faults ---------------------------------------------------------------------------------------
class QboFault(Exception):
    """One QBO error: raised by entity logic, answered as a top-level Fault or a batch item's Fault."""

    def __init__(self, code: str, message: str, detail: str, element: str = "", *, status: int = 400,
                 kind: str = "ValidationFault") -> None:
        super().__init__(f"{code} {message}")
        self.code, self.message, self.detail, self.element = code, message, detail, element
        self.status, self.kind = status, kind

    def fault(self) -> dict[str, Any]:
        return {"Error": [{"Message": self.message, "Detail": self.detail, "code": self.code,
                           "element": self.element}], "type": self.kind}


def unsupported(name: str) -> QboFault:
    return QboFault("2010", "Request has invalid or unsupported property",
                    f'Property Name:Unrecognized field "{name}" specified is unsupported or invalid', name)


def missing(name: str) -> QboFault:
    return QboFault("2020", "Required param missing, need to supply the required value for the API",
                    f"Required parameter {name} is missing in the request", name)


def too_long(name: str, limit: int, supplied: int) -> QboFault:
    return QboFault("2050", "String length is either shorter or longer than supported by specification",
                    f"String length specified does not match the supported length. Min:0 Max:{limit} "
                    f"supplied length:{supplied}", name)


def business(detail: str, element: str = "") -> QboFault:
    return QboFault("6000", "A business validation error has occurred while processing your request",
                    f"Business Validation Error: {detail}", element)


def not_found(entity: str, element: str = "") -> QboFault:
    return QboFault("610", "Object Not Found",
                    "Object Not Found : Something you're trying to use has been made inactive. Check the fields "
                    f"with accounts, customers, items, vendors or employees. ({entity})", element)


def invalid_ref(entity: str, value: Any, element: str) -> QboFault:
    return QboFault("2500", "Invalid Reference Id", f"Invalid Reference Id : {entity} element id {value} not found",
                    element)


def parse_error(detail: str) -> QboFault:
    return QboFault("4000", "Error parsing query", f"QueryParserError: {detail}")


def query_invalid(detail: str) -> QboFault:
    return QboFault("4001", "Invalid query", f"QueryValidationError: {detail}")


# -- numbers ---------------------------------------------------------------------------------------
money = half_up  # QBO rounds amounts half-up to the cent (reference §11)


def dec(value: Any, name: str) -> Decimal:
    if isinstance(value, bool) or value is None:
        raise QboFault("2010", "Request has invalid or unsupported property",
                       f"Property Name:{name} must be a number", name)
    try:
        out = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise QboFault("2010", "Request has invalid or unsupported property",
                       f"Property Name:{name} must be a number", name) from None
    if not out.is_finite():
        raise QboFault("2010", "Request has invalid or unsupported property", f"Property Name:{name}", name)
    return out


def s(value: Decimal) -> str:
    return format(value, "f")


def _out(node: Any) -> Any:
    """Stored record -> wire: drop ``_private`` keys, amounts (stored as strings) become numbers."""
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k.startswith("_"):
                continue
            if k in NUMERIC and isinstance(v, str):
                out[k] = Decimal(v)
            else:
                out[k] = _out(v)
        return out
    if isinstance(node, list):
        return [_out(v) for v in node]
    return node


QboResponse = ExactJsonResponse  # Decimals go out as JSON numbers; dispatch adds Intuit's intuit_tid
