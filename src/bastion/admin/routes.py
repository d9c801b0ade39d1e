"""The admin API: users and the audit trail, for admins (read and write) and managers (read)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, status
from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from bastion.accounts.errors import EmailTaken
from bastion.accounts.model import Role, User
from bastion.admin.access import requiring
from bastion.admin.errors import InvalidCursor, LastAdmin, UserNotFound
from bastion.admin.model import Permission, UserChanges
from bastion.admin.service import AdminService
from bastion.audit.model import AuditEvent, EventType
from bastion.core.context import Principal
from bastion.core.email_address import MAX_EMAIL_LENGTH
from bastion.http.deps import ContextDep, RecentUser, provider
from bastion.http.errors import ProblemRows, ProblemType, raises
from bastion.http.schemas import Accepted, EmailAddress
from bastion.mfa.errors import ReauthenticationRequired
from bastion.mfa.service import MfaService
from bastion.passwords.errors import WeakPassword
from bastion.passwords.policy import MAX_PASSWORD_LENGTH
from bastion.sessions.errors import SessionNotFound
from bastion.tokens.model import ALGORITHM, KeyState
from bastion.tokens.service import TokenService

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])
PROBLEMS: ProblemRows = {
    UserNotFound: ProblemType(404, "USER_NOT_FOUND", "User not found"),
    LastAdmin: ProblemType(409, "LAST_ADMIN", "Last active admin"),
    InvalidCursor: ProblemType(400, "INVALID_CURSOR", "Invalid cursor"),
}
MAX_PAGE = 200

# OpenAPI links: where a listed user's id leads (clients and Schemathesis' stateful phase follow).
USER_LINKS = {
    "links": {
        f"{action}FirstUser": {
            "operationId": f"{name}_api_v1_admin_users__user_id__{method}",
            "parameters": {"user_id": "$response.body#/items/0/id"},
        }
        for action, name, method in [
            ("Get", "get_user", "get"),
            ("Update", "update_user", "patch"),
            ("Delete", "delete_user", "delete"),
        ]
    }
}
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="Page size")]
Cursor = Annotated[
    str | None,
    Query(max_length=64, description="`next_cursor` from the previous page; omit for the first"),
]


AdminDep = Annotated[AdminService, Depends(provider(AdminService))]
MfaDep = Annotated[MfaService, Depends(provider(MfaService))]
TokensDep = Annotated[TokenService, Depends(provider(TokenService))]
# Role changes end the user's sessions, so the role claimed by a live token is current.
AdminUser = Annotated[Principal, Depends(requiring(Permission.MANAGE_USERS, write=True))]
# An admin-only read: the role policy, without the recent authentication writes need.
AdminReader = Annotated[Principal, Depends(requiring(Permission.MANAGE_USERS))]
StaffUser = Annotated[Principal, Depends(requiring(Permission.READ_USERS))]
AuditReader = Annotated[Principal, Depends(requiring(Permission.READ_AUDIT))]


class UserView(BaseModel):
    id: uuid.UUID
    email: str
    role: Role
    is_verified: bool
    is_active: bool
    created_at: datetime
    updated_at: datetime


class UserDetail(UserView):
    mfa_enabled: bool
    factor_types: list[str] = Field(description="The types of the user's factors: totp, webauthn")


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailAddress = Field(examples=["bob@example.com"])
    role: Role = Role.USER
    invite: StrictBool = Field(
        default=False, description="Mail an invitation link instead of setting `password`"
    )
    password: str | None = Field(default=None, max_length=MAX_PASSWORD_LENGTH)

    @model_validator(mode="after")
    def password_xor_invite(self) -> NewUser:
        if self.invite == (self.password is not None):
            raise ValueError("give either invite: true or a password")
        return self


class SessionView(BaseModel):
    """The fields of the owner's own session list; ``current`` is always false here."""

    id: uuid.UUID
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    ip: str | None
    user_agent: str | None
    remember_me: bool
    current: bool = False


