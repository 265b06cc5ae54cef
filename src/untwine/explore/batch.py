"""A few decoder threads for all requests: codes that arrive together are decoded in one batch.

On a CPU one forward of 100 codes through a conv64 decoder costs ~40% of 100 forwards of one,
and torch calls from dozens of threads at once fight for the cores. :class:`Batcher` runs every
decode on its ``workers`` threads: a free one takes whatever is queued (never waiting for more),
decodes it as one batch and hands each caller its part, passed through the caller's ``then``
(PNG encoding) on the same thread.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, TypeVar

import numpy as np

T = TypeVar("T")


@dataclass
class _Job(Generic[T]):
    codes: np.ndarray  # n x D
    then: Callable[[np.ndarray], T]
    future: Future = field(default_factory=Future)


class Batcher:
    """Decode ``n x D`` code arrays submitted from any thread, in batches, on ``workers`` threads.

    Args:
        decode: codes ``N x D`` -> images ``N x ...`` (e.g. :meth:`untwine.train.Run.decode`).
        max_batch: codes per batch; a job larger than this is decoded alone, jobs are never split.
        workers: decoder threads taking batches from the one queue.
    """

    def __init__(self, decode: Callable[[np.ndarray], np.ndarray], max_batch: int = 1024,
                 workers: int = 1, name: str = "untwine-decode") -> None:
        self._decode = decode
        self.max_batch = int(max_batch)
        self._queue: queue.SimpleQueue[_Job[Any] | None] = queue.SimpleQueue()
        self._closed = False
        self.batches = 0  # decoder calls made (for tests and the benchmark)
        self._count = threading.Lock()
        self._threads = [threading.Thread(target=self._work, daemon=True, name=f"{name}-{i}") for i in range(workers)]
        for t in self._threads:
            t.start()

    def submit(self, codes: np.ndarray, then: Callable[[np.ndarray], T]) -> "Future[T]":
        """A future of ``then(images of codes)``; ``then`` runs on the decoder thread."""
        if self._closed:
            raise RuntimeError("the decoder has been closed")
        job: _Job[T] = _Job(np.asarray(codes, np.float32), then)
        self._queue.put(job)
        return job.future

    def close(self, timeout: float = 10.0) -> None:
        """Decode what is queued, then stop the threads."""
        if not self._closed:
            self._closed = True
            for _ in self._threads:
                self._queue.put(None)
        for t in self._threads:
            t.join(timeout)

    def _work(self) -> None:
        held: _Job[Any] | None = None
        while True:
            job = held if held is not None else self._queue.get()
            held = None
            if job is None:
                return
            jobs, n, stop = [job], len(job.codes), False
            while n < self.max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:  # closing: this batch is this thread's last
                    stop = True
                    break
                if n + len(nxt.codes) > self.max_batch:
                    held = nxt
                    break
                jobs.append(nxt)
                n += len(nxt.codes)
            self._run(jobs)
            if stop:
                return

    def _run(self, jobs: list[_Job[Any]]) -> None:
        jobs = [j for j in jobs if j.future.set_running_or_notify_cancel()]  # drop cancelled ones
        if not jobs:
            return
        try:
            images = self._decode(np.concatenate([j.codes for j in jobs]))
            with self._count:
                self.batches += 1
        except Exception as e:  # noqa: BLE001 - handed to every caller
            for j in jobs:
                j.future.set_exception(e)
            return
        start = 0
        for j in jobs:
            part = images[start : start + len(j.codes)]
            start += len(j.codes)
            try:
                j.future.set_result(j.then(part))
            except Exception as e:  # noqa: BLE001
                j.future.set_exception(e)
