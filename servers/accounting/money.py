"""Money: `Decimal` end to end, strings on the wire, explicit rounding.

Rules (documented in the README and docs/domains.md):
- amounts travel as decimal strings ("12.50"); a JSON float is refused, because 0.1 + 0.2 is not 0.3;
- each currency has its minor-unit exponent (2 by default; 0 for JPY, KRW, ...; 3 for BHD, KWD, ...);
- an invoice line's net is quantity x unit price rounded half-even to the currency's minor unit, its
  tax is net x rate rounded the same way, per line; totals are sums of the rounded lines
  (QuickBooks and Xero both round per line by default);
- a payment or journal amount with more decimals than its currency has is refused, never rounded;
- any amount has at most 15 digits before the point and 8 after (999999999999999.99999999): a
  larger one is refused as too large, naming the limit, not as "not a decimal"; an invoice line's
  net and an invoice's total stay within the same limit, so one payment can always settle it;
- cash-basis allocation is cumulative (`allocate_cumulative`): a payment recognises the
  allocation of everything paid so far minus that of what was paid before it, so the payment that
  settles an invoice recognises exactly what is left, and cash basis equals accrual to the cent.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation, localcontext
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema
from pydantic_core import PydanticCustomError

from servers.kit.errors import DomainError

ZERO = Decimal("0")
ROUNDING = "per line, half-even to the currency's minor unit"
_EXPONENTS = {"JPY": 0, "KRW": 0, "CLP": 0, "ISK": 0, "VND": 0, "UGX": 0, "BHD": 3, "KWD": 3, "OMR": 3, "JOD": 3, "TND": 3}
MAX_DIGITS = 15
"""Digits before the decimal point of any amount: 15 + 8 digits fit Decimal's default 28-digit precision."""
MAX_DECIMALS = 8
LARGEST = Decimal("9" * MAX_DIGITS + "." + "9" * MAX_DECIMALS)
_NUMBER = re.compile(r"^([+-]?)(\d+)(?:\.(\d*))?$")
_WORK_PRECISION = 60
"""Decimal digits for products and shares (28 by default would round 15 x 15-digit products)."""
LIMITS = f"at most {MAX_DIGITS} digits before the point and {MAX_DECIMALS} after (largest {LARGEST})"


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:40]}… ({len(value) if isinstance(value, str) else len(text)} characters)"


def _parse(value: Any) -> Decimal:
    """A wire amount as Decimal; the error's text is what the agent reads after the field name."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool):
        raise _refused('{value} is not an amount; write a decimal string such as "12.50"', str(value).lower())
    if isinstance(value, float):
        raise _refused('amounts are decimal strings such as "12.50", not JSON numbers with a fraction ({value})', repr(value))
    if isinstance(value, int):
        return _within_limits(Decimal(value), len(str(abs(value))), 0)
    match = _NUMBER.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise _refused('{value} is not a decimal amount: write digits with at most one point, such as "12.50" '
                       "(no exponent, thousands separator or currency sign)", _preview(value))
    _, whole, fraction = match.groups()
    return _within_limits(Decimal(value.strip()), len(whole.lstrip("0")), len((fraction or "").rstrip("0")))


def _within_limits(value: Decimal, digits: int, decimals: int) -> Decimal:
    if digits > MAX_DIGITS:
        raise _refused(f"the amount is too large ({digits} digits before the decimal point); amounts have {LIMITS}")
    if decimals > MAX_DECIMALS:
        raise _refused(f"the amount has {decimals} decimal places; amounts have {LIMITS}")
    return value


def _refused(template: str, value: str = "") -> PydanticCustomError:
    """A validation error read as is (no "Value error," prefix); the caller's text goes in as data, never as template."""
    return PydanticCustomError("decimal_amount", template, {"value": value})


def _show(value: Decimal) -> str:
    return format(value, "f")


Amount = Annotated[
    Decimal,
    BeforeValidator(_parse),
    PlainSerializer(_show, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "description": f'A decimal string such as "1250.00": {LIMITS}.',
                    "examples": ["1250.00"]}),
]
"""A decimal amount: a string on the wire, `Decimal` inside. The schema has no pattern on purpose:
the server's own check (`_parse`) says what is wrong (too large, too many decimals, not a number)."""


def check_magnitude(value: Decimal, field: str, what: str) -> Decimal:
    """`value` if it is within `LARGEST`; otherwise an `invalid_argument` naming the limit."""
    if abs(value) > LARGEST:
        raise DomainError("invalid_argument", f"{field}: {what} comes to {value:.6E}, too large; amounts are at most {LARGEST}",
                          details={"field": field, "limit": str(LARGEST)})
    return value


def multiply(left: Decimal, right: Decimal) -> Decimal:
    """An exact product (no rounding to the default 28 digits before it is rounded to money)."""
    with localcontext() as context:
        context.prec = _WORK_PRECISION
        return left * right


def exponent(currency: str) -> int:
    return _EXPONENTS.get(currency.upper(), 2)


def round_money(value: Decimal, currency: str) -> Decimal:
    """Half-even to the currency's minor unit."""
    return value.quantize(Decimal(1).scaleb(-exponent(currency)), rounding=ROUND_HALF_EVEN)


def exact_money(value: Decimal, currency: str, field: str) -> Decimal:
    """`value` at the currency's precision; more decimals than the currency has is an error, not a rounding."""
    check_magnitude(value, field, "the amount")
    rounded = round_money(value, currency)
    if rounded != value:
        raise DomainError("invalid_argument", f"{field}: {value} has more decimals than {currency.upper()} allows (at most "
                          f"{exponent(currency)}); round it yourself: nothing is rounded for you",
                          details={"field": field, "decimals": exponent(currency)})
    return rounded


def allocate(total: Decimal, weights: list[Decimal], currency: str) -> list[Decimal]:
    """Split `total` in proportion to `weights`, rounded, with the remainder on the largest share, so parts sum to `total`.
    Shares are computed exactly before rounding, so when `total` is the weights' sum (weights at the
    currency's precision) each part is its weight exactly."""
    whole = sum(weights, ZERO)
    if not weights or whole == 0:
        return [ZERO for _ in weights]
    with localcontext() as context:
        context.prec = _WORK_PRECISION
        parts = [round_money(total * w / whole, currency) for w in weights]
    parts[max(range(len(weights)), key=lambda i: abs(weights[i]))] += total - sum(parts, ZERO)
    return parts


def allocate_cumulative(paid_before: Decimal, amount: Decimal, weights: list[Decimal], currency: str) -> list[Decimal]:
    """The shares of `amount`, paid after `paid_before`: allocate(before + amount) - allocate(before).

    So the shares recognised by a run of payments always add up to the allocation of what has been
    paid so far (never drifting a cent per payment), and the payment that completes the weights'
    sum recognises exactly what is left of each. Shares sum to `amount`."""
    before = allocate(paid_before, weights, currency)
    after = allocate(paid_before + amount, weights, currency)
    return [a - b for a, b in zip(after, before, strict=True)]


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
