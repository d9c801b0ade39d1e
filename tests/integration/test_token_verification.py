"""Only EdDSA tokens signed by one of our keys, for us, and unexpired, are accepted."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bastion.bootstrap import Services, build
from bastion.core.clock import FrozenClock
from bastion.tokens.errors import AccessTokenExpired, InvalidToken
from bastion.tokens.model import AccessClaims
from bastion.tokens.service import TokenService
from tests.support import SmtpServer, make_settings


@pytest.fixture
async def services(database_url: str, smtp: SmtpServer) -> AsyncIterator[Services]:
    services = build(make_settings(database_url, smtp.url), clock=FrozenClock())
    await services.tokens.ensure_key()
    try:
        yield services
    finally:
        services.hasher.close()
        await services.engine.dispose()


def claims(services: Services, ttl: timedelta = timedelta(hours=1)) -> AccessClaims:
    now = services.clock.now()
    return AccessClaims(
        sub=uuid.uuid4(),
        email="a@example.com",
        role="user",
        sid=uuid.uuid4(),
        iat=now,
        exp=now + ttl,
        jti=uuid.uuid4().hex,
    )


def b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def parts(token: str) -> tuple[dict[str, object], dict[str, object], str]:
    header, payload, signature = token.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    return (
        json.loads(base64.urlsafe_b64decode(pad(header))),
        json.loads(base64.urlsafe_b64decode(pad(payload))),
        signature,
    )


async def test_a_token_we_signed_verifies_with_its_claims(services: Services) -> None:
    issued = claims(services)
    token = await services.tokens.issue(issued)
    header, _, _ = parts(token)
    assert header["alg"] == "EdDSA" and isinstance(header["kid"], str)
    verified = await services.tokens.verify(token)
    assert verified["sub"] == str(issued.sub)
    assert verified["sid"] == str(issued.sid)
    assert {"iss", "aud", "email", "role", "iat", "exp", "jti"} <= verified.keys()


async def test_alg_none_is_rejected(services: Services) -> None:
    header, payload, _ = parts(await services.tokens.issue(claims(services)))
    forged = f"{b64({**header, 'alg': 'none'})}.{b64(payload)}."
    with pytest.raises(InvalidToken):
        await services.tokens.verify(forged)


async def test_hs256_signed_with_the_public_key_is_rejected(services: Services) -> None:
    header, payload, _ = parts(await services.tokens.issue(claims(services)))
    jwks = await services.tokens.jwks()
    public_key = jwks["keys"][0]["x"]
    forged = jwt.encode(payload, public_key, algorithm="HS256", headers={"kid": header["kid"]})
    with pytest.raises(InvalidToken):
        await services.tokens.verify(forged)


async def test_a_tampered_payload_is_rejected(services: Services) -> None:
    _, payload, signature = parts(await services.tokens.issue(claims(services)))
    header_part = (await services.tokens.issue(claims(services))).split(".")[0]
    forged = f"{header_part}.{b64({**payload, 'role': 'admin'})}.{signature}"
    with pytest.raises(InvalidToken):
        await services.tokens.verify(forged)


async def test_a_token_signed_by_a_foreign_key_with_our_kid_is_rejected(services: Services) -> None:
    header, payload, _ = parts(await services.tokens.issue(claims(services)))
    forged = jwt.encode(
        payload, Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": header["kid"]}
    )
    with pytest.raises(InvalidToken):
        await services.tokens.verify(forged)


async def test_an_unknown_kid_is_rejected(services: Services) -> None:
    _, payload, _ = parts(await services.tokens.issue(claims(services)))
    forged = jwt.encode(
        payload, Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": "nope"}
    )
    with pytest.raises(InvalidToken):
        await services.tokens.verify(forged)


@pytest.mark.parametrize("field", ["issuer", "audience"])
async def test_a_token_for_another_issuer_or_audience_is_rejected(
    services: Services, field: str
) -> None:
    other = TokenService(
        services.uow,
        services.tokens._sealer,
        services.clock,
        issuer="https://evil.example" if field == "issuer" else services.tokens.issuer,
        audience="other-api" if field == "audience" else services.tokens.audience,
        access_token_ttl=3600,
    )
    token = await other.issue(claims(services))
    with pytest.raises(InvalidToken):
        await services.tokens.verify(token)


async def test_an_expired_token_is_rejected_as_expired(services: Services) -> None:
    token = await services.tokens.issue(claims(services, ttl=timedelta(seconds=60)))
    assert isinstance(services.clock, FrozenClock)
    services.clock.advance(61)
    with pytest.raises(AccessTokenExpired):
        await services.tokens.verify(token)


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "é.é.é", "x" * 5000])
async def test_garbage_is_an_invalid_token(services: Services, garbage: str) -> None:
    with pytest.raises(InvalidToken):
        await services.tokens.verify(garbage)


async def test_after_rotation_old_tokens_stay_valid_and_both_keys_are_published(
    services: Services,
) -> None:
    old_token = await services.tokens.issue(claims(services))
    assert isinstance(services.clock, FrozenClock)
    services.clock.advance(1)
    new_key = await services.tokens.rotate()
    new_token = await services.tokens.issue(claims(services))
    assert parts(new_token)[0]["kid"] == new_key.kid
    assert (await services.tokens.verify(old_token))["sub"]
    kids = {key["kid"] for key in (await services.tokens.jwks())["keys"]}
    assert {parts(old_token)[0]["kid"], new_key.kid} <= kids
