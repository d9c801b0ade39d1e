"""Second factors: enrolment and removal, recovery codes, the second step of a log-in (or of a
reauthentication), passkey log-in, and the checks that critical changes are recently proven.

Nothing here knows HTTP or the log-in flow: the log-in asks ``start_second_step`` whether a
second step is due and ``complete_login`` to pass it; a route asks ``ensure_recent`` before a
critical change.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import segno
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.authentication.verify_authentication_response import VerifiedAuthentication
from webauthn.helpers import (
    options_to_json_dict,
    parse_authentication_credential_json,
    parse_client_data_json,
    parse_registration_credential_json,
)
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticationCredential,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    CredentialDeviceType,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from bastion.accounts.model import User
from bastion.audit.model import EventType, by, event
from bastion.core.clock import Clock
from bastion.core.context import RequestContext
from bastion.core.errors import Unauthenticated
from bastion.core.secrets import Sealer, hash_token, new_token
from bastion.events.model import StreamEventType, user_event
from bastion.events.model import sessions_revoked as session_events
from bastion.mail import messages
from bastion.mfa.errors import (
    FactorNotFound,
    InvalidCredential,
    InvalidEnrolmentCode,
    InvalidMfaCode,
    InvalidRegistration,
    MfaEnrolmentRequired,
    MfaNotEnabled,
    MfaRequiredByRole,
    MfaTokenInvalid,
    ReauthenticationRequired,
    SecondStepRejected,
    SecondStepsPaused,
)
from bastion.mfa.model import (
    PENDING_TOTP_LIFETIME,
    RECOVERY_CODES_LOW,
    WEBAUTHN_CHALLENGE_LIFETIME,
    Aal,
    AdminRefusal,
    ChallengePurpose,
    Factor,
    FactorType,
    MfaToken,
    SecondStep,
    TotpFactor,
    WebAuthnChallenge,
    WebAuthnCredential,
    aal_needed,
    accepted_totp_step,
    admin_refusal,
    challenge_hash,
    default_name,
    factor_name,
    looks_like_totp_code,
    mfa_token_usable,
    new_challenge,
    new_mfa_token,
    new_recovery_codes,
    new_totp_factor,
    new_totp_secret,
    otpauth_uri,
    pending_lapsed,
    reauthentication_needed,
    recovery_code_digest,
    role_requires_mfa,
    second_steps_offered,
    sign_count_accepted,
    typed_code,
    usable_factors,
)
from bastion.ratelimit.model import Rule, WindowState, seconds_until
from bastion.ratelimit.ports import Limiter
from bastion.sessions.model import RevokeReason
from bastion.storage import UnitOfWork, UnitOfWorkFactory

# Failed second steps on one account, whatever the mfa_token or IP, before a pause.
SECOND_STEP_FAILURES = Rule("mfa-failures", 10, 900)
_CEREMONY_TIMEOUT_MS = int(WEBAUTHN_CHALLENGE_LIFETIME.total_seconds() * 1000)


@dataclass(frozen=True, slots=True)
class MfaRules:
    required_roles: tuple[str, ...]
    reauth_max_age: int
    mfa_token_ttl: int
    rp_id: str
    rp_name: str
    origins: tuple[str, ...]
    links: messages.Links
    failures: Rule = SECOND_STEP_FAILURES


@dataclass(frozen=True, slots=True)
class MfaStatus:
    mfa_enabled: bool
    required: bool
    factors: list[Factor]
    recovery_codes_remaining: int


@dataclass(frozen=True, slots=True)
class TotpEnrolment:
    """A pending TOTP factor and what the user's app needs to generate its codes."""

    factor_id: uuid.UUID
    secret: str
    otpauth_uri: str
    qr_svg: str


@dataclass(frozen=True, slots=True)
class Enrolled:
    factor: Factor
    recovery_codes: list[str] | None  # a fresh set when this is the user's first factor


@dataclass(frozen=True, slots=True)
class SecondStepDue:
    """What the client needs to pass the second step of a log-in."""

    mfa_token: str
    methods: list[SecondStep]
    expires_in: int


@dataclass(frozen=True, slots=True)
class PassedLogin:
    """A log-in whose second step passed: who, how, and what the password step carried."""

    user_id: uuid.UUID
    remember_me: bool
    security_state: str
    used: SecondStep


