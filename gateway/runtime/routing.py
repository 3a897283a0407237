"""A prefix split in front of Django: a string comparison, not URL resolution."""

from __future__ import annotations

from typing import Any


class PrefixRouter:
    def __init__(self, data_plane: Any, django_app: Any, *, prefixes: tuple[str, ...],
                 exact: tuple[str, ...] = ()) -> None:
        self.data_plane = data_plane
        self.django_app = django_app
        self.prefixes = prefixes
        self.exact = frozenset(exact)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope["path"]
        if path.startswith(self.prefixes) or path in self.exact:
            await self.data_plane(scope, receive, send)
        else:
            await self.django_app(scope, receive, send)
