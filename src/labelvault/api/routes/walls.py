"""Conflict classes and wall overrides (operators only)."""

from __future__ import annotations

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, Field

from labelvault.api.deps import ActorDep, ServicesDep

router = APIRouter(tags=["conflict walls"])


class ConflictClassCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    description: str = Field(default="", max_length=500)


class ConflictClassRead(BaseModel):
    id: int
    name: str
    description: str
    client_ids: list[int]


class WallOverrideCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str
    client_id: int
    reason: str = Field(min_length=10, max_length=500)


@router.post("/conflict-classes", response_model=ConflictClassRead, status_code=status.HTTP_201_CREATED)
def create_class(body: ConflictClassCreate, actor: ActorDep, services: ServicesDep) -> ConflictClassRead:
    info = services.walls.create_class(actor, body.name, body.description)
    return ConflictClassRead.model_validate(info, from_attributes=True)


@router.get("/conflict-classes", response_model=list[ConflictClassRead])
def list_classes(actor: ActorDep, services: ServicesDep) -> list[ConflictClassRead]:
    return [ConflictClassRead.model_validate(c, from_attributes=True) for c in services.walls.list_classes(actor)]


@router.put("/conflict-classes/{name}/clients/{client_id}", status_code=status.HTTP_204_NO_CONTENT)
def add_client(name: str, client_id: int, actor: ActorDep, services: ServicesDep) -> None:
    services.walls.add_client(actor, name, client_id)


@router.delete("/conflict-classes/{name}/clients/{client_id}", status_code=status.HTTP_204_NO_CONTENT)
def remove_client(name: str, client_id: int, actor: ActorDep, services: ServicesDep) -> None:
    services.walls.remove_client(actor, name, client_id)


@router.post("/wall-overrides", status_code=status.HTTP_204_NO_CONTENT)
def override(body: WallOverrideCreate, actor: ActorDep, services: ServicesDep) -> None:
    services.walls.override(actor, body.username, body.client_id, body.reason)
