"""A provider (or a gateway in front of it) that repeats the connector's credential in its error: the
agent's error never carries it, whatever its shape (outside review domains18 #8: a BambooHR key read
from the environment came back whole in the tool error; only credentials in a hub config were masked)."""

from __future__ import annotations

import secrets

import httpx
import pytest

from hub.redact import mask
from servers.kit.credentials import Basic, Bearer, connect
from servers.kit.errors import DomainError
from servers.kit.oauth import TokenManager

pytestmark = pytest.mark.anyio


def echoing(value: str) -> httpx.MockTransport:
    return httpx.MockTransport(lambda request: httpx.Response(
        403, json={"message": f"API key {value} is not permitted to view this; token={value}"}))


@pytest.mark.parametrize("kind", ["basic_user", "basic_password", "bearer", "oauth_secret", "oauth_refresh"])
async def test_a_credential_the_provider_repeats_is_masked_in_the_error(kind: str) -> None:
    value = secrets.token_hex(20)  # a bare 40-hex key, as BambooHR's: no shape a pattern knows
    credentials = {"basic_user": lambda: Basic(value, "x"), "basic_password": lambda: Basic("me@example.test", value),
                   "bearer": lambda: Bearer(value),
                   "oauth_secret": lambda: TokenManager("P", "http://p.test/token", "client", value, "client_credentials"),
                   "oauth_refresh": lambda: TokenManager("P", "http://p.test/token", "client", "s" * 12, "refresh_token",
                                                         refresh_token=value)}[kind]()
    http = connect("Provider", "http://p.test", credentials if kind.startswith(("basic", "bearer")) else Bearer("t" * 20),
                   transport=echoing(value))
    if kind.startswith("oauth"):  # the manager's values are remembered however it is used
        connect("Provider", "http://p.test", credentials, transport=echoing(value))
    with pytest.raises(DomainError) as error:
        await http.json("GET", "/time_off/whos_out")
    assert "not permitted" in error.value.body.message, error.value.body.message
    assert value not in error.value.body.message, error.value.body.message
    assert value not in mask(f"stderr: bad key {value}")


@pytest.mark.parametrize("spelling", ["header", "bare", "unpadded"])
async def test_a_basic_pair_the_provider_repeats_encoded_is_masked(spelling: str) -> None:
    """The Basic credential goes on the wire as base64 of `user:password`; a provider or proxy that
    repeats the header it got (`Authorization: Basic …`, or just the token) gave it back whole, and the
    pair decodes to the password."""
    import base64

    user, password = "svc-" + secrets.token_hex(3), secrets.token_urlsafe(9)
    encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
    echoed = {"header": f"Authorization: Basic {encoded}", "bare": f"credential {encoded} refused",
              "unpadded": f"credential {encoded.rstrip('=')} refused"}[spelling]
    http = connect("Provider", "http://p.test", Basic(user, password), transport=echoing(echoed))
    with pytest.raises(DomainError) as error:
        await http.json("GET", "/employees/directory")
    assert "(403)" in error.value.body.message, error.value.body.message
    assert encoded.rstrip("=") not in error.value.body.message, error.value.body.message
    assert encoded.rstrip("=") not in mask(f"stderr: {echoed}")
