"""Which model versions are in memory when the endpoint serves more than fit at once.

With `serve --memory-budget` or `--max-loaded`, a version is loaded on its first request
and the least recently used ones are evicted once the resident total is over the budget (or
the count over the maximum). One load per version runs at a time, on a small pool of loader
threads, and every request for it waits on that one load, for at most `load_timeout`
seconds: then it is answered 503 with Retry-After, while the load goes on. A version being
predicted with, or pinned (the stable and canary versions of a rollout being judged), is
never evicted; if nothing else can go, the budget is exceeded until something is released,
because a request must never fail on account of another model.

The resident size of a version is the length of its pickle: scikit-learn estimators pickle
their arrays byte for byte, so it tracks the memory their fitted state holds (not the Python
object overhead, and not memory a model allocates while predicting). `sys.getsizeof` would
count only the outer object.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pickle
import re
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from modelfactory.serving.metrics import ResidencyMetrics

__all__ = ["Limits", "LoadPending", "Residency", "parse_size", "pickled_bytes"]

log = logging.getLogger(__name__)
Key = tuple[str, str]  # (model, version)
_UNITS = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)b?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Bytes from `2GiB`, `512MiB`, `1.5GB`, `800M` or a plain number of bytes."""
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(f"not a size: {text!r} (say 2GiB, 512MiB or a number of bytes)")
    number, unit, binary = match.groups()
    unit = unit.lower()
    scale = 1024 ** "kmgt".index(unit) * 1024 if binary and unit else _UNITS[unit]
    return int(float(number) * scale)


