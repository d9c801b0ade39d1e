"""A software WebAuthn authenticator and client for the tests and the benchmark's passkey
logins, built on ``cryptography``.

It answers PublicKeyCredentialCreationOptions and PublicKeyCredentialRequestOptions in their
WebAuthn JSON form (as ``PublicKeyCredential.parseCreationOptionsFromJSON()`` reads them) with
registration and assertion responses shaped like ``PublicKeyCredential.toJSON()``. Keys are
ES256 (P-256) or Ed25519; attestation is ``none`` or ``packed`` self-attestation; the UP and UV
flags and the signature counter can be set, and a synced passkey keeps its counter at 0 with
the backup flags set. CBOR comes from py_webauthn's own helper. A credential can be exported
as JSON and imported in another process (the benchmark's load generator signs in several).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from dataclasses import dataclass, field
from typing import Any, Literal

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url, encode_cbor

Algorithm = Literal["ES256", "Ed25519"]
Attestation = Literal["none", "packed"]
PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey

UP, UV, BE, BS, AT = 0x01, 0x04, 0x08, 0x10, 0x40
COSE_ALGORITHMS = {"ES256": -7, "Ed25519": -8}


@dataclass
class StoredCredential:
    """What the authenticator keeps for one credential."""

    credential_id: bytes
    private_key: PrivateKey
    algorithm: Algorithm
    rp_id: str
    user_handle: bytes
    sign_count: int = 0


@dataclass
class SoftwareAuthenticator:
    algorithm: Algorithm = "ES256"
    attestation: Attestation = "none"
    # A synced passkey (in a password manager or a platform account): backup-eligible and
    # backed up, and its counter never moves from 0.
    synced: bool = False
    # Whether it can verify the user (PIN, biometrics) when asked to.
    verifies_users: bool = True
    transports: tuple[str, ...] = ("usb",)
    aaguid: bytes = bytes(16)
    credentials: dict[bytes, StoredCredential] = field(default_factory=dict)

    def create(
        self,
        options: dict[str, Any],
        origin: str,
        *,
        rp_id: str | None = None,
        user_present: bool = True,
        user_verified: bool | None = None,
        credential_id: bytes | None = None,
    ) -> dict[str, Any]:
        """navigator.credentials.create(): a new credential, as ``toJSON()`` shapes it.
        ``rp_id`` overrides the one in ``options`` (as a misbehaving client would), and
        ``credential_id`` reuses an id (as a misbehaving authenticator would)."""
        rp = rp_id or options["rp"]["id"]
        credential = StoredCredential(
            credential_id=credential_id or os.urandom(32),
            private_key=_new_key(self.algorithm),
            algorithm=self.algorithm,
            rp_id=rp,
            user_handle=base64url_to_bytes(options["user"]["id"]),
        )
        self.credentials[credential.credential_id] = credential
        client_data = _client_data("webauthn.create", options["challenge"], origin)
        uv = self._user_verified(options.get("authenticatorSelection", {}), user_verified)
        attested = (
            self.aaguid
            + struct.pack(">H", len(credential.credential_id))
            + credential.credential_id
            + _cose_key(credential)
        )
        auth_data = self._auth_data(rp, user_present, uv, 0, extra_flags=AT) + attested
        statement: dict[str, Any] = {}
        if self.attestation == "packed":
            signed = auth_data + hashlib.sha256(client_data).digest()
            statement = {"alg": COSE_ALGORITHMS[self.algorithm], "sig": _sign(credential, signed)}
        attestation_object = encode_cbor(
            {"fmt": self.attestation, "attStmt": statement, "authData": auth_data}
        )
        public_key = credential.private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return {
            "id": bytes_to_base64url(credential.credential_id),
            "rawId": bytes_to_base64url(credential.credential_id),
            "type": "public-key",
            "authenticatorAttachment": "cross-platform",
            "response": {
                "clientDataJSON": bytes_to_base64url(client_data),
                "attestationObject": bytes_to_base64url(attestation_object),
                "authenticatorData": bytes_to_base64url(auth_data),
                "transports": list(self.transports),
                "publicKey": bytes_to_base64url(public_key),
                "publicKeyAlgorithm": COSE_ALGORITHMS[self.algorithm],
            },
            "clientExtensionResults": {},
        }

    def get(
        self,
        options: dict[str, Any],
        origin: str,
        *,
        credential_id: bytes | None = None,
        rp_id: str | None = None,
        user_present: bool = True,
        user_verified: bool | None = None,
        sign_count: int | None = None,
    ) -> dict[str, Any]:
        """navigator.credentials.get(): an assertion, as ``toJSON()`` shapes it. Without
        ``credential_id`` the first allowed credential (or, for discoverable options, the first
        for the RP) signs. ``rp_id`` overrides the RP ID hashed into the authenticator data,
        and ``sign_count`` forces the counter (a clone lagging behind)."""
        credential = self._choose(options, options["rpId"], credential_id)
        rp = rp_id or options["rpId"]
        if sign_count is not None:
            credential.sign_count = sign_count
        elif not self.synced:
            credential.sign_count += 1
        client_data = _client_data("webauthn.get", options["challenge"], origin)
        uv = self._user_verified(options, user_verified)
        auth_data = self._auth_data(rp, user_present, uv, credential.sign_count)
        signature = _sign(credential, auth_data + hashlib.sha256(client_data).digest())
        return {
            "id": bytes_to_base64url(credential.credential_id),
            "rawId": bytes_to_base64url(credential.credential_id),
            "type": "public-key",
            "authenticatorAttachment": "cross-platform",
            "response": {
                "clientDataJSON": bytes_to_base64url(client_data),
                "authenticatorData": bytes_to_base64url(auth_data),
                "signature": bytes_to_base64url(signature),
                "userHandle": bytes_to_base64url(credential.user_handle),
            },
            "clientExtensionResults": {},
        }

    @property
    def only_credential_id(self) -> bytes:
        [credential_id] = self.credentials
        return credential_id

    def _choose(
        self, options: dict[str, Any], rp_id: str, credential_id: bytes | None
    ) -> StoredCredential:
        if credential_id is not None:
            return self.credentials[credential_id]
        allowed = [base64url_to_bytes(c["id"]) for c in options.get("allowCredentials", [])]
        for stored in self.credentials.values():
            if (not allowed or stored.credential_id in allowed) and stored.rp_id == rp_id:
                return stored
        raise LookupError("no credential of this authenticator fits the options")

    def _user_verified(self, requested: dict[str, Any], forced: bool | None) -> bool:
        if forced is not None:
            return forced
        wanted = requested.get("userVerification", "preferred") in ("required", "preferred")
        return wanted and self.verifies_users

    def _auth_data(
        self, rp_id: str, up: bool, uv: bool, sign_count: int, extra_flags: int = 0
    ) -> bytes:
        flags = extra_flags | (UP if up else 0) | (UV if uv else 0)
        if self.synced:
            flags |= BE | BS
        rp_id_hash = hashlib.sha256(rp_id.encode()).digest()
        return rp_id_hash + bytes([flags]) + struct.pack(">I", sign_count)


def _new_key(algorithm: Algorithm) -> PrivateKey:
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    return ed25519.Ed25519PrivateKey.generate()


def _cose_key(credential: StoredCredential) -> bytes:
    public = credential.private_key.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        numbers = public.public_numbers()
        return encode_cbor(
            {
                1: 2,  # kty: EC2
                3: COSE_ALGORITHMS["ES256"],
                -1: 1,  # crv: P-256
                -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big"),
            }
        )
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return encode_cbor({1: 1, 3: COSE_ALGORITHMS["Ed25519"], -1: 6, -2: raw})  # OKP, Ed25519


def _sign(credential: StoredCredential, data: bytes) -> bytes:
    key = credential.private_key
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(hashes.SHA256()))
    return key.sign(data)


def _client_data(kind: str, challenge: str, origin: str) -> bytes:
    return json.dumps(
        {"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": False}
    ).encode()


def export_credential(credential: StoredCredential) -> dict[str, Any]:
    """A credential as JSON, private key included (PKCS#8), for another process to sign with."""
    key = credential.private_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return {
        "credential_id": bytes_to_base64url(credential.credential_id),
        "private_key": bytes_to_base64url(key),
        "algorithm": credential.algorithm,
        "rp_id": credential.rp_id,
        "user_handle": bytes_to_base64url(credential.user_handle),
        "sign_count": credential.sign_count,
    }


def import_credential(exported: dict[str, Any]) -> StoredCredential:
    key = serialization.load_der_private_key(base64url_to_bytes(exported["private_key"]), None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        raise ValueError("not an ES256 or Ed25519 key")
    return StoredCredential(
        credential_id=base64url_to_bytes(exported["credential_id"]),
        private_key=key,
        algorithm=exported["algorithm"],
        rp_id=exported["rp_id"],
        user_handle=base64url_to_bytes(exported["user_handle"]),
        sign_count=exported["sign_count"],
    )
