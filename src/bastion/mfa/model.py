"""Second factors and the rules about them: TOTP steps, recovery codes, WebAuthn sign counters,
assurance levels (``aal``/``amr``), step-up freshness, the role policy and the mfa_token."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import pyotp

# A TOTP factor that is not confirmed within this delay lapses.
PENDING_TOTP_LIFETIME = timedelta(minutes=10)
TOTP_STEP_SECONDS = 30
TOTP_DIGITS = 6
# Steps accepted on either side of the current one, for clocks that drift (RFC 6238 §5.2).
TOTP_DRIFT_STEPS = 1
RECOVERY_CODES_PER_SET = 10
# Crockford's base32 alphabet: no I, L, O or U, so a code read aloud or copied by hand survives.
RECOVERY_CODE_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
RECOVERY_CODE_GROUPS = 3
RECOVERY_CODE_GROUP_LENGTH = 4  # 3 × 4 symbols × 5 bits = 60 bits per code
RECOVERY_CODES_LOW = 3  # at or below this, the "code used" email warns
WEBAUTHN_CHALLENGE_LIFETIME = timedelta(minutes=5)
MFA_TOKEN_MAX_WRONG_CODES = 5
FACTOR_NAME_MAX_LENGTH = 64


class FactorType(StrEnum):
    TOTP = "totp"
    WEBAUTHN = "webauthn"


class SecondStep(StrEnum):
    """What proved the second step; also the ``methods`` an mfa_token offers."""

    TOTP = "totp"
    WEBAUTHN = "webauthn"
    RECOVERY_CODE = "recovery_code"


class Aal(StrEnum):
    AAL1 = "aal1"
    AAL2 = "aal2"


class Amr(StrEnum):
    """Authentication method references (RFC 8176) that Bastion puts in tokens."""

    PASSWORD = "pwd"  # noqa: S105 - a label, not a secret
    OTP = "otp"
    HARDWARE_KEY = "hwk"
    MULTI_FACTOR = "mfa"
    USER_PRESENCE_VERIFIED = "user"


@dataclass(frozen=True, slots=True)
class TotpFactor:
    id: uuid.UUID
    user_id: uuid.UUID
    name: str
    secret_sealed: bytes
    created_at: datetime
    confirmed_at: datetime | None = None
    last_used_at: datetime | None = None
    last_step: int | None = None  # the last accepted time step; never accepted again

    type = FactorType.TOTP
    passkey = False

    @property
    def confirmed(self) -> bool:
        return self.confirmed_at is not None


@dataclass(frozen=True, slots=True)
class WebAuthnCredential:
    """A security key or passkey; a factor from the moment it is registered."""

    id: uuid.UUID
    user_id: uuid.UUID
    name: str
    credential_id: bytes
    public_key: bytes  # COSE-encoded, as the authenticator gave it
    sign_count: int
    transports: tuple[str, ...]
    aaguid: str
    backup_eligible: bool
    backup_state: bool
    passkey: bool  # registered for signing in without a password (resident key, UV)
    created_at: datetime
    last_used_at: datetime | None = None

    type = FactorType.WEBAUTHN
    confirmed = True

    @property
    def confirmed_at(self) -> datetime:
        return self.created_at


Factor = TotpFactor | WebAuthnCredential


def new_totp_factor(
    user_id: uuid.UUID, name: str, secret_sealed: bytes, now: datetime
) -> TotpFactor:
    return TotpFactor(
        id=uuid.uuid4(), user_id=user_id, name=name, secret_sealed=secret_sealed, created_at=now
    )


def factor_name(requested: str | None, fallback: str) -> str:
    """The name a factor is stored under: the requested one tidied, or ``fallback``."""
    name = " ".join((requested or "").split())[:FACTOR_NAME_MAX_LENGTH]
    return name or fallback


def default_name(factor_type: FactorType, passkey: bool = False) -> str:
    if factor_type is FactorType.TOTP:
        return "Authenticator app"
    return "Passkey" if passkey else "Security key"


def pending_lapsed(factor: Factor, now: datetime) -> bool:
    """Whether an unconfirmed TOTP factor is past the time it had to be confirmed in."""
    return not factor.confirmed and now >= factor.created_at + PENDING_TOTP_LIFETIME


def usable_factors(factors: Iterable[Factor]) -> list[Factor]:
    """The factors that count: confirmed ones (a pending TOTP factor proves nothing yet)."""
    return [factor for factor in factors if factor.confirmed]


def second_steps_offered(factors: Iterable[Factor], recovery_codes_left: int) -> list[SecondStep]:
    """The ways a user with these factors can pass the second step, in a stable order."""
    types = {factor.type for factor in usable_factors(factors)}
    offered = [SecondStep.TOTP] if FactorType.TOTP in types else []
    if FactorType.WEBAUTHN in types:
        offered.append(SecondStep.WEBAUTHN)
    if offered and recovery_codes_left > 0:
        offered.append(SecondStep.RECOVERY_CODE)
    return offered


def new_totp_secret() -> str:
    """A random base32 TOTP secret of 160 bits (RFC 4226's recommended length)."""
    return pyotp.random_base32()


def otpauth_uri(secret: str, account: str, issuer: str) -> str:
    return pyotp.TOTP(secret, issuer=issuer).provisioning_uri(name=account, issuer_name=issuer)


def totp_step(now: datetime) -> int:
    return int(now.timestamp()) // TOTP_STEP_SECONDS


def accepted_totp_step(secret: str, code: str, now: datetime, last_step: int | None) -> int | None:
    """The time step ``code`` belongs to, if it may be accepted now; otherwise None.

    Codes of the current step and of one step on either side are accepted, but never a step at
    or before the last one accepted (RFC 6238 §5.2): a code works once, and the code that
    confirmed the factor cannot be replayed as the first login code.
    """
    if len(code) != TOTP_DIGITS or not code.isascii() or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_STEP_SECONDS)
    current = totp_step(now)
    for step in range(current - TOTP_DRIFT_STEPS, current + TOTP_DRIFT_STEPS + 1):
        if last_step is not None and step <= last_step:
            continue
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def typed_code(text: str) -> str:
    """A code as typed, without the spaces apps show in it (``123 456``) or around it."""
    return "".join(text.split())