@dataclass(frozen=True, slots=True)
class _Proof:
    """A second step verified against what was read; ``apply`` makes it count, once."""

    used: SecondStep
    apply: Callable[[UnitOfWork, datetime], Awaitable[bool]]
    replayed: SecondStepRejected


@dataclass(frozen=True, slots=True)
class _Assertion:
    credential: WebAuthnCredential
    verified: VerifiedAuthentication


class MfaService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        limiter: Limiter,
        rules: MfaRules,
        secrets: Sealer,
        recovery_key: bytes,
        mail_queued: Callable[[], None],
        sessions_revoked: Callable[[list[uuid.UUID]], None] = lambda _: None,
    ) -> None:
        self._uow = uow
        # Revocations must reach this process's session-liveness cache at once.
        self._sessions_revoked = sessions_revoked
        self._clock = clock
        self._limiter = limiter
        self._rules = rules
        self._secrets = secrets
        self._recovery_key = recovery_key
        self._mail_queued = mail_queued

    async def status(self, user: User) -> MfaStatus:
        async with self._uow(read_only=True) as uow:
            factors = usable_factors(await uow.mfa_factors.of_user(user.id))
            remaining = await uow.recovery_codes.remaining(user.id) if factors else 0
        return MfaStatus(
            mfa_enabled=bool(factors),
            required=self.required_for(user),
            factors=factors,
            recovery_codes_remaining=remaining,
        )

    async def account(self, user_id: uuid.UUID) -> User:
        """The signed-in caller's account (a deleted account's sessions are revoked with it)."""
        async with self._uow(read_only=True) as uow:
            user = await uow.users.get(user_id)
        if user is None:
            raise Unauthenticated()
        return user

    async def mfa_enabled(self, user_id: uuid.UUID) -> bool:
        async with self._uow(read_only=True) as uow:
            return bool(usable_factors(await uow.mfa_factors.of_user(user_id)))

    def required_for(self, user: User) -> bool:
        return role_requires_mfa(user.role.value, self._rules.required_roles)

    async def start_totp_enrolment(self, user: User, name: str | None = None) -> TotpEnrolment:
        """A pending TOTP factor; it lapses unless confirmed within 10 minutes."""
        now = self._clock.now()
        secret = new_totp_secret()
        factor = new_totp_factor(
            user.id,
            factor_name(name, default_name(FactorType.TOTP)),
            self._secrets.seal(secret.encode()),
            now,
        )
        async with self._uow() as uow:
            lapsed = [
                f.id for f in await uow.mfa_factors.of_user(user.id) if pending_lapsed(f, now)
            ]
            await uow.mfa_factors.delete(user.id, lapsed)
            await uow.mfa_factors.add_totp(factor)
            await uow.commit()
        uri = otpauth_uri(secret, user.email, self._rules.rp_name)
        return TotpEnrolment(factor.id, secret, uri, _qr_svg(uri))

    async def confirm_totp(
        self, user: User, factor_id: uuid.UUID, code: str, context: RequestContext
    ) -> Enrolled:
        """Confirm a pending TOTP factor with a code from the app. The code's step counts as
        used, so the same code cannot then pass a log-in."""
        now = self._clock.now()
        async with self._uow(read_only=True) as uow:
            factor = await uow.mfa_factors.get(user.id, factor_id)
        if not isinstance(factor, TotpFactor) or factor.confirmed or pending_lapsed(factor, now):
            raise FactorNotFound()
        step = accepted_totp_step(self._open(factor), typed_code(code), now, factor.last_step)
        if step is None:
            raise InvalidEnrolmentCode()
        async with self._uow() as uow:
            first = not usable_factors(await uow.mfa_factors.of_user(user.id, for_update=True))
            if not await uow.mfa_factors.confirm_totp(
                factor.id, step, now, now - PENDING_TOTP_LIFETIME
            ):
                raise InvalidEnrolmentCode()
            confirmed = replace(factor, confirmed_at=now, last_used_at=now, last_step=step)
            codes = await self._factor_added(uow, user, confirmed, first, context)
            await uow.commit()
        self._mail_queued()
        return Enrolled(confirmed, codes)

    async def registration_options(self, user: User, *, passkey: bool) -> dict[str, Any]:
        """PublicKeyCredentialCreationOptions in WebAuthn JSON; the challenge works once, for
        5 minutes. A passkey is a resident key with user verification."""
        now = self._clock.now()
        async with self._uow(read_only=True) as uow:
            factors = await uow.mfa_factors.of_user(user.id)
        requirement = (
            (ResidentKeyRequirement.REQUIRED, UserVerificationRequirement.REQUIRED)
            if passkey
            else (ResidentKeyRequirement.DISCOURAGED, UserVerificationRequirement.DISCOURAGED)
        )
        options = generate_registration_options(
            rp_id=self._rules.rp_id,
            rp_name=self._rules.rp_name,
            user_id=user.id.bytes,
            user_name=user.email,
            timeout=_CEREMONY_TIMEOUT_MS,
            attestation=AttestationConveyancePreference.NONE,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=requirement[0], user_verification=requirement[1]
            ),
            exclude_credentials=_descriptors(factors),
        )
        await self._store_challenge(
            options.challenge, ChallengePurpose.REGISTRATION, user.id, now, passkey=passkey
        )
        return options_to_json_dict(options)

    async def register_webauthn(
        self,
        user: User,
        name: str | None,
        credential: dict[str, Any],
        context: RequestContext,
    ) -> Enrolled:
        """Verify the browser's answer to ``registration_options`` and keep the credential."""
        try:
            parsed = parse_registration_credential_json(credential)
            challenge = parse_client_data_json(parsed.response.client_data_json).challenge
        except Exception as exc:  # hostile input: whatever the parser raises, refuse it
            raise InvalidRegistration() from exc
        spent = await self._spend_challenge(challenge, ChallengePurpose.REGISTRATION)
        if spent is None or spent.user_id != user.id:
            raise InvalidRegistration()
        try:
            verified = verify_registration_response(
                credential=parsed,
                expected_challenge=challenge,
                expected_rp_id=self._rules.rp_id,
                expected_origin=list(self._rules.origins),
                require_user_verification=spent.passkey,
            )
        except Exception as exc:
            raise InvalidRegistration() from exc
        now = self._clock.now()
        added = WebAuthnCredential(
            id=uuid.uuid4(),
            user_id=user.id,
            name=factor_name(name, default_name(FactorType.WEBAUTHN, spent.passkey)),
            credential_id=verified.credential_id,
            public_key=verified.credential_public_key,
            sign_count=verified.sign_count,
            transports=tuple(t.value for t in parsed.response.transports or ()),
            aaguid=verified.aaguid,
            backup_eligible=verified.credential_device_type is CredentialDeviceType.MULTI_DEVICE,
            backup_state=verified.credential_backed_up,
            passkey=spent.passkey,
            created_at=now,
        )
        async with self._uow() as uow:
            if await uow.mfa_factors.credential(added.credential_id) is not None:
                raise InvalidRegistration()
            first = not usable_factors(await uow.mfa_factors.of_user(user.id, for_update=True))
            await uow.mfa_factors.add_webauthn(added)
            codes = await self._factor_added(uow, user, added, first, context)
            await uow.commit()
        self._mail_queued()
        return Enrolled(added, codes)

    async def rename(
        self, user: User, factor_id: uuid.UUID, name: str, context: RequestContext
    ) -> Factor:
        now = self._clock.now()
        async with self._uow() as uow:
            factor = await uow.mfa_factors.get(user.id, factor_id)
            if factor is None or pending_lapsed(factor, now):
                raise FactorNotFound()
            renamed = replace(factor, name=factor_name(name, factor.name))
            await uow.mfa_factors.rename(user.id, factor.id, renamed.name)
            await uow.audit.record(
                event(EventType.MFA_FACTOR_RENAMED, now, context, user.id, factor_id=str(factor.id))
            )
            await uow.commit()
        return renamed

    async def remove(self, user: User, factor_id: uuid.UUID, context: RequestContext) -> None:
        """Remove a factor. Removing the last one turns MFA off and deletes the recovery codes,
        unless the user's role requires a second factor."""
        now = self._clock.now()
        async with self._uow() as uow:
            factors = await uow.mfa_factors.of_user(user.id, for_update=True)
            factor = next((f for f in factors if f.id == factor_id), None)
            if factor is None or pending_lapsed(factor, now):
                raise FactorNotFound()
            others = [f for f in usable_factors(factors) if f.id != factor.id]
            if factor.confirmed and not others and self.required_for(user):
                raise MfaRequiredByRole()
            await uow.mfa_factors.delete(user.id, [factor.id])
            if factor.confirmed:
                if not others:
                    await uow.recovery_codes.delete_all(user.id)
                await uow.audit.record(
                    event(
                        EventType.MFA_FACTOR_REMOVED,
                        now,
                        context,
                        user.id,
                        factor_id=str(factor.id),
                        factor_type=factor.type.value,
                        mfa_enabled=bool(others),
                    )
                )
                await uow.outbox.add(messages.factor_removed(user.email, _described(factor)), now)
                await uow.events.publish(user_event(StreamEventType.MFA_CHANGED, user.id, now))
            await uow.commit()
        self._mail_queued()

    async def regenerate_recovery_codes(self, user: User, context: RequestContext) -> list[str]:
        """A new set of recovery codes; the previous set stops working."""
        now = self._clock.now()
        async with self._uow() as uow:
            if not usable_factors(await uow.mfa_factors.of_user(user.id, for_update=True)):
                raise MfaNotEnabled()
            codes = await self._replace_recovery_codes(uow, user.id, now)
            await uow.audit.record(
                event(EventType.RECOVERY_CODES_REGENERATED, now, context, user.id)
            )
            await uow.outbox.add(messages.recovery_codes_regenerated(user.email), now)
            await uow.events.publish(user_event(StreamEventType.MFA_CHANGED, user.id, now))
            await uow.commit()
        self._mail_queued()
        return codes

    async def start_second_step(
        self, user: User, remember_me: bool, security_state: str
    ) -> SecondStepDue | None:
        """None when the user has no second factor; otherwise the mfa_token (256 random bits,
        stored hashed) that the second step must present, and the methods it may use."""
        # Read-only first: a log-in without a second factor takes no write transaction here.
        async with self._uow(read_only=True) as uow:
            factors = await uow.mfa_factors.of_user(user.id)
            if not usable_factors(factors):
                return None
            methods = second_steps_offered(factors, await uow.recovery_codes.remaining(user.id))
        token = new_token()
        ttl = self._rules.mfa_token_ttl
        now = self._clock.now()
        async with self._uow() as uow:
            await uow.mfa_tokens.add(
                new_mfa_token(hash_token(token), user.id, remember_me, security_state, now, ttl)
            )
            await uow.commit()
        return SecondStepDue(token, methods, ttl)

    async def login_assertion_options(self, mfa_token: str) -> dict[str, Any]:
        """Request options listing the credentials of the user behind a usable mfa_token."""
        stored = await self._usable_token(mfa_token)
        return await self.assertion_options(stored.user_id)

    async def complete_login(
        self,
        mfa_token: str,
        context: RequestContext,
        *,
        code: str | None = None,
        credential: dict[str, Any] | None = None,
    ) -> PassedLogin:
        """Pass the second step of a log-in with a TOTP code, a recovery code or a WebAuthn
        assertion. The mfa_token is spent with it: of parallel attempts, one wins. Its fifth
        wrong code burns it."""
        stored = await self._usable_token(mfa_token)
        used = await self._second_step(
            stored.user_id, code, credential, context, token_hash=stored.token_hash
        )
        return PassedLogin(stored.user_id, stored.remember_me, stored.security_state, used)

    async def verify_second_step(
        self,
        user_id: uuid.UUID,
        context: RequestContext,
        *,
        code: str | None = None,
        credential: dict[str, Any] | None = None,
        passkey: bool = False,
    ) -> SecondStep:
        """Check a second step outside a log-in (a reauthentication): what was used. With
        ``passkey`` the credential must be a passkey and verify the user, since it stands for
        the password too."""
        return await self._second_step(user_id, code, credential, context, passkey=passkey)

    async def assertion_options(
        self, user_id: uuid.UUID, *, verify_user: bool = False
    ) -> dict[str, Any]:
        """PublicKeyCredentialRequestOptions listing the user's credentials; ``verify_user``
        asks the authenticator to verify the user when it can (a passkey standing alone)."""
        now = self._clock.now()
        async with self._uow(read_only=True) as uow:
            factors = await uow.mfa_factors.of_user(user_id)
        options = generate_authentication_options(
            rp_id=self._rules.rp_id,
            timeout=_CEREMONY_TIMEOUT_MS,
            allow_credentials=_descriptors(factors),
            user_verification=(
                UserVerificationRequirement.PREFERRED
                if verify_user
                else UserVerificationRequirement.DISCOURAGED
            ),
        )
        await self._store_challenge(options.challenge, ChallengePurpose.SECOND_STEP, user_id, now)
        return options_to_json_dict(options)

    async def passkey_options(self) -> dict[str, Any]:
        """Discoverable request options: the authenticator offers the user's passkeys."""
        options = generate_authentication_options(
            rp_id=self._rules.rp_id,
            timeout=_CEREMONY_TIMEOUT_MS,
            user_verification=UserVerificationRequirement.REQUIRED,
        )
        now = self._clock.now()
        await self._store_challenge(options.challenge, ChallengePurpose.PASSKEY_LOGIN, None, now)
        return options_to_json_dict(options)

    async def passkey_login(self, credential: dict[str, Any], context: RequestContext) -> User:
        """The user a passkey assertion (with user verification) proves; no password is used.
        Only credentials registered as passkeys sign in alone."""
        owner: uuid.UUID | None = None
        try:
            parsed, challenge = _parse_assertion(credential)
            spent = await self._spend_challenge(challenge, ChallengePurpose.PASSKEY_LOGIN)
            if spent is None:
                raise InvalidCredential(reason="challenge")
            async with self._uow(read_only=True) as uow:
                found = await uow.mfa_factors.credential(parsed.raw_id)
            owner = found.user_id if found is not None else None
            handle = parsed.response.user_handle
            if found is None or not found.passkey or (handle and handle != found.user_id.bytes):
                raise InvalidCredential(reason="unknown_credential")
            assertion = self._verify_assertion(parsed, challenge, found, require_uv=True)
            now = self._clock.now()
            async with self._uow() as uow:
                if not await self._record_assertion(uow, assertion, now):
                    raise InvalidCredential(reason="counter_regressed", factor_id=found.id)
                user = await uow.users.get(found.user_id)
                if user is None:
                    raise InvalidCredential(reason="unknown_credential")
                await uow.commit()
        except InvalidCredential as rejected:
            await self._record_rejection(EventType.PASSKEY_LOGIN_FAILED, owner, rejected, context)
            raise
        return user

    async def ensure_recent(self, user_id: uuid.UUID, *, auth_time: datetime, aal: Aal) -> None:
        """Refuse a critical change unless the session proved itself within REAUTH_MAX_AGE, at
        aal2 when the user has a second factor."""
        needed = reauthentication_needed(
            auth_time=auth_time,
            aal=aal,
            mfa_enabled=await self.mfa_enabled(user_id),
            now=self._clock.now(),
            max_age=self._rules.reauth_max_age,
        )
        if needed is not None:
            raise ReauthenticationRequired(needed.value)

    async def ensure_admin_access(
        self, user: User, *, auth_time: datetime, aal: Aal, write: bool
    ) -> None:
        """The role policy in front of the admin API (see ``mfa.model.admin_refusal``)."""
        await self.ensure_admin_access_of(
            user.id, user.role.value, auth_time=auth_time, aal=aal, write=write
        )

    async def ensure_admin_access_of(
        self, user_id: uuid.UUID, role: str, *, auth_time: datetime, aal: Aal, write: bool
    ) -> None:
        """``ensure_admin_access`` for the caller a token names (its role claim is current:
        a role change ends the user's sessions)."""
        mfa_enabled = await self.mfa_enabled(user_id)
        refusal = admin_refusal(
            role_requires=role_requires_mfa(role, self._rules.required_roles),
            mfa_enabled=mfa_enabled,
            aal=aal,
            auth_time=auth_time,
            now=self._clock.now(),
            max_age=self._rules.reauth_max_age,
            write=write,
        )
        if refusal is AdminRefusal.ENROLMENT_REQUIRED:
            raise MfaEnrolmentRequired()
        if refusal is AdminRefusal.REAUTHENTICATION_REQUIRED:
            raise ReauthenticationRequired(aal_needed(mfa_enabled).value)

    async def reset_by_admin(
        self, actor_id: uuid.UUID | None, user: User, context: RequestContext
    ) -> int:
        """An administrator (or an operator at the command line: no ``actor_id``) removes a
        locked-out user's factors and recovery codes: their sessions end, they are emailed, and
        it is audited. How many factors were removed."""
        now = self._clock.now()
        async with self._uow() as uow:
            factors = await uow.mfa_factors.of_user(user.id, for_update=True)
            await uow.mfa_factors.delete(user.id, [factor.id for factor in factors])
            await uow.recovery_codes.delete_all(user.id)
            revoked = await uow.sessions.revoke(user.id, now, RevokeReason.MFA_RESET.value)
            await uow.events.publish(
                user_event(StreamEventType.MFA_CHANGED, user.id, now),
                *session_events(user.id, revoked, now),
            )
            removed = usable_factors(factors)
            await uow.audit.record(
                event(
                    EventType.MFA_RESET_BY_ADMIN,
                    now,
                    context,
                    user.id,
                    factors_removed=len(removed),
                    **by(actor_id),
                )
            )
            for described in dict.fromkeys(_described(f) for f in removed):
                await uow.outbox.add(
                    messages.factor_removed(user.email, described, by_admin=True), now
                )
            await uow.commit()
        self._sessions_revoked(revoked)
        self._mail_queued()
        return len(removed)

    async def _second_step(
        self,
        user_id: uuid.UUID,
        code: str | None,
        credential: dict[str, Any] | None,
        context: RequestContext,
        *,
        token_hash: str | None = None,
        passkey: bool = False,
    ) -> SecondStep:
        slot = await self._take_attempt(user_id)
        try:
            proof = await self._prove(user_id, code, credential, passkey=passkey)
            now = self._clock.now()
            async with self._uow() as uow:
                if not await proof.apply(uow, now):
                    raise proof.replayed
                if token_hash is not None and await uow.mfa_tokens.spend(token_hash, now) is None:
                    raise MfaTokenInvalid()
                await uow.audit.record(
                    event(EventType.MFA_PASSED, now, context, user_id, method=proof.used.value)
                )
                if proof.used is SecondStep.RECOVERY_CODE:
                    await self._announce_recovery_code_use(uow, user_id, now)
                await uow.commit()
        except SecondStepRejected as rejected:
            await self._count_failure(user_id, slot, rejected, context, token_hash)
            raise
        except BaseException:
            await self._give_back(user_id, slot)
            raise
        await self._give_back(user_id, slot)
        if proof.used is SecondStep.RECOVERY_CODE:
            self._mail_queued()
        return proof.used

    async def _prove(
        self,
        user_id: uuid.UUID,
        code: str | None,
        credential: dict[str, Any] | None,
        *,
        passkey: bool = False,
    ) -> _Proof:
        """Verify the second step against what is stored; nothing is written yet."""
        if credential is not None:
            return await self._prove_assertion(user_id, credential, passkey=passkey)
        code = typed_code(code or "")
        if looks_like_totp_code(code):
            return await self._prove_totp(user_id, code)
        digest = recovery_code_digest(self._recovery_key, code)
        if digest is None:
            raise InvalidMfaCode(reason="malformed")

        async def use_code(uow: UnitOfWork, now: datetime) -> bool:
            return await uow.recovery_codes.use(user_id, digest, now)

        return _Proof(SecondStep.RECOVERY_CODE, use_code, InvalidMfaCode(reason="wrong_code"))

    async def _prove_totp(self, user_id: uuid.UUID, code: str) -> _Proof:
        now = self._clock.now()
        async with self._uow(read_only=True) as uow:
            factors = usable_factors(await uow.mfa_factors.of_user(user_id))
        for factor in factors:
            if not isinstance(factor, TotpFactor):
                continue
            step = accepted_totp_step(self._open(factor), code, now, factor.last_step)
            if step is not None:
                return _Proof(
                    SecondStep.TOTP,
                    _advance(factor.id, step),
                    InvalidMfaCode(reason="replayed"),
                )
        raise InvalidMfaCode(reason="wrong_code")

    async def _prove_assertion(
        self, user_id: uuid.UUID, credential: dict[str, Any], *, passkey: bool = False
    ) -> _Proof:
        parsed, challenge = _parse_assertion(credential)
        spent = await self._spend_challenge(challenge, ChallengePurpose.SECOND_STEP)
        if spent is None or spent.user_id != user_id:
            raise InvalidCredential(reason="challenge")
        async with self._uow(read_only=True) as uow:
            found = await uow.mfa_factors.credential(parsed.raw_id)
        if found is None or found.user_id != user_id or (passkey and not found.passkey):
            raise InvalidCredential(reason="unknown_credential")
        assertion = self._verify_assertion(parsed, challenge, found, require_uv=passkey)

        async def record(uow: UnitOfWork, now: datetime) -> bool:
            return await self._record_assertion(uow, assertion, now)

        replayed = InvalidCredential(reason="counter_regressed", factor_id=found.id)
        return _Proof(SecondStep.WEBAUTHN, record, replayed)

    def _verify_assertion(
        self,
        parsed: AuthenticationCredential,
        challenge: bytes,
        stored: WebAuthnCredential,
        *,
        require_uv: bool,
    ) -> _Assertion:
        try:
            verified = verify_authentication_response(
                credential=parsed,
                expected_challenge=challenge,
                expected_rp_id=self._rules.rp_id,
                expected_origin=list(self._rules.origins),
                credential_public_key=stored.public_key,
                # The counter is judged below by our own rule, only once the signature holds,
                # so that a forged assertion never reads as a cloned authenticator.
                credential_current_sign_count=0,
                require_user_verification=require_uv,
            )
        except Exception as exc:  # hostile input: whatever the verifier raises, refuse it
            raise InvalidCredential(reason="assertion") from exc
        if not sign_count_accepted(stored.sign_count, verified.new_sign_count):
            raise InvalidCredential(reason="counter_regressed", factor_id=stored.id)
        return _Assertion(stored, verified)

    async def _record_assertion(
        self, uow: UnitOfWork, assertion: _Assertion, now: datetime
    ) -> bool:
        return await uow.mfa_factors.record_assertion(
            assertion.credential.id,
            assertion.verified.new_sign_count,
            assertion.verified.credential_backed_up,
            now,
        )

    async def _take_attempt(self, user_id: uuid.UUID) -> WindowState:
        """Take this attempt's place among the account's failed second steps before checking
        it, so a parallel burst gets no more tries than a sequential one."""
        rule = self._rules.failures
        now = self._clock.now().timestamp()
        state = await self._limiter.hit(_failures_key(user_id), rule.window, rule.limit, now)
        if not state.allowed:
            raise SecondStepsPaused(seconds_until((state.oldest or now) + rule.window, now))
        return state

    async def _give_back(self, user_id: uuid.UUID, slot: WindowState) -> None:
        if slot.event is not None:
            await self._limiter.discard({_failures_key(user_id): slot.event})

    async def _count_failure(
        self,
        user_id: uuid.UUID,
        slot: WindowState,
        rejected: SecondStepRejected,
        context: RequestContext,
        token_hash: str | None,
    ) -> None:
        """The attempt's place stays taken; the failure that fills the window pauses the
        second step and, once per pause, tells the owner."""
        rule = self._rules.failures
        now = self._clock.now()
        moment = now.timestamp()
        locked = slot.count >= rule.limit and await self._limiter.block(
            _lockout_key(user_id), moment + rule.window, moment
        )
        async with self._uow() as uow:
            if token_hash is not None:
                await uow.mfa_tokens.count_wrong_code(token_hash, now)
            await self._record_rejection_in(uow, EventType.MFA_FAILED, user_id, rejected, context)
            if locked:
                await uow.audit.record(
                    event(EventType.MFA_LOCKED, now, context, user_id, failures=slot.count)
                )
                user = await uow.users.get(user_id)
                if user is not None:
                    await uow.outbox.add(messages.mfa_locked(user.email, self._rules.links), now)
            await uow.commit()
        if locked:
            self._mail_queued()

    async def _record_rejection(
        self,
        kind: EventType,
        user_id: uuid.UUID | None,
        rejected: SecondStepRejected,
        context: RequestContext,
    ) -> None:
        async with self._uow() as uow:
            await self._record_rejection_in(uow, kind, user_id, rejected, context)
            await uow.commit()

    async def _record_rejection_in(
        self,
        uow: UnitOfWork,
        kind: EventType,
        user_id: uuid.UUID | None,
        rejected: SecondStepRejected,
        context: RequestContext,
    ) -> None:
        now = self._clock.now()
        await uow.audit.record(
            event(kind, now, context, user_id, method=rejected.method, reason=rejected.reason)
        )
        if rejected.reason == "counter_regressed" and rejected.factor_id is not None:
            await uow.audit.record(
                event(
                    EventType.WEBAUTHN_COUNTER_REGRESSED,
                    now,
                    context,
                    user_id,
                    factor_id=str(rejected.factor_id),
                )
            )

    async def _announce_recovery_code_use(
        self, uow: UnitOfWork, user_id: uuid.UUID, now: datetime
    ) -> None:
        user = await uow.users.get(user_id)
        if user is None:
            return
        remaining = await uow.recovery_codes.remaining(user_id)
        await uow.outbox.add(
            messages.recovery_code_used(user.email, remaining, RECOVERY_CODES_LOW), now
        )

    async def _factor_added(
        self,
        uow: UnitOfWork,
        user: User,
        factor: Factor,
        first: bool,
        context: RequestContext,
    ) -> list[str] | None:
        """Record a new factor (audit, email) and, for the first one, create recovery codes."""
        now = self._clock.now()
        codes = await self._replace_recovery_codes(uow, user.id, now) if first else None
        await uow.events.publish(user_event(StreamEventType.MFA_CHANGED, user.id, now))
        await uow.audit.record(
            event(
                EventType.MFA_FACTOR_ADDED,
                now,
                context,
                user.id,
                factor_id=str(factor.id),
                factor_type=factor.type.value,
                passkey=factor.passkey,
            )
        )
        await uow.outbox.add(messages.factor_added(user.email, _described(factor)), now)
        return codes

    async def _replace_recovery_codes(
        self, uow: UnitOfWork, user_id: uuid.UUID, now: datetime
    ) -> list[str]:
        codes = new_recovery_codes()
        digests = [recovery_code_digest(self._recovery_key, code) for code in codes]
        await uow.recovery_codes.replace(user_id, [d for d in digests if d is not None], now)
        return codes

    async def _usable_token(self, mfa_token: str) -> MfaToken:
        async with self._uow(read_only=True) as uow:
            stored = await uow.mfa_tokens.get(hash_token(mfa_token))
        if stored is None or not mfa_token_usable(stored, self._clock.now()):
            raise MfaTokenInvalid()
        return stored

    async def _store_challenge(
        self,
        challenge: bytes,
        purpose: ChallengePurpose,
        user_id: uuid.UUID | None,
        now: datetime,
        *,
        passkey: bool = False,
    ) -> None:
        async with self._uow() as uow:
            await uow.webauthn_challenges.add(
                new_challenge(challenge, purpose, user_id, now, passkey=passkey)
            )
            await uow.commit()

    async def _spend_challenge(
        self, challenge: bytes, purpose: ChallengePurpose
    ) -> WebAuthnChallenge | None:
        """Spend the challenge on its own, whatever the ceremony's outcome: a challenge is
        answered once."""
        async with self._uow(single_statement=True) as uow:
            spent = await uow.webauthn_challenges.spend(
                challenge_hash(challenge), purpose, self._clock.now()
            )
            await uow.commit()
        return spent

    def _open(self, factor: TotpFactor) -> str:
        return self._secrets.open(factor.secret_sealed).decode()


