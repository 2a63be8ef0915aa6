"""The one long-lived thread per process that runs generation jobs, one after another.

A thread per question, or per pipeline, would do too, but `torch.compile`'s CUDA graphs are
recorded per thread (inductor keeps its CUDA-graph trees in thread-local storage): every new
thread would record them again, and before torch 2.14 a second thread that replays compiled
graphs fails outright. So every pipeline of a process submits to the same thread. ZeroGPU forks
the server process into a GPU worker, where no thread of the parent runs any more: the first job
in a new process starts the thread there.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable

from fo1_core.host_memory import trim_heap

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_jobs: queue.SimpleQueue = queue.SimpleQueue()
_thread: threading.Thread | None = None
_unfinished = 0  # jobs queued or running


def _forget_the_parents_thread() -> None:
    """In a forked child only the forking thread runs: the parent's lock, queue and thread stay
    there. Reset at the fork itself, before any thread of the child can submit a job."""
    global _lock, _jobs, _thread, _unfinished
    _lock, _jobs, _thread, _unfinished = threading.Lock(), queue.SimpleQueue(), None, 0


os.register_at_fork(after_in_child=_forget_the_parents_thread)


def submit(job: Callable[[], None]) -> threading.Event:
    """Queues `job`; the returned event is set once it has returned or raised."""
    global _thread, _unfinished
    finished = threading.Event()
    with _lock:
        _unfinished += 1
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(
                target=_serve, args=(_jobs,), name="fo1-generate", daemon=True
            )
            _thread.start()
        _jobs.put((job, finished))
    return finished


def idle() -> bool:
    """Whether no job is queued or running."""
    return _unfinished == 0


def _serve(jobs: queue.SimpleQueue) -> None:
    global _unfinished
    while True:
        job, finished = jobs.get()
        try:
            job()
        except Exception:
            # Jobs report their own failures; one that does not must not end the thread and
            # strand the jobs queued behind it.
            logger.exception("A job on the generation thread failed")
        finally:
            # The job holds its pipeline: an idle thread must not keep a model in memory.
            del job
            with _lock:
                _unfinished -= 1
            finished.set()
            trim_heap()  # after the caller has its answer
