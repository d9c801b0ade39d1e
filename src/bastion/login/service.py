"""Log-in, as a sequence of steps.

1. Admission (``admission.py``): the per-IP request limit, the IP lockout and account protection
   (devices that signed in to the account before pass). The attempt takes its lockout slots here.
2. The password (``password.py``): the credentials open an account that may sign in. An outdated
   hash is replaced here.
3. (A second factor will go here: password accepted → second factor required → session started.)
4. The session (``SessionService.start_session``), and a device cookie for this browser.

Whatever the outcome, the attempt's slots are settled with admission, and a refusal or a block
is recorded (``records.py``). A log-in without a password (a passkey) takes steps 1 and 4.
"""

from __future__ import annotations

from dataclasses import dataclass

from bastion.accounts.model import User
from bastion.core.context import RequestContext
from bastion.login.admission import LoginAdmission
from bastion.login.devices import DeviceCookies
from bastion.login.errors import TooManyAttempts
from bastion.login.model import Admission, Refusal
from bastion.login.password import PasswordCheck
from bastion.login.records import LoginRecords
from bastion.sessions.service import IssuedTokens, SessionService


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
    ) -> Admission:
        """Step 1. The caller refuses the request when ``usage`` is over its limit, and calls
        ``log_in`` otherwise."""
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
            raise checked.error()
        await self._admission.release(keys, attempt, right_password=True)
        # Password accepted. A second factor goes here: an account that has one answers
        # "second factor required" instead, and start_session runs once that is accepted.
        return await self.start_session(checked, remember_me, context, browser=browser)

    async def start_session(
        self, user: User, remember_me: bool, context: RequestContext, *, browser: bool = False
    ) -> LoggedIn:
        """Step 4, once every credential the account asks for was accepted."""
        tokens = await self._sessions.start_session(user, remember_me, context, browser=browser)
        return LoggedIn(tokens, self._devices.issue(user.id))
