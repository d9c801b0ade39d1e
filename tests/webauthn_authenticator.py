"""The software WebAuthn authenticator lives in bench/webauthn_authenticator.py, where the
benchmark's passkey logins sign with it too; the tests keep importing it from here."""

from bench.webauthn_authenticator import (
    AT,
    BE,
    BS,
    COSE_ALGORITHMS,
    UP,
    UV,
    Algorithm,
    Attestation,
    PrivateKey,
    SoftwareAuthenticator,
    StoredCredential,
)

__all__ = [
    "AT",
    "BE",
    "BS",
    "COSE_ALGORITHMS",
    "UP",
    "UV",
    "Algorithm",
    "Attestation",
    "PrivateKey",
    "SoftwareAuthenticator",
    "StoredCredential",
]
