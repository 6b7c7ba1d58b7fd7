"""Coalescing concurrent async callers into shared batches on a worker thread."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["Coalescer"]

Req = TypeVar("Req")
Res = TypeVar("Res")


class _LoopQueue(Generic[Req, Res]):
    def __init__(self) -> None:
        self.pending: list[tuple[Req, asyncio.Future[Res]]] = []
        self.task: asyncio.Task[None] | None = None


class Coalescer(Generic[Req, Res]):
    """Runs ``work(requests) -> results`` in a thread for every request submitted meanwhile.

    While one call of ``work`` runs, new requests queue up and go together in the next call,
    so N concurrent callers cost a few large batches instead of N small ones, and the event
    loop is never blocked. ``work`` returns one result per request; a result that is an
    exception is raised in that request's caller only.
    """

    def __init__(self, work: Callable[[Sequence[Req]], Sequence[Res | BaseException]]) -> None:
        self._work = work
        self._queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopQueue[Req, Res]] = (
            weakref.WeakKeyDictionary()
        )

    async def submit(self, request: Req) -> Res:
        loop = asyncio.get_running_loop()
        queue = self._queues.get(loop)
        if queue is None:
            queue = self._queues[loop] = _LoopQueue()
        future: asyncio.Future[Res] = loop.create_future()
        queue.pending.append((request, future))
        if queue.task is None or queue.task.done():
            queue.task = loop.create_task(self._drain(queue))
        return await future

    async def _drain(self, queue: _LoopQueue[Req, Res]) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(0)  # let callers scheduled in the same tick join the first batch
        while queue.pending:
            batch, queue.pending = queue.pending, []
            live = [(req, fut) for req, fut in batch if not fut.cancelled()]
            if not live:
                continue
            try:
                results = await loop.run_in_executor(None, self._work, [req for req, _ in live])
            except BaseException as exc:  # handed to every waiting caller
                for _, fut in live:
                    if not fut.done():
                        fut.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            for (_, fut), result in zip(live, results, strict=True):
                if fut.done():
                    continue
                if isinstance(result, BaseException):
                    fut.set_exception(result)
                else:
                    fut.set_result(result)
