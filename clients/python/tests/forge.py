"""Tokens an attacker would try: every way of signing a payload except Bastion's key."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def payload_of(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def kid_of(token: str) -> str:
    kid: str = jwt.get_unverified_header(token)["kid"]
    return kid


def _signing_input(header: dict[str, Any], payload: dict[str, Any]) -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"


def unsigned(payload: dict[str, Any], kid: str, alg: str = "none") -> str:
    return _signing_input({"alg": alg, "typ": "JWT", "kid": kid}, payload) + "."


def hmac_signed(payload: dict[str, Any], kid: str, secret: bytes) -> str:
    """HS256 keyed with something public, such as the issuer's public key."""
    signing_input = _signing_input({"alg": "HS256", "typ": "JWT", "kid": kid}, payload)
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def rsa_signed(payload: dict[str, Any], kid: str) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(payload, key, algorithm="RS256", headers={"kid": kid})


def signed_by_stranger(payload: dict[str, Any], kid: str) -> str:
    """EdDSA, with the issuer's kid, but another Ed25519 key."""
    stranger = Ed25519PrivateKey.generate()
    return jwt.encode(payload, stranger, algorithm="EdDSA", headers={"kid": kid})


def public_key_forms(jwks: dict[str, Any], kid: str) -> list[bytes]:
    """The public key as an HMAC secret might be taken from it: raw, base64, the JWK."""
    jwk = next(key for key in jwks["keys"] if key["kid"] == kid)
    raw = base64.urlsafe_b64decode(jwk["x"] + "=" * (-len(jwk["x"]) % 4))
    return [raw, jwk["x"].encode(), json.dumps(jwk).encode()]


def forgeries(token: str, jwks: dict[str, Any]) -> dict[str, str]:
    """A genuine token's claims and kid under every forged signature."""
    payload, kid = payload_of(token), kid_of(token)
    forged = {
        "alg none": unsigned(payload, kid),
        "alg None": unsigned(payload, kid, alg="None"),
        "EdDSA without signature": unsigned(payload, kid, alg="EdDSA"),
        "RS256": rsa_signed(payload, kid),
        "EdDSA by another key": signed_by_stranger(payload, kid),
    }
    for index, secret in enumerate(public_key_forms(jwks, kid)):
        forged[f"HS256 keyed with public key form {index}"] = hmac_signed(payload, kid, secret)
    header, body, signature = token.split(".")
    tampered = b64(json.dumps({**payload, "role": "admin"}).encode())
    forged["payload changed"] = f"{header}.{tampered}.{signature}"
    return forged
