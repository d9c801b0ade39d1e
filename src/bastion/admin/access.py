"""Who may use the admin API: a role's permission and the role policy of the second factor, as
FastAPI dependencies shared by the admin routes and the integrations' (service keys, webhooks)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request

from bastion.admin.model import Permission, allows
from bastion.core.context import Principal
from bastion.core.errors import Forbidden
from bastion.http.deps import CurrentPrincipal, provided
from bastion.http.errors import raises
from bastion.mfa.errors import MfaEnrolmentRequired, ReauthenticationRequired
from bastion.mfa.model import assurance_of
from bastion.mfa.service import MfaService


def requiring(
    permission: Permission, *, write: bool = False
) -> Callable[[Request, Principal], Awaitable[Principal]]:
    """A dependency admitting callers whose role grants ``permission`` (else 403), and who pass
    the role policy: a role in MFA_REQUIRED_ROLES must have a second factor (else 403
    ``MFA_ENROLLMENT_REQUIRED``) and an aal2 token; a ``write`` needs a recent authentication
    too (else 403 ``REAUTHENTICATION_REQUIRED``)."""

    @raises(Forbidden, MfaEnrolmentRequired, ReauthenticationRequired)
    async def authorized(request: Request, principal: CurrentPrincipal) -> Principal:
        if not allows(principal.role, permission):
            raise Forbidden()
        await provided(request, MfaService).ensure_admin_access_of(
            principal.user_id,
            principal.role,
            auth_time=datetime.fromtimestamp(principal.auth_time, UTC),
            aal=assurance_of(principal.aal, principal.amr).aal,
            write=write,
        )
        return principal

    return authorized


# Service keys and webhooks let other systems read Bastion: the admin API's role policy holds.
IntegrationsReader = Annotated[Principal, Depends(requiring(Permission.MANAGE_INTEGRATIONS))]
IntegrationsWriter = Annotated[
    Principal, Depends(requiring(Permission.MANAGE_INTEGRATIONS, write=True))
]
