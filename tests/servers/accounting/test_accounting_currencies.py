"""Currencies: every ISO 4217 minor unit is the one amounts are priced and checked at, and a code that is
not an ISO 4217 currency is refused (outside review money19: XOF, XAF, PYG, IQD, LYD ... were priced at 2
decimals, and any three letters were accepted)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from servers.accounting.money import exact_money, exponent, round_money
from servers.accounting.server import create_server
from servers.accounting.store import EmbeddedAccounting
from servers.kit.errors import DomainError

pytestmark = pytest.mark.anyio

ISO_MINOR_UNITS = {  # ISO 4217 list one (SIX), every code whose minor unit is not 2
    **dict.fromkeys("BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF".split(), 0),
    **dict.fromkeys("BHD IQD JOD KWD LYD OMR TND".split(), 3), "CLF": 4, "UYW": 4,
}


def test_every_iso_minor_unit_other_than_two_is_known() -> None:
    wrong = {code: exponent(code) for code, unit in ISO_MINOR_UNITS.items() if exponent(code) != unit}
    assert not wrong, f"minor units differ from ISO 4217: {wrong}"
    assert (exponent("usd"), exponent("EUR"), exponent("MGA")) == (2, 2, 2)
    assert round_money(Decimal("1000.0005"), "XOF") == Decimal("1000")
    assert round_money(Decimal("1000.0005"), "LYD") == Decimal("1000.000"), "half-even at 3 decimals"
    with pytest.raises(DomainError, match="more decimals than XOF allows"):
        exact_money(Decimal("10.50"), "XOF", "amount")


def test_a_code_that_is_not_iso_4217_is_refused() -> None:
    for code in ("ABC", "XAU", "EU"):
        with pytest.raises(DomainError) as refused:
            exponent(code)
        assert refused.value.body.code == "invalid_argument" and repr(code) in refused.value.body.message
        assert "ISO 4217" in refused.value.body.message and "EUR" in refused.value.body.message


def test_a_home_currency_that_is_not_iso_4217_stops_the_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACCOUNTING_CURRENCY", "ABC")
    with pytest.raises(ValueError, match="ACCOUNTING_CURRENCY: 'ABC' is not an ISO 4217 currency code"):
        EmbeddedAccounting(tmp_path)


@pytest.mark.parametrize("currency", ["XOF", "IQD", "CLF"])
async def test_the_embedded_ledger_prices_at_the_currencys_minor_unit(currency: str, tmp_path: Path) -> None:
    async with Client(create_server(EmbeddedAccounting(tmp_path, currency))) as client:
        async def call(tool: str, **args: Any) -> dict[str, Any]:
            return (await client.call_tool(tool, args)).structured_content  # type: ignore[return-value]

        contact = await call("upsert_contact", name="Client", kind="customer")
        quote = await call("create_invoice", contact_id=contact["id"], dry_run=True,
                           lines=[{"description": "x", "quantity": "1", "unit_price": "1000.00005"}])
        net = quote["totals"]["lines"][0]["net"]
        assert len(net.partition(".")[2]) == ISO_MINOR_UNITS[currency], f"{currency} line priced at {net}"


async def test_the_tools_refuse_a_code_that_is_not_iso_4217(tmp_path: Path) -> None:
    async with Client(create_server(EmbeddedAccounting(tmp_path, "USD"))) as client:
        contact = (await client.call_tool("upsert_contact", {"name": "Client", "kind": "customer"})).structured_content
        answer = (await client.call_tool("create_invoice", {"contact_id": contact["id"], "currency": "ABC", "dry_run": True,
                                                            "lines": [{"quantity": "1", "unit_price": "1"}]})).structured_content
        assert answer["code"] == "invalid_argument", answer
        assert "'ABC' is not an ISO 4217 currency code" in answer["message"] and "EUR" in answer["message"], answer