def looks_like_totp_code(code: str) -> bool:
    return len(code) == TOTP_DIGITS and code.isascii() and code.isdigit()


def new_recovery_codes(count: int = RECOVERY_CODES_PER_SET) -> list[str]:
    """``count`` codes like ``k7q2-9fzm-3hxd``: 60 random bits each, easy to read and type."""
    length = RECOVERY_CODE_GROUPS * RECOVERY_CODE_GROUP_LENGTH
    codes = []
    for _ in range(count):
        symbols = "".join(secrets.choice(RECOVERY_CODE_ALPHABET) for _ in range(length))
        groups = [
            symbols[i : i + RECOVERY_CODE_GROUP_LENGTH]
            for i in range(0, length, RECOVERY_CODE_GROUP_LENGTH)
        ]
        codes.append("-".join(groups))
    return codes


_LOOK_ALIKES = str.maketrans({"i": "1", "l": "1", "o": "0"})


def normalize_recovery_code(text: str) -> str | None:
    """The canonical form of a typed recovery code (case, spaces, dashes and the look-alikes
    I, L, O forgiven), or None when it cannot be one."""
    compact = "".join(text.split()).replace("-", "").lower().translate(_LOOK_ALIKES)
    length = RECOVERY_CODE_GROUPS * RECOVERY_CODE_GROUP_LENGTH
    if len(compact) != length or any(c not in RECOVERY_CODE_ALPHABET for c in compact):
        return None
    return compact


def recovery_code_digest(key: bytes, code: str) -> str | None:
    """The keyed hash a recovery code is stored and looked up under (None if it is not one)."""
    normalized = normalize_recovery_code(code)
    if normalized is None:
        return None
    return hmac.new(key, normalized.encode(), hashlib.sha256).hexdigest()


def sign_count_accepted(stored: int, presented: int) -> bool:
    """Whether an assertion's signature counter is believable (WebAuthn §6.1.1).

    Synced passkeys report 0 every time, and that is fine while the stored count is 0 too. A
    counter that does not increase otherwise suggests a cloned authenticator.
    """
    if stored == 0 and presented == 0:
        return True
    return presented > stored


@dataclass(frozen=True, slots=True)
class Assurance:
    """How a session proved who it is: the ``aal`` and ``amr`` claims."""

    aal: Aal
    amr: tuple[Amr, ...]


def password_assurance() -> Assurance:
    return Assurance(Aal.AAL1, (Amr.PASSWORD,))


def passkey_assurance() -> Assurance:
    """A passkey with user verification is two factors in one device; no password was used."""
    return Assurance(Aal.AAL2, (Amr.HARDWARE_KEY, Amr.USER_PRESENCE_VERIFIED))


def after_second_step(first: Assurance, used: SecondStep) -> Assurance:
    """The assurance once a second step follows ``first``: always aal2."""
    method = Amr.HARDWARE_KEY if used is SecondStep.WEBAUTHN else Amr.OTP
    amr = _unique([*first.amr, method, Amr.MULTI_FACTOR])
    return Assurance(Aal.AAL2, amr)


def _unique(values: Sequence[Amr]) -> tuple[Amr, ...]:
    return tuple(dict.fromkeys(values))


