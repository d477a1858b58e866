"""Money: `Decimal` end to end, strings on the wire, explicit rounding.

Rules (documented in the README):
- amounts travel as decimal strings ("12.50"); a JSON float is refused, because 0.1 + 0.2 is not 0.3;
- each currency has its minor-unit exponent (2 by default; 0 for JPY, KRW, ...; 3 for BHD, KWD, ...);
- an invoice line's net is quantity x unit price rounded half-even to the currency's minor unit, its
  tax is net x rate rounded the same way, per line; totals are sums of the rounded lines
  (QuickBooks and Xero both round per line by default);
- a payment or journal amount with more decimals than its currency has is refused, never rounded.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

from servers.kit.errors import DomainError

ZERO = Decimal("0")
ROUNDING = "per line, half-even to the currency's minor unit"
_EXPONENTS = {"JPY": 0, "KRW": 0, "CLP": 0, "ISK": 0, "VND": 0, "UGX": 0, "BHD": 3, "KWD": 3, "OMR": 3, "JOD": 3, "TND": 3}
_NUMBER = re.compile(r"^-?\d{1,15}(\.\d{1,8})?$")


def _parse(value: Any) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool) or isinstance(value, float):
        raise ValueError('amounts are decimal strings such as "12.50", not JSON numbers with a fraction')
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, str) and _NUMBER.match(value.strip()):
        return Decimal(value.strip())
    raise ValueError(f'{value!r} is not a decimal amount such as "12.50"')


def _show(value: Decimal) -> str:
    return format(value, "f")


Amount = Annotated[
    Decimal,
    BeforeValidator(_parse),
    PlainSerializer(_show, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": r"^-?\d{1,15}(\.\d{1,8})?$", "examples": ["1250.00"]}),
]
"""A decimal amount: a string on the wire, `Decimal` inside."""


def exponent(currency: str) -> int:
    return _EXPONENTS.get(currency.upper(), 2)


def round_money(value: Decimal, currency: str) -> Decimal:
    """Half-even to the currency's minor unit."""
    return value.quantize(Decimal(1).scaleb(-exponent(currency)), rounding=ROUND_HALF_EVEN)


def exact_money(value: Decimal, currency: str, field: str) -> Decimal:
    """`value` at the currency's precision; more decimals than the currency has is an error, not a rounding."""
    try:
        rounded = round_money(value, currency)
    except InvalidOperation:
        raise DomainError("invalid_argument", f"{field}: {value} is out of range", details={"field": field}) from None
    if rounded != value:
        raise DomainError("invalid_argument", f"{field}: {value} has more decimals than {currency} allows ({exponent(currency)})",
                          details={"field": field})
    return rounded


def allocate(total: Decimal, weights: list[Decimal], currency: str) -> list[Decimal]:
    """Split `total` in proportion to `weights`, rounded, with the remainder on the largest share, so parts sum to `total`."""
    whole = sum(weights, ZERO)
    if not weights or whole == 0:
        return [ZERO for _ in weights]
    parts = [round_money(total * w / whole, currency) for w in weights]
    parts[max(range(len(weights)), key=lambda i: abs(weights[i]))] += total - sum(parts, ZERO)
    return parts


def read_amount(text: Any) -> Decimal | None:
    """A provider's amount (number or text, maybe with thousands separators) as Decimal; None if blank or not a number."""
    if text in (None, ""):
        return None
    try:
        return Decimal(str(text).replace(",", ""))
    except InvalidOperation:
        return None


def read_money(value: Any, currency: str) -> Decimal:
    """A provider's amount at the currency's precision (a blank or missing amount is zero)."""
    return round_money(read_amount(value) or ZERO, currency)
