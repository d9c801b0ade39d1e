"""The owner's control of their account: change of email, data export, deletion, and taking up
an invitation."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from bastion.accounts.errors import EmailTaken
from bastion.admin.errors import LastAdmin
from bastion.core.one_time_tokens import TokenExpired, TokenInvalid
from bastion.guards import ExportLimit, PerIpLimit, PerUserLimit
from bastion.http.deps import ContextDep, RecentUser, provider
from bastion.http.errors import ProblemRows, raises
from bastion.http.schemas import Accepted, EmailAddress, StrictModel
from bastion.mfa.errors import ReauthenticationRequired
from bastion.owners.model import export_document
from bastion.owners.service import OwnerService
from bastion.passwords.errors import WeakPassword
from bastion.passwords.policy import MAX_PASSWORD_LENGTH

router = APIRouter(prefix="/api/v1/auth", tags=["owners"])
# Every error here has its row in another package's table already.
PROBLEMS: ProblemRows = {}
OwnersDep = Annotated[OwnerService, Depends(provider(OwnerService))]
# A token is 43 URL-safe characters; anything much longer was not issued here.
MAX_TOKEN_LENGTH = 128


class EmailChangeRequest(StrictModel):
    new_email: EmailAddress = Field(examples=["alice.new@example.com"])


class EmailChanged(BaseModel):
    status: str = Field(default="email_changed", examples=["email_changed"])


class AcceptInvitation(StrictModel):
    token: str = Field(min_length=1, max_length=MAX_TOKEN_LENGTH)
    password: str = Field(max_length=MAX_PASSWORD_LENGTH, examples=["Correct-Horse-7"])


class InvitationAccepted(BaseModel):
    status: str = Field(default="accepted", examples=["accepted"])


@router.post(
    "/me/email",
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[PerUserLimit],
    summary="Ask to change the caller's email; the new address gets a confirmation link",
)
@raises(ReauthenticationRequired)
async def request_email_change(
    body: EmailChangeRequest, principal: RecentUser, owners: OwnersDep, context: ContextDep
) -> Accepted:
    """Answers the same whether or not the new address is taken (no enumeration)."""
    await owners.request_email_change(principal.user_id, body.new_email, context)
    return Accepted()


@router.post(
    "/me/email/confirm/{token}",
    dependencies=[PerIpLimit],
    summary="Confirm a change of email with the mailed token; every session is signed out",
)
@raises(TokenInvalid, TokenExpired, EmailTaken)
async def confirm_email_change(
    token: Annotated[str, Path(max_length=MAX_TOKEN_LENGTH)],
    owners: OwnersDep,
    context: ContextDep,
) -> EmailChanged:
    await owners.confirm_email_change(token, context)
    return EmailChanged()


@router.get(
    "/me/export",
    dependencies=[ExportLimit],
    summary="Download everything kept about the caller's account (5 per hour)",
    response_class=JSONResponse,
)
@raises(ReauthenticationRequired)
async def export(principal: RecentUser, owners: OwnersDep, context: ContextDep) -> JSONResponse:
    data = await owners.export(principal.user_id, context)
    filename = f"bastion-export-{data.exported_at:%Y%m%dT%H%M%SZ}.json"
    return JSONResponse(
        export_document(data),
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )


@router.delete(
    "/me",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[PerUserLimit],
    summary="Delete the caller's account; every token of it stops working at once",
)
@raises(ReauthenticationRequired, LastAdmin)
async def delete_account(principal: RecentUser, owners: OwnersDep, context: ContextDep) -> Response:
    await owners.delete_account(principal.user_id, context)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/accept-invite",
    dependencies=[PerIpLimit],
    summary="Take up an admin's invitation by choosing a password",
)
@raises(TokenInvalid, TokenExpired, WeakPassword)
async def accept_invite(
    body: AcceptInvitation, owners: OwnersDep, context: ContextDep
) -> InvitationAccepted:
    await owners.accept_invitation(body.token, body.password, context)
    return InvitationAccepted()
