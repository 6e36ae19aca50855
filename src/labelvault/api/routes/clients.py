"""Clients and their projects."""

from __future__ import annotations

from fastapi import APIRouter, status

from labelvault.api.deps import ActorDep, PageDep, ServicesDep
from labelvault.api.routes.projects import project_read
from labelvault.api.schemas import ClientCreate, ClientRead, Page, ProjectCreate, ProjectRead

router = APIRouter(tags=["clients"])


@router.post("/clients", response_model=ClientRead, status_code=status.HTTP_201_CREATED)
def create_client(body: ClientCreate, actor: ActorDep, services: ServicesDep) -> ClientRead:
    info = services.clients.create(actor, body.slug, body.name, currency=body.currency)
    return ClientRead.model_validate(info, from_attributes=True)


@router.get("/clients", response_model=Page[ClientRead])
def list_clients(actor: ActorDep, services: ServicesDep, page: PageDep) -> Page[ClientRead]:
    clients, total = services.clients.list(actor, offset=page.offset, limit=page.limit)
    items = [ClientRead.model_validate(c, from_attributes=True) for c in clients]
    return Page(items=items, total=total, offset=page.offset, limit=page.limit)


@router.get("/clients/{client_id}", response_model=ClientRead)
def get_client(client_id: int, actor: ActorDep, services: ServicesDep) -> ClientRead:
    return ClientRead.model_validate(services.clients.get(actor, client_id), from_attributes=True)


@router.post("/clients/{client_id}/projects", response_model=ProjectRead, status_code=status.HTTP_201_CREATED)
def create_project(client_id: int, body: ProjectCreate, actor: ActorDep, services: ServicesDep) -> ProjectRead:
    info = services.projects.create(
        actor, client_id, slug=body.slug, name=body.name, schema=body.project_schema,
        overlap=body.overlap, lease_seconds=body.lease_seconds,
    )
    return project_read(info)


@router.get("/clients/{client_id}/projects", response_model=Page[ProjectRead])
def list_projects(client_id: int, actor: ActorDep, services: ServicesDep, page: PageDep) -> Page[ProjectRead]:
    projects, total = services.projects.list(actor, client_id, offset=page.offset, limit=page.limit)
    return Page(items=[project_read(p) for p in projects], total=total, offset=page.offset, limit=page.limit)