def pickled_bytes(obj: Any) -> int:
    """The honest proxy of a fitted model's resident size: the length of its pickle."""
    return len(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


@dataclass(frozen=True)
class Limits:
    """What may stay loaded: a byte budget, a count, or both (None: no such limit)."""

    budget_bytes: int | None = None
    max_loaded: int | None = None
    load_timeout: float = 30.0  # seconds a request waits for a cold version
    retry_after: int = 1  # seconds the 503 tells the client to wait
    loaders: int = 2  # threads loading versions


class LoadPending(Exception):
    """A cold version did not load within the request's wait: answer 503, Retry-After."""

    def __init__(self, key: Key, retry_after: int) -> None:
        super().__init__(f"{key[0]} v{key[1]} is loading; retry in {retry_after} s")
        self.retry_after = retry_after


@dataclass(eq=False)
class _Entry:
    value: Any
    size: int
    users: int = 0  # requests predicting with it now: not evictable
    dropped: bool = False  # removed while in use: closed when the last user leaves


class Residency:
    """The loaded versions, least recently used first, within `limits`."""

    def __init__(
        self,
        load: Callable[[str, str], Any],
        *,
        limits: Limits,
        size: Callable[[Any], int] = pickled_bytes,
        close: Callable[[Any], None] = lambda value: None,
        metrics: ResidencyMetrics | None = None,
    ) -> None:
        self._load, self._size, self._close = load, size, close
        self.limits = limits
        self._metrics = metrics
        self._lock = threading.Lock()
        self._entries: OrderedDict[Key, _Entry] = OrderedDict()
        self._loading: dict[Key, Future[None]] = {}
        self._pinned: dict[str, set[str]] = {}  # versions per model that must stay
        self._waiters: Counter[Key] = Counter()  # requests waiting on a load: keep it for them
        self._pool = ThreadPoolExecutor(limits.loaders, thread_name_prefix="model-load")
        self.loads = 0
        self.evictions = 0

    # -- state ---------------------------------------------------------------------------

    @property
    def resident(self) -> list[Key]:
        with self._lock:
            return list(self._entries)

    @property
    def resident_bytes(self) -> int:
        with self._lock:
            return sum(entry.size for entry in self._entries.values())

    def pin(self, model: str, versions: set[str]) -> None:
        """The versions of `model` never evicted from now on (replacing its earlier pins)."""
        with self._lock:
            if versions:
                self._pinned[model] = set(versions)
            else:
                self._pinned.pop(model, None)
            evicted = self._evict()
        self._closed(evicted)

    def is_pinned(self, model: str, version: str) -> bool:
        with self._lock:
            return version in self._pinned.get(model, ())

    def discard(self, model: str, keep: set[str]) -> None:
        """Forget `model`'s versions not in `keep` (no longer any target of it)."""
        closing = []
        with self._lock:
            for key in [k for k in self._entries if k[0] == model and k[1] not in keep]:
                entry = self._entries.pop(key)
                if entry.users:
                    entry.dropped = True
                else:
                    closing.append(entry.value)
            self._publish()
        for value in closing:
            self._close(value)

    # -- getting a version ---------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def use(self, model: str, version: str) -> AsyncIterator[Any]:
        """The loaded version, held (not evictable) until the block ends; loaded first if
        cold, waiting at most `load_timeout` (LoadPending) or raising why it failed."""
        key = (model, version)
        entry = await self._acquire(key)
        try:
            yield entry.value
        finally:
            self._release(key, entry)

    def ensure(self, model: str, version: str) -> Any:
        """Load now, from a background thread (the refresher, for pinned versions)."""
        key = (model, version)
        while True:
            with self._lock:
                entry = self._entries.get(key)
                if entry is not None:
                    self._entries.move_to_end(key)
                    return entry.value
                future = self._loading.get(key) or self._start(key)
            future.result()

    async def _acquire(self, key: Key) -> _Entry:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:  # the hot path: loaded already
                entry.users += 1
                self._entries.move_to_end(key)
                return entry
            self._waiters[key] += 1  # from here until taken, a fresh load of it stays
        try:
            return await self._wait_for_load(key)
        finally:
            with self._lock:
                self._waiters[key] -= 1
                if not self._waiters[key]:
                    del self._waiters[key]

    async def _wait_for_load(self, key: Key) -> _Entry:
        deadline = time.monotonic() + self.limits.load_timeout
        while True:
            with self._lock:
                entry = self._entries.get(key)
                if entry is not None:
                    entry.users += 1
                    self._entries.move_to_end(key)
                    return entry
                future = self._loading.get(key) or self._start(key)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LoadPending(key, self.limits.retry_after)
            waiting = asyncio.shield(asyncio.wrap_future(future))  # a timeout stops no load
            try:
                await asyncio.wait_for(waiting, remaining)
            except TimeoutError:
                raise LoadPending(key, self.limits.retry_after) from None
            # loaded: taken on the next pass (it stays while this request waits for it)

    def _release(self, key: Key, entry: _Entry) -> None:
        with self._lock:
            entry.users -= 1
            closing = [entry.value] if entry.dropped and not entry.users else []
            evicted = self._evict()  # what could not go while in use may go now
        self._closed(closing + evicted)

    def _start(self, key: Key) -> Future[None]:
        """A load of `key` on the pool (caller holds the lock)."""
        future = self._pool.submit(self._load_one, key)
        self._loading[key] = future
        return future

    def _load_one(self, key: Key) -> None:
        started = time.perf_counter()
        try:
            value = self._load(*key)
            size = self._size(value)
        except BaseException:
            with self._lock:
                self._loading.pop(key, None)
            if self._metrics is not None:
                self._metrics.loads.labels(key[0], "error").inc()
            raise
        seconds = time.perf_counter() - started
        with self._lock:
            self._loading.pop(key, None)
            self._entries[key] = _Entry(value, size)
            self.loads += 1
            evicted = self._evict()
        if self._metrics is not None:
            self._metrics.loads.labels(key[0], "ok").inc()
            self._metrics.load_seconds.labels(key[0]).observe(seconds)
        log.info("%s v%s loaded in %.2f s (%d bytes)", key[0], key[1], seconds, size)
        self._closed(evicted)

    # -- eviction ------------------------------------------------------------------------

    def _over(self) -> bool:
        limits = self.limits
        if limits.max_loaded is not None and len(self._entries) > limits.max_loaded:
            return True
        if limits.budget_bytes is None:
            return False
        return sum(entry.size for entry in self._entries.values()) > limits.budget_bytes

    def _evict(self) -> list[Any]:
        """Least recently used first, skipping versions in use or pinned, until within the
        limits or nothing more may go (caller holds the lock). The values to close."""
        evicted: list[Any] = []
        while self._over():
            key = next((k for k, e in self._entries.items() if self._evictable(k, e)), None)
            if key is None:
                break  # everything left is in use or pinned: over the budget until released
            evicted.append(self._entries.pop(key).value)
            self.evictions += 1
            if self._metrics is not None:
                self._metrics.evictions.labels(key[0]).inc()
        self._publish()
        return evicted

    def _evictable(self, key: Hashable, entry: _Entry) -> bool:
        model, version = key  # type: ignore[misc]
        if entry.users or self._waiters.get(key):  # type: ignore[call-overload]
            return False
        return version not in self._pinned.get(model, ())

    def _publish(self) -> None:
        if self._metrics is not None:
            self._metrics.resident_bytes.set(sum(e.size for e in self._entries.values()))
            self._metrics.loaded.set(len(self._entries))

    def _closed(self, values: list[Any]) -> None:
        for value in values:
            self._close(value)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
