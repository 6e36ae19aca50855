from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from labelvault.api.app import create_app
from tests.conftest import World

TEXT_SCHEMA = {
    "fields": [{"name": "text", "kind": "text"}],
    "questions": [{"name": "sentiment", "type": "label", "labels": ["positive", "negative", "neutral"]}],
}


class Api:
    """A test client that sends the token of a named person of the world."""

    def __init__(self, client: TestClient, world: World) -> None:
        self.client = client
        self.world = world

    def as_(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.world.tokens[who]}"}

    def get(self, who: str, url: str, **kw: object):  # type: ignore[no-untyped-def]
        return self.client.get(url, headers=self.as_(who), **kw)

    def post(self, who: str, url: str, **kw: object):  # type: ignore[no-untyped-def]
        return self.client.post(url, headers={**self.as_(who), **kw.pop("headers", {})}, **kw)  # type: ignore[dict-item]

    def patch(self, who: str, url: str, **kw: object):  # type: ignore[no-untyped-def]
        return self.client.patch(url, headers=self.as_(who), **kw)

    def delete(self, who: str, url: str, **kw: object):  # type: ignore[no-untyped-def]
        return self.client.delete(url, headers=self.as_(who), **kw)


@pytest.fixture
def api(world: World) -> Iterator[Api]:
    with TestClient(create_app(world.services)) as client:
        yield Api(client, world)


def create_project(api: Api, who: str, client_id: int, slug: str = "reviews", schema: dict | None = None,
                   overlap: int = 1) -> dict:
    response = api.post(who, f"/api/clients/{client_id}/projects",
                        json={"slug": slug, "name": slug, "schema": schema or TEXT_SCHEMA, "overlap": overlap})
    assert response.status_code == 201, response.text
    return response.json()
