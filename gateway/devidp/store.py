"""An in-memory key/value store whose entries expire; the dev IdP keeps all its state here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

V = TypeVar("V")


class StoreFullError(RuntimeError):
    """Too many live entries: refuse new work rather than evict entries a flow still needs."""


class ExpiringStore(Generic[V]):
    def __init__(self, clock: Callable[[], float], *, max_items: int = 10_000) -> None:
        self._clock = clock
        self._max_items = max_items
        self._items: dict[str, tuple[V, float]] = {}

    def put(self, key: str, value: V, expires_at: float) -> None:
        if key not in self._items and len(self._items) >= self._max_items:
            self._sweep()
            if len(self._items) >= self._max_items:
                raise StoreFullError("too many live entries")
        self._items[key] = (value, expires_at)

    def get(self, key: str) -> V | None:
        entry = self._items.get(key)
        if entry is None:
            return None
        if entry[1] <= self._clock():
            del self._items[key]
            return None
        return entry[0]

    def pop(self, key: str) -> V | None:
        value = self.get(key)
        self._items.pop(key, None)
        return value

    def discard(self, key: str) -> None:
        self._items.pop(key, None)

    def add_if_new(self, key: str, value: V, expires_at: float) -> bool:
        """Remember ``key`` unless it is already live; True when it was new (replay detection)."""
        entry = self._items.get(key)
        if entry is not None and entry[1] > self._clock():
            return False
        self.put(key, value, expires_at)
        return True

    def __len__(self) -> int:
        self._sweep()
        return len(self._items)

    def _sweep(self) -> None:
        now = self._clock()
        for key in [k for k, (_, expires_at) in self._items.items() if expires_at <= now]:
            del self._items[key]
