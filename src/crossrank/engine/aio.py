"""Coalescing concurrent async callers into shared batches on a worker thread."""

from __future__ import annotations

import asyncio
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

    Each event loop has its own queue while it has requests in flight; the queue is dropped
    when it drains, so a process that runs many short-lived loops (``asyncio.run`` per call)
    keeps nothing of them.

    ``max_size`` bounds one call of ``work`` (in units of ``size(request)``, at least one
    request a call), so that a request waits for a bounded share of the backlog rather than
    all of it.
    """

    def __init__(
        self,
        work: Callable[[Sequence[Req]], Sequence[Res | BaseException]],
        *,
        size: Callable[[Req], int] = lambda _: 1,
        max_size: int | None = None,
    ) -> None:
        self._work = work
        self._size = size
        self._max_size = max_size
        self._queues: dict[asyncio.AbstractEventLoop, _LoopQueue[Req, Res]] = {}

    async def submit(self, request: Req) -> Res:
        """Queue ``request`` for the next shared call of ``work`` and wait for its result."""
        loop = asyncio.get_running_loop()
        queue = self._queues.get(loop)
        if queue is None:
            queue = self._queues[loop] = _LoopQueue()
        future: asyncio.Future[Res] = loop.create_future()
        queue.pending.append((request, future))
        if queue.task is None or queue.task.done():
            queue.task = loop.create_task(self._drain(loop, queue))
        return await future

    @property
    def n_loops(self) -> int:
        """Event loops with requests in flight."""
        return len(self._queues)

    def _cut(self, pending: list[tuple[Req, asyncio.Future[Res]]]) -> int:
        """How many queued requests the next call takes."""
        if self._max_size is None:
            return len(pending)
        total = 0
        for i, (request, _) in enumerate(pending):
            total += self._size(request)
            if total > self._max_size and i > 0:
                return i
        return len(pending)

    async def _drain(self, loop: asyncio.AbstractEventLoop, queue: _LoopQueue[Req, Res]) -> None:
        try:
            await self._drain_queue(loop, queue)
        finally:
            # Runs on the loop's own thread: no submit interleaves with this. Requests still
            # queued here mean the drain was cancelled (the loop is shutting down).
            for _, fut in queue.pending:
                fut.cancel()
            queue.pending = []
            if self._queues.get(loop) is queue:
                del self._queues[loop]

    async def _drain_queue(
        self, loop: asyncio.AbstractEventLoop, queue: _LoopQueue[Req, Res]
    ) -> None:
        await asyncio.sleep(0)  # let callers scheduled in the same tick join the first batch
        while queue.pending:
            cut = self._cut(queue.pending)
            batch, queue.pending = queue.pending[:cut], queue.pending[cut:]
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
