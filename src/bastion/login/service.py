"""Log-in, as a sequence of steps.

1. Admission (``admission.py``): the per-IP request limit, the IP lockout and account protection
   (devices that signed in to the account before pass). The attempt takes its lockout slots here.
2. The password (``password.py``): the credentials open an account that may sign in. An outdated
   hash is replaced here.
3. (A second factor will go here: password accepted → second factor required → session started.)
4. The session (``SessionService.start_session``), and a device cookie for this browser. It
   starts only from the account's security state that step 2 saw (its ``SecurityStamp``); if
   that changed in between, the log-in is answered against the new state.

Whatever the outcome, the attempt's slots are settled with admission, and a refusal or a block
is recorded (``records.py``). A log-in without a password (a passkey) takes steps 1 and 4.

A signed-in user who must prove their password again (before changing it; later, to
reauthenticate) takes steps 1 and 2 (``confirm_password``): their wrong guesses count towards
the same lockouts as a log-in's.
"""

from __future__ import annotations

from dataclasses import dataclass

from bastion.accounts.errors import SecurityStateChanged
from bastion.accounts.model import User
from bastion.core.context import RequestContext, SecurityStamp
from bastion.login.admission import LoginAdmission
from bastion.login.devices import DeviceCookies
from bastion.login.model import Admission, Refusal
from bastion.login.password import PasswordCheck
from bastion.login.records import LoginRecords
from bastion.passwords.errors import WrongPassword
from bastion.ratelimit.errors import TooManyAttempts
from bastion.ratelimit.model import Usage
from bastion.sessions.service import IssuedTokens, SessionService

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
    ) -> None:
        self._admission = admission
        self._password = password
        self._sessions = sessions
        self._devices = devices
        self._records = records

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
        # Password accepted. A second factor goes here: an account that has one answers
        # "second factor required" instead (carrying checked.security_stamp to the second
        # step), and start_session runs once that is accepted.
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

    async def start_session(
        self, user: User, remember_me: bool, context: RequestContext, *, browser: bool = False
    ) -> LoggedIn:
        """Step 4, once every credential the account asks for was accepted. ``user`` is the
        account as those checks saw it: ``SecurityStateChanged`` (and no session) if its
        security state changed since."""
        tokens = await self._sessions.start_session(user, remember_me, context, browser=browser)
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