class SigningKeyView(BaseModel):
    kid: str
    alg: str = Field(examples=[ALGORITHM])
    created_at: datetime
    state: KeyState
    published_until: datetime | None = Field(
        description="Until when the key is in the JWKS: null while it signs; for a revoked key, "
        "when it was revoked"
    )


class UserPage(BaseModel):
    items: list[UserView]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at end")


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role | None = None
    # JSON booleans only: "no" or 0 for false is a client bug, not an instruction.
    is_active: StrictBool | None = Field(default=None, description="false also ends every session")
    is_verified: StrictBool | None = None


class EventView(BaseModel):
    id: int
    type: EventType
    occurred_at: datetime
    user_id: uuid.UUID | None
    ip: str | None
    user_agent: str | None
    details: dict[str, Any]


class EventPage(BaseModel):
    items: list[EventView]
    next_cursor: str | None


@router.get(
    "/users",
    responses={200: USER_LINKS},
    summary="Find users by email substring and role (admin, manager)",
)
@raises(InvalidCursor)
async def list_users(
    _: StaffUser,
    admin_service: AdminDep,
    limit: Limit = 50,
    cursor: Cursor = None,
    email: Annotated[
        str | None, Query(max_length=MAX_EMAIL_LENGTH, description="Part of the email")
    ] = None,
    role: Role | None = None,
) -> UserPage:
    page = await admin_service.list_users(
        email_contains=email, role=role, cursor=cursor, limit=limit
    )
    return UserPage(items=[_user_view(user) for user in page.items], next_cursor=page.next_cursor)


@router.get(
    "/users/{user_id}",
    summary="One user (admin, manager)",
)
@raises(UserNotFound)
async def get_user(
    user_id: uuid.UUID, _: StaffUser, admin_service: AdminDep, mfa: MfaDep
) -> UserDetail:
    user = await admin_service.get_user(user_id)
    found = await mfa.status(user)
    return UserDetail(
        **_user_view(user).model_dump(),
        mfa_enabled=found.mfa_enabled,
        factor_types=sorted({factor.type.value for factor in found.factors}),
    )


@router.delete(
    "/users/{user_id}/mfa",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove a locked-out user's second factors and recovery codes; ends their sessions",
)
@raises(UserNotFound)
async def reset_user_mfa(
    user_id: uuid.UUID, admin: AdminUser, admin_service: AdminDep, mfa: MfaDep, context: ContextDep
) -> None:
    await mfa.reset_by_admin(admin.user_id, await admin_service.get_user(user_id), context)


@router.patch(
    "/users/{user_id}",
    summary="Change a user's role or status (admin); a role change or deactivation logs them out",
)
@raises(UserNotFound, LastAdmin, ReauthenticationRequired)
async def update_user(
    user_id: uuid.UUID,
    body: UserUpdate,
    admin: AdminUser,
    _: RecentUser,
    admin_service: AdminDep,
    context: ContextDep,
) -> UserView:
    changes = UserChanges(role=body.role, is_active=body.is_active, is_verified=body.is_verified)
    user = await admin_service.update_user(admin.user_id, user_id, changes, context)
    return _user_view(user)


@router.delete(
    "/users/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a user and erase their email from the audit trail (admin)",
)
@raises(UserNotFound, LastAdmin, ReauthenticationRequired)
async def delete_user(
    user_id: uuid.UUID,
    admin: AdminUser,
    _: RecentUser,
    admin_service: AdminDep,
    context: ContextDep,
) -> None:
    await admin_service.delete_user(admin.user_id, user_id, context)


@router.post(
    "/users",
    status_code=status.HTTP_201_CREATED,
    summary="Create a user with a password, or invite them by email to choose one (admin)",
)
@raises(EmailTaken, WeakPassword, ReauthenticationRequired)
async def create_user(
    body: NewUser, admin: AdminUser, _: RecentUser, admin_service: AdminDep, context: ContextDep
) -> UserView:
    user = await admin_service.create_user(
        admin.user_id, body.email, body.role, password=body.password, context=context
    )
    return _user_view(user)


