"""A small thread-safe LRU cache bounded by entry count and by bytes, for tensors and KV caches."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, fields, is_dataclass
from typing import Generic, TypeVar

import torch

V = TypeVar("V")


def nbytes(value: object) -> int:
    """Bytes held by the tensors in `value` (tensors, sequences, dicts, dataclasses, KV caches)."""
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, (list, tuple)):
        return sum(nbytes(v) for v in value)
    if isinstance(value, dict):
        return sum(nbytes(v) for v in value.values())
    if is_dataclass(value):
        return sum(nbytes(getattr(value, f.name)) for f in fields(value))
    layers = getattr(value, "layers", None)  # transformers' Cache: per-layer keys and values
    if layers is not None:
        return sum(
            nbytes(getattr(layer, "keys", None)) + nbytes(getattr(layer, "values", None))
            for layer in layers
        )
    return 0


@dataclass
class CacheStats:
    entries: int
    bytes: int
    hits: int
    misses: int


class LRUCache(Generic[V]):
    """Least-recently-used eviction once `max_entries` or `max_bytes` is exceeded.

    An entry larger than `max_bytes` on its own is not kept at all.
    """

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._items: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()
        self._bytes = 0
        self._hits = self._misses = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                self._misses += 1
                return None
            self._hits += 1
            self._items.move_to_end(key)
            return item[0]

    def __contains__(self, key: Hashable) -> bool:
        """Whether `key` is kept; unlike `get`, neither counted nor moved to most recent."""
        with self._lock:
            return key in self._items

    def keys(self) -> list[Hashable]:
        """The keys kept, least recently used first."""
        with self._lock:
            return list(self._items)

    def put(self, key: Hashable, value: V) -> None:
        size = nbytes(value)
        with self._lock:
            if key in self._items:
                self._bytes -= self._items.pop(key)[1]
            if size > self.max_bytes:
                return
            self._items[key] = (value, size)
            self._bytes += size
            while len(self._items) > self.max_entries or self._bytes > self.max_bytes:
                _, (_, evicted) = self._items.popitem(last=False)
                self._bytes -= evicted

    def get_or_create(self, key: Hashable, create: Callable[[], V]) -> V:
        value = self.get(key)
        if value is None:
            value = create()
            self.put(key, value)
        return value

    def clear(self) -> None:
        """Drops every entry and resets the hit/miss counts."""
        with self._lock:
            self._items.clear()
            self._bytes = self._hits = self._misses = 0

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(len(self._items), self._bytes, self._hits, self._misses)
