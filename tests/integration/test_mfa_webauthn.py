"""Security keys and passkeys through the real services on SQLite and PostgreSQL, answered by a
software authenticator: registration, the second step, passkey log-in, and the ways each must
fail."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url

from bastion.audit.model import EventType
from bastion.mfa.errors import InvalidCredential, InvalidRegistration
from bastion.mfa.model import FactorType, SecondStep, WebAuthnCredential
from bench.webauthn_authenticator import Algorithm, Attestation, SoftwareAuthenticator
from tests.mfa_support import CONTEXT, ORIGIN, MfaWorld, mfa_world
from tests.support import SmtpServer, text_of

APP_ORIGIN = "https://app.bastion.test"


@pytest.fixture
async def world(database_url: str, smtp: SmtpServer) -> AsyncIterator[MfaWorld]:
    async with mfa_world(database_url, smtp, webauthn_origins=[APP_ORIGIN]) as running:
        yield running


async def test_registration_options_are_webauthn_json_with_rp_and_user_from_the_server(
    world: MfaWorld,
) -> None:
    user = await world.user()
    options = await world.mfa.registration_options(user, passkey=False)

    assert options["rp"] == {"name": "Bastion", "id": "bastion.test"}
    assert base64url_to_bytes(options["user"]["id"]) == user.id.bytes
    assert options["user"]["name"] == user.email
    assert len(base64url_to_bytes(options["challenge"])) >= 32
    assert options["timeout"] == 300_000
    assert {p["alg"] for p in options["pubKeyCredParams"]} >= {-7, -8}
    assert options["excludeCredentials"] == []
    assert options["attestation"] == "none"
    assert options["authenticatorSelection"]["userVerification"] == "discouraged"
    assert json.loads(json.dumps(options)) == options


async def test_passkey_options_ask_for_a_resident_key_with_user_verification(
    world: MfaWorld,
) -> None:
    options = await world.mfa.registration_options(await world.user(), passkey=True)
    selection = options["authenticatorSelection"]
    assert selection["residentKey"] == "required" and selection["requireResidentKey"] is True
    assert selection["userVerification"] == "required"


@pytest.mark.parametrize(
    ("algorithm", "attestation"), [("ES256", "none"), ("Ed25519", "packed"), ("ES256", "packed")]
)
async def test_a_security_key_is_registered_as_the_first_factor_with_recovery_codes(
    world: MfaWorld, algorithm: Algorithm, attestation: Attestation
) -> None:
    user = await world.user()
    key = SoftwareAuthenticator(algorithm=algorithm, attestation=attestation)
    enrolled = await world.with_key(user, key)

    factor = enrolled.factor
    assert isinstance(factor, WebAuthnCredential)
    assert factor.type is FactorType.WEBAUTHN and not factor.passkey
    assert factor.name == "Security key"
    assert factor.credential_id == key.only_credential_id
    assert factor.transports == ("usb",) and factor.sign_count == 0
    assert not factor.backup_eligible and not factor.backup_state
    assert enrolled.recovery_codes is not None and len(enrolled.recovery_codes) == 10
    status = await world.mfa.status(user)
    assert status.mfa_enabled and [f.id for f in status.factors] == [factor.id]
    message = await world.mailbox.wait_for(user.email, "second factor was added")
    assert "a security key" in text_of(message).lower()


async def test_a_synced_passkey_is_stored_as_backed_up(world: MfaWorld) -> None:
    user = await world.user()
    enrolled = await world.with_key(user, SoftwareAuthenticator(synced=True), passkey=True)
    assert isinstance(enrolled.factor, WebAuthnCredential)
    assert enrolled.factor.passkey and enrolled.factor.name == "Passkey"
    assert enrolled.factor.backup_eligible and enrolled.factor.backup_state


async def test_registered_credentials_are_excluded_from_the_next_registration(
    world: MfaWorld,
) -> None:
    user = await world.user()
    key = SoftwareAuthenticator(transports=("usb", "nfc"))
    await world.with_key(user, key)
    options = await world.mfa.registration_options(user, passkey=False)
    assert options["excludeCredentials"] == [
        {
            "id": bytes_to_base64url(key.only_credential_id),
            "type": "public-key",
            "transports": ["usb", "nfc"],
        }
    ]


async def test_an_extra_configured_origin_may_register(world: MfaWorld) -> None:
    user = await world.user()
    options = await world.mfa.registration_options(user, passkey=False)
    response = SoftwareAuthenticator().create(options, APP_ORIGIN)
    enrolled = await world.mfa.register_webauthn(user, "App key", response, CONTEXT)
    assert enrolled.factor.name == "App key"


async def test_a_registration_from_another_origin_is_refused(world: MfaWorld) -> None:
    user = await world.user()
    options = await world.mfa.registration_options(user, passkey=False)
    response = SoftwareAuthenticator().create(options, "https://evil.example.com")
    with pytest.raises(InvalidRegistration):
        await world.mfa.register_webauthn(user, None, response, CONTEXT)
    assert not (await world.mfa.status(user)).mfa_enabled


async def test_a_registration_for_another_rp_id_is_refused(world: MfaWorld) -> None:
    user = await world.user()
    options = await world.mfa.registration_options(user, passkey=False)
    response = SoftwareAuthenticator().create(options, ORIGIN, rp_id="evil.example.com")
    with pytest.raises(InvalidRegistration):
        await world.mfa.register_webauthn(user, None, response, CONTEXT)


async def test_a_registration_response_works_once(world: MfaWorld) -> None:
    user = await world.user()
    options = await world.mfa.registration_options(user, passkey=False)
    response = SoftwareAuthenticator().create(options, ORIGIN)
    await world.mfa.register_webauthn(user, None, response, CONTEXT)
    with pytest.raises(InvalidRegistration):
        await world.mfa.register_webauthn(user, None, response, CONTEXT)


async def test_a_challenge_issued_to_another_user_cannot_register(world: MfaWorld) -> None:
    owner, thief = await world.user(), await world.user()
    options = await world.mfa.registration_options(owner, passkey=False)
    response = SoftwareAuthenticator().create(options, ORIGIN)
    with pytest.raises(InvalidRegistration):
        await world.mfa.register_webauthn(thief, None, response, CONTEXT)


async def test_a_challenge_expires_after_five_minutes(world: MfaWorld) -> None:
    user = await world.user()
    options = await world.mfa.registration_options(user, passkey=False)
    world.clock.advance(300)
    with pytest.raises(InvalidRegistration):
        await world.mfa.register_webauthn(
            user, None, SoftwareAuthenticator().create(options, ORIGIN), CONTEXT
        )


async def test_a_passkey_registration_without_user_verification_is_refused(
    world: MfaWorld,
) -> None:
    user = await world.user()
    options = await world.mfa.registration_options(user, passkey=True)
    response = SoftwareAuthenticator(verifies_users=False).create(options, ORIGIN)
    with pytest.raises(InvalidRegistration):
        await world.mfa.register_webauthn(user, None, response, CONTEXT)


async def test_a_credential_already_registered_is_refused(world: MfaWorld) -> None:
    first, second = await world.user(), await world.user()
    key = SoftwareAuthenticator()
    await world.with_key(first, key)
    options = await world.mfa.registration_options(second, passkey=False)
    response = key.create(options, ORIGIN, credential_id=key.only_credential_id)
    with pytest.raises(InvalidRegistration):
        await world.mfa.register_webauthn(second, None, response, CONTEXT)


@pytest.mark.parametrize(
    "mangled",
    [
        {},
        {"id": "x", "rawId": "x", "type": "public-key", "response": {}},
        {"id": "é", "rawId": "é", "type": "public-key", "response": {"clientDataJSON": "é"}},
        {"id": 1, "rawId": [], "type": "public-key", "response": "nope"},
    ],
)
async def test_malformed_registration_responses_are_refused(
    world: MfaWorld, mangled: dict[str, object]
) -> None:
    with pytest.raises(InvalidRegistration):
        await world.mfa.register_webauthn(await world.user(), None, mangled, CONTEXT)


async def test_a_security_key_passes_the_second_step_of_a_login(world: MfaWorld) -> None:
    user = await world.user()
    key = SoftwareAuthenticator(algorithm="Ed25519")
    await world.with_key(user, key)
    due = await world.mfa.start_second_step(user, False, "state")
    assert due is not None and due.methods == [SecondStep.WEBAUTHN, SecondStep.RECOVERY_CODE]

    options = await world.mfa.login_assertion_options(due.mfa_token)
    assert options["rpId"] == "bastion.test"
    assert [c["id"] for c in options["allowCredentials"]] == [
        bytes_to_base64url(key.only_credential_id)
    ]
    passed = await world.mfa.complete_login(
        due.mfa_token, CONTEXT, credential=key.get(options, ORIGIN)
    )

    assert passed.used is SecondStep.WEBAUTHN
    async with world.services.uow(read_only=True) as uow:
        stored = await uow.mfa_factors.credential(key.only_credential_id)
    assert stored is not None and stored.sign_count == 1
    assert stored.last_used_at == world.clock.now()


@pytest.mark.parametrize(
    ("origin", "rp_id"), [("https://evil.example.com", None), (ORIGIN, "evil.example.com")]
)
async def test_an_assertion_from_another_origin_or_rp_id_is_refused(
    world: MfaWorld, origin: str, rp_id: str | None
) -> None:
    user = await world.user()
    key = SoftwareAuthenticator()
    await world.with_key(user, key)
    token = await world.login_token(user)
    options = await world.mfa.login_assertion_options(token)
    with pytest.raises(InvalidCredential):
        await world.mfa.complete_login(
            token, CONTEXT, credential=key.get(options, origin, rp_id=rp_id)
        )
    [failure] = await world.events(user.id, EventType.MFA_FAILED)
    assert failure.details == {"method": "webauthn", "reason": "assertion"}


async def test_a_replayed_assertion_is_refused(world: MfaWorld) -> None:
    user = await world.user()
    key = SoftwareAuthenticator()
    await world.with_key(user, key)
    first = await world.login_token(user)
    assertion = key.get(await world.mfa.login_assertion_options(first), ORIGIN)
    await world.mfa.complete_login(first, CONTEXT, credential=assertion)
    with pytest.raises(InvalidCredential):
        await world.mfa.complete_login(await world.login_token(user), CONTEXT, credential=assertion)


async def test_parallel_uses_of_one_assertion_give_one_winner(world: MfaWorld) -> None:
    user = await world.user()
    key = SoftwareAuthenticator()
    await world.with_key(user, key)
    tokens = [await world.login_token(user) for _ in range(5)]
    assertion = key.get(await world.mfa.login_assertion_options(tokens[0]), ORIGIN)
    outcomes = await asyncio.gather(
        *(world.mfa.complete_login(t, CONTEXT, credential=assertion) for t in tokens),
        return_exceptions=True,
    )
    assert sum(1 for outcome in outcomes if not isinstance(outcome, BaseException)) == 1
    assert all(isinstance(o, InvalidCredential) for o in outcomes if isinstance(o, BaseException))


async def test_another_users_credential_cannot_pass_the_second_step(world: MfaWorld) -> None:
    owner, victim = await world.user(), await world.user()
    owner_key, victim_key = SoftwareAuthenticator(), SoftwareAuthenticator()
    await world.with_key(owner, owner_key)
    await world.with_key(victim, victim_key)
    token = await world.login_token(victim)
    options = await world.mfa.login_assertion_options(token)
    forged = owner_key.get(options, ORIGIN, credential_id=owner_key.only_credential_id)
    with pytest.raises(InvalidCredential):
        await world.mfa.complete_login(token, CONTEXT, credential=forged)


async def test_a_counter_going_backwards_is_refused_and_audited(world: MfaWorld) -> None:
    user = await world.user()
    key = SoftwareAuthenticator()
    enrolled = await world.with_key(user, key)
    for _ in range(3):
        token = await world.login_token(user)
        options = await world.mfa.login_assertion_options(token)
        await world.mfa.complete_login(token, CONTEXT, credential=key.get(options, ORIGIN))

    token = await world.login_token(user)
    options = await world.mfa.login_assertion_options(token)
    cloned = key.get(options, ORIGIN, sign_count=2)
    with pytest.raises(InvalidCredential):
        await world.mfa.complete_login(token, CONTEXT, credential=cloned)
    [regressed] = await world.events(user.id, EventType.WEBAUTHN_COUNTER_REGRESSED)
    assert regressed.details == {"factor_id": str(enrolled.factor.id)}
    async with world.services.uow(read_only=True) as uow:
        stored = await uow.mfa_factors.credential(key.only_credential_id)
    assert stored is not None and stored.sign_count == 3


async def test_a_synced_credential_whose_counter_stays_zero_keeps_working(
    world: MfaWorld,
) -> None:
    user = await world.user()
    key = SoftwareAuthenticator(synced=True)
    await world.with_key(user, key, passkey=True)
    for _ in range(3):
        token = await world.login_token(user)
        options = await world.mfa.login_assertion_options(token)
        passed = await world.mfa.complete_login(token, CONTEXT, credential=key.get(options, ORIGIN))
        assert passed.used is SecondStep.WEBAUTHN
    assert await world.events(user.id, EventType.WEBAUTHN_COUNTER_REGRESSED) == []


async def test_an_assertion_for_a_reauthentication_uses_its_own_options(world: MfaWorld) -> None:
    user = await world.user()
    key = SoftwareAuthenticator()
    await world.with_key(user, key)
    options = await world.mfa.assertion_options(user.id)
    used = await world.mfa.verify_second_step(user.id, CONTEXT, credential=key.get(options, ORIGIN))
    assert used is SecondStep.WEBAUTHN


async def test_a_passkey_signs_in_without_a_password(world: MfaWorld) -> None:
    user = await world.user()
    key = SoftwareAuthenticator(algorithm="Ed25519")
    await world.with_key(user, key, passkey=True)
    options = await world.mfa.passkey_options()
    assert "allowCredentials" not in options or options["allowCredentials"] == []
    assert options["userVerification"] == "required"

    signed_in = await world.mfa.passkey_login(key.get(options, APP_ORIGIN), CONTEXT)
    assert signed_in.id == user.id


async def test_a_passkey_login_without_user_verification_is_refused(world: MfaWorld) -> None:
    user = await world.user()
    key = SoftwareAuthenticator()
    await world.with_key(user, key, passkey=True)
    options = await world.mfa.passkey_options()
    with pytest.raises(InvalidCredential):
        await world.mfa.passkey_login(key.get(options, ORIGIN, user_verified=False), CONTEXT)
    [failure] = await world.events(user.id, EventType.PASSKEY_LOGIN_FAILED)
    assert failure.details == {"method": "webauthn", "reason": "assertion"}


async def test_a_security_key_registered_as_a_second_factor_cannot_sign_in_alone(
    world: MfaWorld,
) -> None:
    user = await world.user()
    key = SoftwareAuthenticator()
    await world.with_key(user, key, passkey=False)
    options = await world.mfa.passkey_options()
    with pytest.raises(InvalidCredential):
        await world.mfa.passkey_login(
            key.get(options, ORIGIN, credential_id=key.only_credential_id, user_verified=True),
            CONTEXT,
        )


async def test_a_passkey_assertion_answers_one_passkey_challenge_once(world: MfaWorld) -> None:
    user = await world.user()
    key = SoftwareAuthenticator(synced=True)
    await world.with_key(user, key, passkey=True)
    assertion = key.get(await world.mfa.passkey_options(), ORIGIN)
    await world.mfa.passkey_login(assertion, CONTEXT)
    with pytest.raises(InvalidCredential):
        await world.mfa.passkey_login(assertion, CONTEXT)
    # A second-step challenge is not a passkey challenge.
    token = await world.login_token(user)
    second_step = key.get(await world.mfa.login_assertion_options(token), ORIGIN)
    with pytest.raises(InvalidCredential):
        await world.mfa.passkey_login(second_step, CONTEXT)


async def test_an_unknown_passkey_is_refused(world: MfaWorld) -> None:
    stranger = SoftwareAuthenticator()
    options = await world.mfa.registration_options(await world.user(), passkey=True)
    stranger.create(options, ORIGIN)  # created, never registered with Bastion
    with pytest.raises(InvalidCredential):
        await world.mfa.passkey_login(
            stranger.get(await world.mfa.passkey_options(), ORIGIN), CONTEXT
        )


async def test_removing_a_security_key_emails_the_owner(world: MfaWorld) -> None:
    user = await world.user()
    enrolled = await world.with_key(user, SoftwareAuthenticator())
    await world.mfa.remove(user, enrolled.factor.id, CONTEXT)
    message = await world.mailbox.wait_for(user.email, "second factor was removed")
    assert "a security key" in text_of(message).lower()
    assert not (await world.mfa.status(user)).mfa_enabled