def assurance_of(aal: str, amr: Iterable[str]) -> Assurance:
    """The assurance a token's claims state (values that are not ours are left out)."""
    level = Aal.AAL2 if aal == Aal.AAL2.value else Aal.AAL1
    known = {method.value: method for method in Amr}
    return Assurance(level, _unique([known[value] for value in amr if value in known]))


def aal_needed(mfa_enabled: bool) -> Aal:
    """The level a critical change needs: aal2 once the user has a second factor."""
    return Aal.AAL2 if mfa_enabled else Aal.AAL1


def reauthentication_needed(
    *, auth_time: datetime, aal: Aal, mfa_enabled: bool, now: datetime, max_age: int
) -> Aal | None:
    """The level to reauthenticate at before a critical change, or None when the session's
    last proof is recent enough (``max_age`` seconds) and at the level the user can reach."""
    needed = aal_needed(mfa_enabled)
    recent = now - auth_time <= timedelta(seconds=max_age)
    if recent and (aal is Aal.AAL2 or needed is Aal.AAL1):
        return None
    return needed


def role_requires_mfa(role: str, required_roles: Iterable[str]) -> bool:
    return role in set(required_roles)


class AdminRefusal(StrEnum):
    ENROLMENT_REQUIRED = "enrolment_required"
    REAUTHENTICATION_REQUIRED = "reauthentication_required"


def admin_refusal(
    *,
    role_requires: bool,
    mfa_enabled: bool,
    aal: Aal,
    auth_time: datetime,
    now: datetime,
    max_age: int,
    write: bool,
) -> AdminRefusal | None:
    """Why the admin API refuses this caller, or None.

    A role that requires MFA must enrol before using it at all, and then needs aal2 for reads
    and writes alike; every write also needs a recent authentication (step-up).
    """
    if role_requires and not mfa_enabled:
        return AdminRefusal.ENROLMENT_REQUIRED
    if role_requires and aal is not Aal.AAL2:
        return AdminRefusal.REAUTHENTICATION_REQUIRED
    if write and reauthentication_needed(
        auth_time=auth_time, aal=aal, mfa_enabled=mfa_enabled, now=now, max_age=max_age
    ):
        return AdminRefusal.REAUTHENTICATION_REQUIRED
    return None


@dataclass(frozen=True, slots=True)
class MfaToken:
    """What links a correct password to the second step: held by the client as an opaque
    256-bit token, stored here only as its hash."""

    token_hash: str
    user_id: uuid.UUID
    remember_me: bool
    # The user's security state as the password step saw it, so the session starts only if
    # nothing changed (password, role, disabled) in between.
    security_state: str
    created_at: datetime
    expires_at: datetime
    wrong_codes: int = 0
    used_at: datetime | None = None


def new_mfa_token(
    token_hash: str,
    user_id: uuid.UUID,
    remember_me: bool,
    security_state: str,
    now: datetime,
    ttl: int,
) -> MfaToken:
    return MfaToken(
        token_hash=token_hash,
        user_id=user_id,
        remember_me=remember_me,
        security_state=security_state,
        created_at=now,
        expires_at=now + timedelta(seconds=ttl),
    )


def mfa_token_usable(token: MfaToken | None, now: datetime) -> bool:
    """Unknown, used, expired and burnt (five wrong codes) tokens are all simply invalid."""
    return (
        token is not None
        and token.used_at is None
        and now < token.expires_at
        and token.wrong_codes < MFA_TOKEN_MAX_WRONG_CODES
    )


class ChallengePurpose(StrEnum):
    REGISTRATION = "registration"
    SECOND_STEP = "second_step"
    PASSKEY_LOGIN = "passkey_login"


@dataclass(frozen=True, slots=True)
class WebAuthnChallenge:
    """A challenge handed to a browser, spent by the ceremony that answers it."""

    challenge_hash: str
    purpose: ChallengePurpose
    user_id: uuid.UUID | None  # None for a discoverable (passkey) login
    passkey: bool  # for a registration: whether a passkey was asked for
    created_at: datetime
    expires_at: datetime


def new_challenge(
    challenge: bytes,
    purpose: ChallengePurpose,
    user_id: uuid.UUID | None,
    now: datetime,
    *,
    passkey: bool = False,
) -> WebAuthnChallenge:
    return WebAuthnChallenge(
        challenge_hash=challenge_hash(challenge),
        purpose=purpose,
        user_id=user_id,
        passkey=passkey,
        created_at=now,
        expires_at=now + WEBAUTHN_CHALLENGE_LIFETIME,
    )


def challenge_hash(challenge: bytes) -> str:
    return hashlib.sha256(challenge).hexdigest()
