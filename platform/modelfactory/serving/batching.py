"""Micro-batching: concurrent requests to one model version share one predict call.

A scikit-learn pipeline's predict costs about the same for 1 row as for 100 (most of it is
per-call overhead: validation, column transforms, numpy dispatch). So while one predict runs,
the requests that arrive queue up, and the next call takes all of them at once; requests that
the server has already received but not yet validated get a few event-loop turns (at most
`max_wait`) to join. A lone request is predicted immediately: nothing waits on a timer. A
failing batch is retried request by request, so one request that breaks the model never fails
the others that happened to share its batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Any, NamedTuple

__all__ = ["MicroBatcher", "PredictResult"]


class PredictResult(NamedTuple):
    """One predict call's answer, row by row, as plain Python values."""

    predictions: list[Any]  # the model's own labels for a classifier (str, int or bool)
    scores: list[float] | None = None  # the positive class's probability (binary)
    probabilities: list[dict[str, float]] | None = None  # per class, for classifiers

    def rows(self, start: int, end: int) -> PredictResult:
        return PredictResult(
            self.predictions[start:end],
            self.scores[start:end] if self.scores else None,
            self.probabilities[start:end] if self.probabilities else None,
        )


_STOP = object()
PredictFn = Callable[[Sequence[dict[str, Any]]], PredictResult]


class MicroBatcher:
    """Queues rows for one predict function and runs it in an executor, batch by batch."""

    def __init__(
        self,
        predict: PredictFn,
        executor: Executor | None,
        *,
        max_rows: int = 4096,
        max_wait: float = 0.002,
        arriving: Callable[[], int] | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self._predict = predict
        self._executor = executor
        self._max_rows = max_rows
        self._max_wait = max_wait
        self._arriving = arriving
        self._on_batch = on_batch
        self._queue: asyncio.Queue[Any] | None = None
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None

    async def predict(self, rows: Sequence[dict[str, Any]]) -> PredictResult:
        if self._queue is None:
            # Created on first use, inside the serving event loop (models load in a thread).
            self._loop = asyncio.get_running_loop()
            self._queue = asyncio.Queue()
            self._stopping = False
            self._loop.create_task(self._run(self._queue))
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((rows, future))
        return await future

    def close(self) -> None:
        """Stop the worker once it has answered everything queued so far (thread-safe)."""
        loop, queue = self._loop, self._queue
        if loop is not None and queue is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._stop_once, queue)

    def _stop_once(self, queue: asyncio.Queue[Any]) -> None:
        if queue is self._queue and not self._stopping:
            self._stopping = True
            queue.put_nowait(_STOP)

    async def _run(self, queue: asyncio.Queue[Any]) -> None:
        while True:
            first = await queue.get()
            if first is _STOP:
                if queue.empty():
                    # A request that still holds this version later starts a fresh worker.
                    self._queue = None
                    return
                queue.put_nowait(_STOP)  # stop after the requests that came in late
                continue
            batch = [first]
            try:
                await self._answer(queue, batch)
            except Exception as exc:  # a bug here must never strand the requests it holds
                for _, future in batch:
                    _settle(future, error=exc)
            except asyncio.CancelledError:
                for _, future in batch:
                    _settle(future, error=RuntimeError("the endpoint is shutting down"))
                raise

    async def _answer(self, queue: asyncio.Queue[Any], batch: list[Any]) -> None:
        loop = asyncio.get_running_loop()
        size = len(batch[0][0])
        if self._arriving is not None and self._arriving():
            # Requests already read off their sockets are still being validated: let them
            # join this batch (a few loop turns, never past max_wait). A lone request, with
            # nothing arriving, goes straight on.
            deadline = loop.time() + self._max_wait
            while self._arriving() and loop.time() < deadline:
                await asyncio.sleep(0)
        while size < self._max_rows and not queue.empty():
            item = queue.get_nowait()
            if item is _STOP:
                queue.put_nowait(_STOP)
                break
            batch.append(item)
            size += len(item[0])
        if self._on_batch:
            self._on_batch(size)
        rows = [row for request_rows, _ in batch for row in request_rows]
        try:
            result = await self._call(loop, rows)
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0][1], error=exc)
            else:
                await self._one_by_one(batch)
            return
        _split(batch, result)

    async def _call(self, loop: asyncio.AbstractEventLoop, rows: list[dict]) -> PredictResult:
        if self._executor is None:
            result = self._predict(rows)
        else:
            result = await loop.run_in_executor(self._executor, self._predict, rows)
        return PredictResult(*result)  # a plain (predictions, scores) tuple is one too

    async def _one_by_one(self, batch: list[tuple[Sequence[dict], asyncio.Future]]) -> None:
        loop = asyncio.get_running_loop()
        for rows, future in batch:
            try:
                _settle(future, await self._call(loop, rows))
            except Exception as exc:
                _settle(future, error=exc)


def _split(batch: list[tuple[Sequence[dict], asyncio.Future]], result: PredictResult) -> None:
    start = 0
    for rows, future in batch:
        end = start + len(rows)
        _settle(future, result.rows(start, end))
        start = end


def _settle(future: asyncio.Future, result: Any = None, error: BaseException | None = None) -> None:
    if future.done():  # the client went away and its request was cancelled
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