def _advance(factor_id: uuid.UUID, step: int) -> Callable[[UnitOfWork, datetime], Awaitable[bool]]:
    async def advance(uow: UnitOfWork, now: datetime) -> bool:
        return await uow.mfa_factors.advance_totp_step(factor_id, step, now)

    return advance


def _parse_assertion(credential: dict[str, Any]) -> tuple[AuthenticationCredential, bytes]:
    try:
        parsed = parse_authentication_credential_json(credential)
        challenge = parse_client_data_json(parsed.response.client_data_json).challenge
    except Exception as exc:  # hostile input: whatever the parser raises, refuse it
        raise InvalidCredential(reason="malformed") from exc
    return parsed, challenge


def _descriptors(factors: Sequence[Factor]) -> list[PublicKeyCredentialDescriptor]:
    return [
        PublicKeyCredentialDescriptor(
            id=factor.credential_id,
            transports=[AuthenticatorTransport(t) for t in factor.transports] or None,
        )
        for factor in factors
        if isinstance(factor, WebAuthnCredential)
    ]


def _described(factor: Factor) -> str:
    if factor.type is FactorType.TOTP:
        return "an authenticator app"
    return "a passkey" if factor.passkey else "a security key"


def _qr_svg(uri: str) -> str:
    buffer = io.BytesIO()
    segno.make_qr(uri, error="m").save(buffer, kind="svg", xmldecl=False, scale=4)
    return buffer.getvalue().decode()


def _failures_key(user_id: uuid.UUID) -> str:
    return f"mfa:failures:{user_id}"


def _lockout_key(user_id: uuid.UUID) -> str:
    return f"mfa:locked:{user_id}"