@router.get(
    "/users/{user_id}/sessions",
    summary="A user's live sessions (admin)",
)
@raises(UserNotFound)
async def list_user_sessions(
    user_id: uuid.UUID, _: AdminReader, admin_service: AdminDep
) -> list[SessionView]:
    return [
        SessionView(
            id=s.id,
            created_at=s.created_at,
            last_seen_at=s.last_seen_at,
            expires_at=s.expires_at,
            ip=s.ip,
            user_agent=s.user_agent,
            remember_me=s.remember_me,
        )
        for s in await admin_service.list_sessions(user_id)
    ]


@router.delete(
    "/users/{user_id}/sessions/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="End one of a user's sessions (admin); every instance sees it within a second",
)
@raises(UserNotFound, SessionNotFound, ReauthenticationRequired)
async def revoke_user_session(
    user_id: uuid.UUID,
    session_id: uuid.UUID,
    admin: AdminUser,
    _: RecentUser,
    admin_service: AdminDep,
    context: ContextDep,
) -> None:
    await admin_service.revoke_sessions(admin.user_id, user_id, context, session_id=session_id)


@router.delete(
    "/users/{user_id}/sessions",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="End every session of a user (admin); every instance sees it within a second",
)
@raises(UserNotFound, ReauthenticationRequired)
async def revoke_user_sessions(
    user_id: uuid.UUID,
    admin: AdminUser,
    _: RecentUser,
    admin_service: AdminDep,
    context: ContextDep,
) -> None:
    await admin_service.revoke_sessions(admin.user_id, user_id, context)


@router.post(
    "/users/{user_id}/password-reset",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Mail a user the normal password-reset link (admin)",
)
@raises(UserNotFound, ReauthenticationRequired)
async def send_password_reset(
    user_id: uuid.UUID,
    admin: AdminUser,
    _: RecentUser,
    admin_service: AdminDep,
    context: ContextDep,
) -> Accepted:
    await admin_service.send_password_reset(admin.user_id, user_id, context)
    return Accepted()


@router.get(
    "/signing-keys",
    summary="The keys that sign and verify access tokens, and the revoked ones (admin)",
)
async def list_signing_keys(_: AdminReader, tokens: TokensDep) -> list[SigningKeyView]:
    return [
        SigningKeyView(
            kid=status.key.kid,
            alg=ALGORITHM,
            created_at=status.key.created_at,
            state=status.state,
            published_until=status.published_until,
        )
        for status in await tokens.fresh_statuses()
    ]


@router.get(
    "/audit-events",
    summary="Security events, newest first (admin, manager)",
)
@raises(InvalidCursor)
async def list_audit_events(
    _: AuditReader,
    admin_service: AdminDep,
    limit: Limit = 50,
    cursor: Cursor = None,
    user_id: uuid.UUID | None = None,
    type: EventType | None = None,
) -> EventPage:
    page = await admin_service.list_events(user_id=user_id, type=type, cursor=cursor, limit=limit)
    return EventPage(items=[_event_view(item) for item in page.items], next_cursor=page.next_cursor)


def _user_view(user: User) -> UserView:
    # Built field by field so that the password hash can never slip into a response.
    return UserView(
        id=user.id,
        email=user.email,
        role=user.role,
        is_verified=user.is_verified,
        is_active=user.is_active,
        created_at=user.created_at,
        updated_at=user.updated_at,
    )


def _event_view(item: AuditEvent) -> EventView:
    return EventView(
        id=item.id or 0,
        type=item.type,
        occurred_at=item.occurred_at,
        user_id=item.user_id,
        ip=item.ip,
        user_agent=item.user_agent,
        details=item.details,
    )
