"""Tokens, the current user, users and memberships."""

from __future__ import annotations

from fastapi import APIRouter, Request, status
from fastapi.concurrency import run_in_threadpool

from labelvault.api.deps import ActorDep, PageDep, ServicesDep
from labelvault.api.deps import Page as PageParams
from labelvault.api.schemas import (
    Me,
    MemberGrant,
    Page,
    PasswordChange,
    TokenIssued,
    TokenRead,
    TokenRequest,
    UserCreate,
    UserRead,
    UserUpdate,
)
from labelvault.bootstrap import Services
from labelvault.domain.access import Actor, UserPolicy

router = APIRouter(tags=["accounts"])


@router.post("/auth/token", response_model=TokenIssued, status_code=status.HTTP_201_CREATED)
async def create_token(body: TokenRequest, request: Request, services: ServicesDep) -> TokenIssued:
    """Log in with a password and get a new API token (shown once), optionally with fewer scopes."""
    address = request.client.host if request.client else ""
    # argon2 takes ~20 ms of CPU: keep it off the event loop.
    actor = await run_in_threadpool(services.accounts.authenticate, body.username, body.password, address=address)
    issued = await run_in_threadpool(services.accounts.issue_token, actor, body.name, scopes=body.scopes)
    return TokenIssued(id=issued.id, name=issued.name, token=issued.token)


@router.get("/me", response_model=Me)
def me(actor: ActorDep) -> Me:
    return Me(id=actor.user_id, username=actor.username, is_operator=actor.is_operator)


@router.post("/me/password", status_code=status.HTTP_204_NO_CONTENT)
async def change_password(body: PasswordChange, request: Request, actor: ActorDep, services: ServicesDep) -> None:
    """Change your own password, giving the current one. Your web sessions end; API tokens stay."""
    address = request.client.host if request.client else ""
    await run_in_threadpool(services.accounts.change_password, actor, body.current_password, body.new_password,
                            address=address)


@router.get("/tokens", response_model=Page[TokenRead])
def list_tokens(actor: ActorDep, services: ServicesDep, page: PageDep) -> Page[TokenRead]:
    return _tokens_page(services, actor, None, page)


@router.delete("/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_token(token_id: int, actor: ActorDep, services: ServicesDep) -> None:
    services.accounts.revoke_token(actor, token_id)


@router.post("/users", response_model=UserRead, status_code=status.HTTP_201_CREATED)
async def create_user(body: UserCreate, actor: ActorDep, services: ServicesDep) -> UserRead:
    UserPolicy.administer(actor)
    user_id = await run_in_threadpool(
        services.accounts.create_user, actor, body.username, body.password,
        is_operator=body.is_operator, display_name=body.display_name,
    )
    return UserRead.model_validate(services.accounts.get_user(actor, user_id), from_attributes=True)


@router.get("/users", response_model=Page[UserRead])
def list_users(actor: ActorDep, services: ServicesDep, page: PageDep) -> Page[UserRead]:
    users, total = services.accounts.list_users(actor, offset=page.offset, limit=page.limit)
    items = [UserRead.model_validate(u, from_attributes=True) for u in users]
    return Page(items=items, total=total, offset=page.offset, limit=page.limit)


@router.get("/users/{user_id}/tokens", response_model=Page[TokenRead])
def list_tokens_of_user(user_id: int, actor: ActorDep, services: ServicesDep, page: PageDep) -> Page[TokenRead]:
    """A person's API tokens (operators; anyone for their own): to find what to revoke."""
    return _tokens_page(services, actor, user_id, page)


def _tokens_page(services: Services, actor: Actor, user_id: int | None, page: PageParams) -> Page[TokenRead]:
    tokens, total = services.accounts.list_tokens(actor, user_id=user_id, offset=page.offset, limit=page.limit)
    items = [TokenRead.model_validate(t, from_attributes=True) for t in tokens]
    return Page(items=items, total=total, offset=page.offset, limit=page.limit)


@router.patch("/users/{user_id}", response_model=UserRead)
def update_user(user_id: int, body: UserUpdate, actor: ActorDep, services: ServicesDep) -> UserRead:
    """Deactivate a person who leaves (``is_active: false``), or bring them back. Operators only."""
    username = services.accounts.get_user(actor, user_id).username
    return UserRead.model_validate(services.accounts.set_active(actor, username, active=body.is_active),
                                   from_attributes=True)


@router.post("/clients/{client_id}/members", status_code=status.HTTP_204_NO_CONTENT)
def grant_role(client_id: int, body: MemberGrant, actor: ActorDep, services: ServicesDep) -> None:
    services.accounts.grant_role(actor, client_id, body.username, body.role)


@router.delete("/clients/{client_id}/members/{username}/{role}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_role(client_id: int, username: str, role: str, actor: ActorDep, services: ServicesDep) -> None:
    services.accounts.revoke_role(actor, client_id, username, role)
