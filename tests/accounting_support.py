"""The QuickBooks and Xero accounting backends wired to their local fakes (tests/fakes), configured
through the environment exactly as a deployment is, with the fake serving both the API and the
OAuth token endpoint in-process. Shared by the accounting test files (issue 18: one copy)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from cryptography.fernet import Fernet

from servers.accounting.providers.quickbooks import QuickBooks
from servers.accounting.providers.xero import Xero
from tests.fakes.quickbooks import REALM, FakeQuickBooks
from tests.fakes.xero import TENANT, FakeXero


def _setenv(monkeypatch: pytest.MonkeyPatch, data_dir: Path, values: dict[str, str]) -> None:
    values = {**values, "MCP_HUB_DATA_DIR": str(data_dir), "MCP_HUB_SECRET_KEY": Fernet.generate_key().decode()}
    for name, value in values.items():
        monkeypatch.setenv(name, value)


def _transports(app: Any, wrap: Callable[[Any], Any] | None = None) -> dict[str, Any]:
    """The API transport (through `wrap`, e.g. a shim failing chosen requests) and the token endpoint's."""
    return {"transport": httpx.ASGITransport(app=wrap(app) if wrap else app), "token_transport": httpx2.ASGITransport(app=app)}


def quickbooks_on_fake(monkeypatch: pytest.MonkeyPatch, data_dir: Path,
                       wrap: Callable[[Any], Any] | None = None) -> tuple[FakeQuickBooks, QuickBooks]:
    """A fake QuickBooks Online company and the `QuickBooks` backend talking to it (its API through `wrap`)."""
    fake = FakeQuickBooks()
    _setenv(monkeypatch, data_dir, {
        "QUICKBOOKS_REALM_ID": REALM, "QUICKBOOKS_API": "http://qbo.test", "QUICKBOOKS_CLIENT_ID": fake.oauth.client_id,
        "QUICKBOOKS_CLIENT_SECRET": fake.oauth.client_secret, "QUICKBOOKS_REFRESH_TOKEN": fake.oauth.refresh_token,
        "QUICKBOOKS_TOKEN_URL": "http://qbo.test/oauth2/v1/tokens/bearer",
    })
    return fake, QuickBooks.from_env(data_dir, **_transports(fake.app(), wrap))


def xero_on_fake(monkeypatch: pytest.MonkeyPatch, data_dir: Path,
                 wrap: Callable[[Any], Any] | None = None) -> tuple[FakeXero, Xero]:
    """A fake Xero organisation (NZD) and the `Xero` backend talking to it (its API through `wrap`)."""
    fake = FakeXero()
    _setenv(monkeypatch, data_dir, {
        "XERO_TENANT_ID": TENANT, "XERO_API": "http://xero.test/api.xro/2.0", "XERO_CLIENT_ID": fake.oauth.client_id,
        "XERO_CLIENT_SECRET": fake.oauth.client_secret, "XERO_REFRESH_TOKEN": fake.oauth.refresh_token,
        "XERO_TOKEN_URL": "http://xero.test/connect/token", "XERO_CURRENCY": "NZD",
    })
    return fake, Xero.from_env(data_dir, **_transports(fake.app(), wrap))
