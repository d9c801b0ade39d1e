"""Log-in, as a sequence of steps.

1. Admission (``admission.py``): the per-IP request limit, the IP lockout and account protection
   (devices that signed in to the account before pass). The attempt takes its lockout slots here.
2. The password (``password.py``): the credentials open an account that may sign in. An outdated
   hash is replaced here.
3. The second factor (``mfa``): an account with one answers ``SecondFactorRequired`` with an
   mfa_token that carries the account's security state; ``complete_second_step`` passes it
   (a TOTP code, a recovery code or a security key) and goes on to step 4 at aal2.
4. The session (``SessionService.start_session``), and a device cookie for this browser. It
   starts only from the account's security state that step 2 saw (its ``SecurityStamp``); if
   that changed in between, the log-in is answered against the new state.

Whatever the outcome, the attempt's slots are settled with admission, and a refusal or a block
is recorded (``records.py``). A log-in without a password (a passkey, ``passkey_login``)
takes the per-IP limit of its route and step 4; it never touches Argon2.

A signed-in user who must prove their password again (before changing it, or to
reauthenticate) takes steps 1 and 2 (``confirm_password``): their wrong guesses count towards
the same lockouts as a log-in's. ``reauthenticate`` adds step 3 (or a passkey instead of both)
and records the new proof on the caller's session.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bastion.accounts.errors import SecurityStateChanged
from bastion.accounts.model import User
from bastion.core.context import Principal, RequestContext, SecurityStamp
from bastion.login.admission import LoginAdmission
from bastion.login.devices import DeviceCookies
from bastion.login.errors import SecondFactorRequired
from bastion.login.model import Admission, Refusal, refusal_for
from bastion.login.password import PasswordCheck
from bastion.login.records import LoginRecords
from bastion.mfa.errors import MfaTokenInvalid
from bastion.mfa.model import (
    Assurance,
    after_second_step,
    passkey_assurance,
    password_assurance,
)
from bastion.mfa.service import MfaService
from bastion.passwords.errors import WrongPassword
from bastion.ratelimit.errors import TooManyAttempts
from bastion.ratelimit.model import Usage
from bastion.sessions.service import IssuedTokens, SessionService
from bastion.storage import UnitOfWorkFactory

# How many changes to the account a log-in follows between its password check and its session
# before it gives up (409): each one is a change committed within those few milliseconds.
MAX_STATE_CHANGES = 3


@dataclass(frozen=True, slots=True)
class LoggedIn:
    tokens: IssuedTokens
    device_cookie: str


class LoginFlow:
    def __init__(
        self,
        admission: LoginAdmission,
        password: PasswordCheck,
        sessions: SessionService,
        devices: DeviceCookies,
        records: LoginRecords,
        mfa: MfaService,
        uow: UnitOfWorkFactory,
    ) -> None:
        self._admission = admission
        self._password = password
        self._sessions = sessions
        self._devices = devices
        self._records = records
        self._mfa = mfa
        self._uow = uow

    async def admit(
        self, email: str, context: RequestContext, device_cookie: str | None
    ) -> tuple[Usage, Admission]:
        """Step 1. The caller refuses the request when the usage of the per-IP request limit
        is over it, and calls ``log_in`` otherwise."""
        return await self._admission.admit(email, context, device_cookie)

    async def log_in(
        self,
        admission: Admission,
        password: str,
        remember_me: bool,
        context: RequestContext,
        *,
        browser: bool = False,
    ) -> LoggedIn:
        """Steps 2 to 4 for an admitted attempt; ``browser`` for a sign-in on Bastion's pages,
        whose session a cookie carries."""
        checked = await self._check_password(admission, password, context)
        if isinstance(checked, Refusal):
            raise checked.error()
        # Password accepted. An account with a second factor answers "second factor required"
        # (its security state carried to the second step); the session starts once it passes.
        due = await self._mfa.start_second_step(checked, remember_me, _state_of(checked))
        if due is not None:
            raise SecondFactorRequired(
                due.mfa_token, [method.value for method in due.methods], due.expires_in
            )
        for _ in range(MAX_STATE_CHANGES):
            try:
                return await self.start_session(checked, remember_me, context, browser=browser)
            except SecurityStateChanged:
                # A change committed after the check: answer as the account now stands.
                checked = await self._password.recheck(checked, password)
            if isinstance(checked, Refusal):
                await self._records.refused(checked, context)
                raise checked.error()
        raise SecurityStateChanged()

    async def complete_second_step(
        self,
        mfa_token: str,
        context: RequestContext,
        *,
        code: str | None = None,
        credential: dict[str, Any] | None = None,
        browser: bool = False,
    ) -> LoggedIn:
        """Step 3 then 4: the second factor for the mfa_token a correct password earned, and
        the session, at aal2, with the first step's ``remember_me``. The account must still be
        as the password step saw it (else the log-in starts over: ``MfaTokenInvalid``)."""
        passed = await self._mfa.complete_login(
            mfa_token, context, code=code, credential=credential
        )
        async with self._uow(read_only=True) as uow:
            user = await uow.users.get(passed.user_id)
        if user is None or _state_of(user) != passed.security_state or refusal_for(user):
            raise MfaTokenInvalid()
        assurance = after_second_step(password_assurance(), passed.used)
        return await self.start_session(
            user, passed.remember_me, context, browser=browser, assurance=assurance
        )

    async def passkey_login(
        self,
        credential: dict[str, Any],
        remember_me: bool,
        context: RequestContext,
        *,
        browser: bool = False,
    ) -> LoggedIn:
        """A log-in with a passkey alone (user verification required): aal2, no password and
        no Argon2. An unverified or disabled account is refused as a password log-in is."""
        user = await self._mfa.passkey_login(credential, context)
        refusal = refusal_for(user)
        if refusal is not None:
            await self._records.refused(refusal, context)
            raise refusal.error()
        return await self.start_session(
            user, remember_me, context, browser=browser, assurance=passkey_assurance()
        )

    async def reauthenticate(
        self,
        principal: Principal,
        context: RequestContext,
        *,
        password: str | None = None,
        code: str | None = None,
        credential: dict[str, Any] | None = None,
    ) -> IssuedTokens:
        """A signed-in user proves who they are again: the password (counted towards the
        lockouts as a log-in), with a second factor or not, or a passkey alone. The caller's
        session records the proof, now, at the level reached: a new access token for it."""
        if password is not None:
            await self.confirm_password(principal.email, password, context)
            assurance = password_assurance()
            if code is not None or credential is not None:
                used = await self._mfa.verify_second_step(
                    principal.user_id, context, code=code, credential=credential
                )
                assurance = after_second_step(assurance, used)
        elif credential is not None:
            await self._mfa.verify_second_step(
                principal.user_id, context, credential=credential, passkey=True
            )
            assurance = passkey_assurance()
        else:
            raise WrongPassword()
        await self._records.reauthenticated(principal, assurance.aal.value, context)
        return await self._sessions.reassure(
            principal, assurance.aal.value, tuple(method.value for method in assurance.amr)
        )

    async def start_session(
        self,
        user: User,
        remember_me: bool,
        context: RequestContext,
        *,
        browser: bool = False,
        assurance: Assurance | None = None,
    ) -> LoggedIn:
        """Step 4, once every credential the account asks for was accepted. ``user`` is the
        account as those checks saw it: ``SecurityStateChanged`` (and no session) if its
        security state changed since. ``assurance`` is what was proven (a password alone by
        default)."""
        proven = assurance or password_assurance()
        tokens = await self._sessions.start_session(
            user,
            remember_me,
            context,
            browser=browser,
            aal=proven.aal.value,
            amr=tuple(method.value for method in proven.amr),
        )
        return LoggedIn(tokens, self._devices.issue(user.id))

    async def confirm_password(
        self, email: str, password: str, context: RequestContext
    ) -> SecurityStamp:
        """Steps 1 and 2 for a signed-in user proving their password again: a wrong one counts
        towards the IP lockout and account protection exactly as a failed log-in does (and is
        recorded and mailed the same way). The account's security state as the check saw it,
        for the change that follows to rely on; ``WrongPassword`` or ``TooManyAttempts``
        otherwise."""
        admission = await self._admission.admit_signed_in(email, context)
        checked = await self._check_password(admission, password, context)
        if isinstance(checked, Refusal):
            raise WrongPassword() if checked.guessed_wrong else checked.error()
        return checked.security_stamp

    async def _check_password(
        self, admission: Admission, password: str, context: RequestContext
    ) -> User | Refusal:
        """Step 2 for an admitted attempt: a refusal is recorded, and the attempt's slots are
        settled either way."""
        attempt = admission.attempt
        if attempt is None:
            raise TooManyAttempts(admission.retry_after)
        keys = admission.keys
        try:
            checked = await self._password.check(admission.email, password)
            if isinstance(checked, Refusal):
                await self._records.refused(checked, context)
        except Exception:
            await self._admission.release(keys, attempt)
            raise
        if isinstance(checked, Refusal):
            if checked.guessed_wrong:
                await self._admission.count_failure(keys, attempt, admission.email, context)
            else:
                await self._admission.release(keys, attempt)
            return checked
        await self._admission.release(keys, attempt, right_password=True)
        return checked


def _state_of(user: User) -> str:
    """The account's security state, as an mfa_token carries it to the second step."""
    return str(user.security_version)
