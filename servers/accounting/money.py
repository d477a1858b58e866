"""Money: `Decimal` end to end, strings on the wire, explicit rounding.

Rules (documented in the README and docs/domains.md):
- amounts travel as decimal strings ("12.50"); a JSON float is refused, because 0.1 + 0.2 is not 0.3;
- each currency has its ISO 4217 minor unit (2 for most; 0 for JPY, KRW, XOF, ...; 3 for BHD, KWD, ...; 4 for
  CLF, UYW); a code a caller gives (or the home currency) that is not ISO 4217 is refused, never guessed at 2;
  a code read back from a provider or the ledger is never refused (`minor_unit`: the non-ISO codes providers
  use are known, `PROVIDER_CURRENCIES`; any other is read at the provider's digits, else 2);
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
ISO_4217 = frozenset("""
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD BTN BWP BYN BZD CAD CDF
    CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD
    GNF GTQ GYD HKD HNL HRK HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP
    LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN
    PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS
    TMT TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW
    ZWG ZWL""".split())
"""ISO 4217 currency codes (current, and recently withdrawn ones old documents still carry), without the
fund, metal and test codes that have no minor unit (XAU, XDR, XTS, XXX, ...): nothing is invoiced in those."""
_EXPONENTS = {**dict.fromkeys("BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF".split(), 0),
              **dict.fromkeys("BHD IQD JOD KWD LYD OMR TND".split(), 3), "CLF": 4, "UYW": 4}
"""ISO 4217 minor units other than 2 (SIX list one); every other code in `ISO_4217` has 2."""
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


_NO_MINOR_UNIT = frozenset("XAG XAU XBA XBB XBC XBD XDR XPD XPT XSU XTS XUA XXX".split())
"""ISO 4217 codes with no minor unit (metals, funds, test): refused, since no amount has a precision in them."""


def _not_iso(value: str) -> str:
    if isinstance(value, str) and value.strip().upper() in _NO_MINOR_UNIT:
        return (f"{_preview(value)} is an ISO 4217 metal, fund or test code with no minor unit; give the code of a "
                "currency, such as EUR, USD or JPY")
    if isinstance(value, str) and value.strip().upper() in PROVIDER_CURRENCIES:
        return (f"{_preview(value)} is a code some providers use but not an ISO 4217 currency: the hub reads invoices in it "
                "but issues only in ISO 4217 currencies (issue it in the provider itself); to pay an invoice in its own "
                "currency, leave currency out")
    return (f"{_preview(value)} is not an ISO 4217 currency code; give the three-letter code of a currency, such as EUR, "
            "USD or JPY")


def currency_code(value: str, field: str = "currency") -> str:
    """`value` as an ISO 4217 code (upper case); anything else is refused, since its minor unit is unknown."""
    code = value.strip().upper() if isinstance(value, str) else ""
    if code not in ISO_4217:
        raise DomainError("invalid_argument", f"{field}: {_not_iso(value)}", details={"field": field})
    return code


def home_currency(value: str, variable: str) -> str:
    """A configured home currency (`variable` names the setting); `ValueError` at start if not ISO 4217."""
    try:
        return currency_code(value, variable)
    except DomainError as error:
        raise ValueError(f"{error.body.message} (set {variable} to one)") from None


def _currency_field(value: Any) -> Any:
    if value is None:
        return None
    if not isinstance(value, str) or value.strip().upper() not in ISO_4217:
        raise _refused(_not_iso(value) if isinstance(value, str) else "{value} is not a currency code; give one such as EUR",
                       "" if isinstance(value, str) else repr(value))
    return value.strip().upper()


CurrencyCode = Annotated[
    str,
    BeforeValidator(_currency_field),
    WithJsonSchema({"type": "string", "description": "An ISO 4217 currency code such as EUR.", "examples": ["EUR"]}),
]
"""An ISO 4217 code, upper-cased; an unknown code is refused (its minor unit would be a guess)."""


PROVIDER_CURRENCIES = {**dict.fromkeys("GGP IMP JEP SPL TVD LTL VEF ZMK ZWD XDR".split(), 2), "BYR": 0}
"""Codes providers return that are not (or no longer) ISO 4217 currencies, with their minor units: Xero's
CurrencyCode list holds the Guernsey, Manx and Jersey pounds, the Tuvaluan dollar, the Seborga luigino
(SPL), the SDR (XDR, kept at 2 decimals there) and withdrawn codes older invoices carry (BYR had 0
decimals; LTL, VEF, ZMK, ZWD 2). Read exactly, never refused; not accepted as arguments (`currency_code`)."""


def exponent(currency: str) -> int:
    """The currency's ISO 4217 minor unit (decimals); an unknown code is an `invalid_argument`: for codes
    a caller gives. Amounts a provider or the stored ledger holds go through `minor_unit`."""
    return _EXPONENTS.get(currency_code(currency), 2)


def known_currency(currency: str | None) -> bool:
    """Whether the minor unit of `currency` is known (ISO 4217 or `PROVIDER_CURRENCIES`)."""
    code = currency.strip().upper() if isinstance(currency, str) else ""
    return code in ISO_4217 or code in PROVIDER_CURRENCIES


def minor_unit(currency: str | None, digits: int | None = None) -> int:
    """The decimals of amounts in `currency` as read back (a provider's record, the stored ledger): ISO 4217's,
    then `PROVIDER_CURRENCIES`', then the provider's own `digits`, else 2. Never refuses: one record in a code
    we do not know must not fail a read (outside review recheck21d #2); arguments are checked where they
    enter (`currency_code`, `CurrencyCode`)."""
    code = currency.strip().upper() if isinstance(currency, str) else ""
    if code in ISO_4217:
        return _EXPONENTS.get(code, 2)
    if code in PROVIDER_CURRENCIES:
        return PROVIDER_CURRENCIES[code]
    return digits if isinstance(digits, int) and 0 <= digits <= MAX_DECIMALS else 2


def round_money(value: Decimal, currency: str, digits: int | None = None) -> Decimal:
    """Half-even to the currency's minor unit (`minor_unit`: the code was checked where it came in)."""
    return value.quantize(Decimal(1).scaleb(-minor_unit(currency, digits)), rounding=ROUND_HALF_EVEN)


def exact_money(value: Decimal, currency: str, field: str) -> Decimal:
    """`value` at the currency's precision; more decimals than the currency has is an error, not a rounding."""
    check_magnitude(value, field, "the amount")
    rounded = round_money(value, currency)
    if rounded != value:
        raise DomainError("invalid_argument", f"{field}: {value} has more decimals than {currency.upper()} allows (at most "
                          f"{minor_unit(currency)}); round it yourself: nothing is rounded for you",
                          details={"field": field, "decimals": minor_unit(currency)})
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


def read_money(value: Any, currency: str, digits: int | None = None) -> Decimal:
    """A provider's amount at the currency's precision (a blank or missing amount is zero). The code is the
    provider's, so it is never refused: one we do not know keeps the digits the provider sent (at least 2)."""
    amount = read_amount(value) or ZERO
    if digits is None and not known_currency(currency):
        sent = -amount.as_tuple().exponent  # type: ignore[operator]
        digits = min(max(sent, 2), MAX_DECIMALS)  # the provider's own digits: nothing it sent is rounded away
    return round_money(amount, currency, digits)
