"""The one long-lived thread that runs generation jobs, one after another.

A thread per question would do too, but `torch.compile`'s CUDA graphs are recorded per thread
(inductor keeps its CUDA-graph trees in thread-local storage): every new thread would record them
again. ZeroGPU forks the server process into a GPU worker, where no thread of the parent runs any
more: the first job in a new process starts the thread there.
"""

from __future__ import annotations

import os
import queue
import threading
import weakref
from collections.abc import Callable

STOP = (None, None)


class ModelThread:
    def __init__(self, name: str) -> None:
        self.name = name
        self._pid: int | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()

    def submit(self, job: Callable[[], None]) -> threading.Event:
        """Queues `job`; the returned event is set once it has returned or raised."""
        if self._pid != os.getpid():  # a new process: the parent's lock and thread stayed there
            self._pid, self._lock, self._thread = os.getpid(), threading.Lock(), None
        finished = threading.Event()
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._jobs = queue.SimpleQueue()
                self._thread = threading.Thread(
                    target=_serve, args=(self._jobs,), name=self.name, daemon=True
                )
                self._thread.start()
                # The thread ends with its owner (and must not keep the owner alive meanwhile).
                weakref.finalize(self, self._jobs.put, STOP)
            self._jobs.put((job, finished))
        return finished


def _serve(jobs: queue.SimpleQueue) -> None:
    while True:
        job, finished = jobs.get()
        if job is None:
            return
        try:
            job()
        finally:
            # The job holds its pipeline: an idle thread must not keep a model in memory.
            del job
            finished.set()
