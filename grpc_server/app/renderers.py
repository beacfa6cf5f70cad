"""Loaded avatars and their renderers: a bounded cache of renderer pools, one pool per avatar.

A renderer caches per-avatar work (posed geometry, occupancy) and is driven by one thread at a time;
a pool of a few lets several streams of one avatar render side by side without sharing one.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

from avatar.asset import Avatar

R = TypeVar("R")


class RendererPool(Generic[R]):
    """Up to `size` renderers of one avatar, leased one caller at a time; built on first need."""

    def __init__(self, avatar: Avatar, factory: Callable[[Avatar], R], size: int):
        self.avatar = avatar
        self._factory = factory
        self._size = max(1, size)
        self._idle: list[R] = []
        self._count = 0
        self._cond = threading.Condition()

    @contextmanager
    def lease(self) -> Iterator[R]:
        """A renderer of this avatar for the duration of the block (waits while all are leased)."""
        with self._cond:
            while not self._idle and self._count >= self._size:
                self._cond.wait()
            build = not self._idle
            if build:
                self._count += 1
            else:
                renderer = self._idle.pop()
        if build:
            try:
                renderer = self._factory(self.avatar)
            except BaseException:
                with self._cond:
                    self._count -= 1
                    self._cond.notify()
                raise
        try:
            yield renderer
        finally:
            with self._cond:
                self._idle.append(renderer)
                self._cond.notify()

    def warm(self) -> None:
        """Build one renderer now, so a stream's first frame does not pay for it."""
        with self.lease():
            pass


class RendererCache(Generic[R]):
    """The renderer pools of the `capacity` most recently used avatars.

    `load(avatar_id)` reads an avatar (the store's load: it raises AvatarNotFound / DamagedAvatar).
    Concurrent requests for one avatar share one load; different avatars load in parallel.
    """

    def __init__(self, load: Callable[[str], Avatar], factory: Callable[[Avatar], R], capacity: int = 8,
                 renderers_per_avatar: int = 2):
        self._load = load
        self._factory = factory
        self._capacity = max(1, capacity)
        self._per_avatar = renderers_per_avatar
        self._pools: OrderedDict[str, RendererPool[R]] = OrderedDict()
        self._lock = threading.Lock()
        # id -> (its load lock, holders + waiters); an entry lives only while someone holds or waits for
        # it, whether the load succeeds or fails, so unknown ids cannot pile up.
        self._load_locks: dict[str, tuple[threading.Lock, int]] = {}

    def pool(self, avatar_id: str) -> RendererPool[R]:
        """The avatar's pool, loading and verifying the avatar on a miss."""
        with self._lock:
            pool = self._pools.get(avatar_id)
            if pool is not None:
                self._pools.move_to_end(avatar_id)
                return pool
            load_lock, waiters = self._load_locks.get(avatar_id, (threading.Lock(), 0))
            self._load_locks[avatar_id] = (load_lock, waiters + 1)
        try:
            with load_lock:
                with self._lock:
                    pool = self._pools.get(avatar_id)
                if pool is not None:
                    return pool
                pool = RendererPool(self._load(avatar_id), self._factory, self._per_avatar)
                with self._lock:
                    self._pools[avatar_id] = pool
                    while len(self._pools) > self._capacity:
                        self._pools.popitem(last=False)
                return pool
        finally:
            with self._lock:
                lock, waiters = self._load_locks[avatar_id]
                if waiters == 1:
                    del self._load_locks[avatar_id]
                else:
                    self._load_locks[avatar_id] = (lock, waiters - 1)

    def evict(self, avatar_id: str) -> None:
        with self._lock:
            self._pools.pop(avatar_id, None)

    def loading(self) -> int:
        """Avatars being loaded right now (0 when idle: nothing is left behind by failed loads)."""
        with self._lock:
            return len(self._load_locks)
