"""/users and /me: a tenant's admins list the people who use Publipost (to share a sending account with some
of them); anyone asks who Publipost takes them for.

The service that mounts these routes owns the identity database's `users` collection: it lists
`UserRepository` among its repositories, so the collection's index is made with its others.
"""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from publipost_http import Paging
from pydantic import BaseModel, Field

from .access import Admin, Anyone
from .dependency import Authenticator
from .principal import PrincipalKind, Role
from .users import User, UserRepository


class UserView(BaseModel):
    subject: str = Field(description="The issuer's `sub`: what a sending account is shared with.")
    name: str | None
    email: str | None
    roles: list[Role] = Field(description="As their latest token said.")
    first_seen: datetime
    last_seen: datetime = Field(description="Written in batches: up to a minute behind.")

    @classmethod
    def of(cls, user: User) -> "UserView":
        return cls(
            subject=user.subject,
            name=user.name,
            email=user.email,
            roles=sorted(user.roles),
            first_seen=user.first_seen,
            last_seen=user.last_seen,
        )


class MeView(BaseModel):
    tenant_id: str
    subject: str
    kind: PrincipalKind
    roles: list[Role]
    name: str | None
    email: str | None


def _users(request: Request) -> UserRepository:
    authenticator: Authenticator = request.app.state.authenticator
    if authenticator.users is None:
        raise HTTPException(503, "this service has no database of users")
    return authenticator.users


Users = Annotated[UserRepository, Depends(_users)]
router = APIRouter(tags=["identity"])


@router.get("/users")
async def list_users(caller: Admin, users: Users, paging: Paging) -> list[UserView]:
    """The people of the tenant who have called Publipost, the latest first. The issuer manages them: a
    person appears here after their first call."""
    return [UserView.of(user) for user in await users.list(caller.tenant_id, skip=paging.skip, limit=paging.per_page)]


@router.get("/users/{subject}")
async def get_user(caller: Admin, users: Users, subject: str) -> UserView:
    user = await users.get(caller.tenant_id, subject)
    if user is None:
        raise HTTPException(404, f"no user {subject!r} in this tenant (a person appears after their first call)")
    return UserView.of(user)


@router.get("/me")
async def me(caller: Anyone) -> MeView:
    """Who these credentials are: tenant, subject, roles."""
    return MeView(
        tenant_id=caller.tenant_id,
        subject=caller.subject,
        kind=caller.kind,
        roles=sorted(caller.roles),
        name=caller.name,
        email=caller.email,
    )
