"""A bounded memory that one caller cannot fill for everyone.

The relay remembers things callers wait on — a call parked for its user's input, where a URL-mode
elicitation went, which task a `related-task` id names — and must bound each memory. A plain "the
oldest go first" bound let one caller push out another's (outside review, isolation round 10: a
flood of 1,000 stateless calls cancelled another caller's call waiting on its user; 100 URL
elicitations lost another caller's completion). `FairCap` bounds per owner first, then in all, and
what the bound takes is always from the owner holding the most.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class FairCap(Generic[K, V]):
    """Entries by key, each of one owner (a caller; a server and a caller), under two bounds: at most
    `per_owner` of one owner (a new one pushes out that owner's own oldest) and `total` in all (the
    owner holding the most gives up its oldest). So a flood only ever pushes out its own owner's
    entries while others hold fewer. `on_evict(value)` is told of each entry a bound took."""

    def __init__(self, per_owner: int, total: int, on_evict: Callable[[V], None] | None = None) -> None:
        self.per_owner = per_owner
        self.total = total
        self._on_evict = on_evict
        self._by_owner: dict[Hashable, OrderedDict[K, V]] = {}
        self._owner_of: dict[K, Hashable] = {}

    def __len__(self) -> int:
        return len(self._owner_of)

    def __contains__(self, key: object) -> bool:
        return key in self._owner_of

    def get(self, key: K) -> V | None:
        if key not in self._owner_of:
            return None
        return self._by_owner[self._owner_of[key]][key]

    def put(self, key: K, owner: Hashable, value: V) -> None:
        """Remember `value` as `owner`'s newest entry (a key already held is replaced)."""
        self.pop(key)
        mine = self._by_owner.setdefault(owner, OrderedDict())
        mine[key] = value
        self._owner_of[key] = owner
        while len(mine) > self.per_owner:
            self._evict_oldest_of(owner)
        while len(self._owner_of) > self.total:
            self._evict_oldest_of(max(self._by_owner, key=lambda who: len(self._by_owner[who])))

    def pop(self, key: K) -> V | None:
        """Forget `key`; its value, or None."""
        if key not in self._owner_of:
            return None
        owner = self._owner_of.pop(key)
        mine = self._by_owner[owner]
        value = mine.pop(key)
        if not mine:
            del self._by_owner[owner]
        return value

    def count(self, owner: Hashable) -> int:
        """How many entries `owner` holds."""
        return len(self._by_owner.get(owner, ()))

    def values_of(self, owner: Hashable) -> list[V]:
        """`owner`'s entries, oldest first."""
        return list(self._by_owner.get(owner, {}).values())

    def items(self) -> Iterator[tuple[K, V]]:
        """A snapshot of (key, value), each owner's oldest first."""
        return iter([item for mine in list(self._by_owner.values()) for item in mine.items()])

    def _evict_oldest_of(self, owner: Hashable) -> None:
        key = next(iter(self._by_owner[owner]))
        value = self.pop(key)
        if self._on_evict is not None:
            self._on_evict(value)  # type: ignore[arg-type]
