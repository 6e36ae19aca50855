"""The CLI's listings read every page of a use case's list, not just the first."""

from __future__ import annotations

from labelvault.cli.common import every_page


def listing(items: list[int], calls: list[tuple[int, int]]):  # type: ignore[no-untyped-def]
    def fetch(*, offset: int, limit: int) -> tuple[list[int], int]:  # as the services' list methods
        calls.append((offset, limit))
        return items[offset:offset + limit], len(items)

    return fetch


def test_every_item_comes_once_in_order_across_pages() -> None:
    calls: list[tuple[int, int]] = []
    assert list(every_page(listing(list(range(1_234)), calls), page_size=500)) == list(range(1_234))
    assert calls == [(0, 500), (500, 500), (1000, 500)]


def test_an_empty_listing_and_one_that_shrinks_meanwhile_end() -> None:
    assert list(every_page(listing([], []))) == []

    def fetch(*, offset: int, limit: int) -> tuple[list[int], int]:  # 20 said, 10 left by the second page
        return (list(range(10)) if offset == 0 else []), 20

    assert list(every_page(fetch, page_size=10)) == list(range(10))
