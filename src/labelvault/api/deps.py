"""Request dependencies: the services, the authenticated actor, pagination."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request

from labelvault.bootstrap import Services
from labelvault.domain.access import Actor
from labelvault.errors import NotAuthenticated


def get_services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


ServicesDep = Annotated[Services, Depends(get_services)]


def get_actor(request: Request, services: ServicesDep) -> Actor:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise NotAuthenticated("send an API token as 'Authorization: Bearer lv_...'")
    return services.accounts.actor_for_token(token.strip())


ActorDep = Annotated[Actor, Depends(get_actor)]


class Page:
    def __init__(
        self,
        offset: Annotated[int, Query(ge=0, description="Items to skip.")] = 0,
        limit: Annotated[int, Query(ge=1, le=1000, description="Items to return (at most 1000).")] = 100,
    ) -> None:
        self.offset = offset
        self.limit = limit


PageDep = Annotated[Page, Depends(Page)]
