"""Candidates trained side by side: the thread and process policy of a search.

A proxy-sized candidate does not scale with threads (a 20k-parameter network at 16 px keeps one
core busy at most), and torch's default intra-op threads spin in OpenMP when another process
holds a core, which made a search 6-7x slower on a busy 2-core machine. So on a CPU a search
trains several candidates at once, one process each, with a few threads each:

* ``threads`` (per candidate; default 1 on a CPU, torch's default on a GPU), set with
  ``torch.set_num_threads`` in every process that trains, the search's own included (and put
  back afterwards);
* ``workers`` (candidates at once; default on a CPU: the cores this process may use,
  ``os.sched_getaffinity``, divided by ``threads``; on a GPU, or under ``accelerate launch``
  with several processes: 1). With one worker, candidates train in the search's process. On a
  GPU, ``workers: N`` trains N small candidates at once on the one GPU (a process and a CUDA
  context each, the data copied to the GPU once per worker), since one proxy-sized network
  leaves a large GPU mostly idle.

The workers are a :class:`concurrent.futures.ProcessPoolExecutor` of spawned processes
(``torch.multiprocessing``'s context, so the data's tensors reach them through shared memory
once, when a worker starts). Each candidate's training is seeded by the run's seed and its
genome, and the thread count does not depend on the number of workers, so a search gives the
same records whatever ``workers`` is. The search process writes each record as soon as its
candidate is done (results come back as they finish), so a killed search loses only the
candidates in training, as with one worker.
"""

from __future__ import annotations

import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from contextlib import contextmanager
from typing import Iterable, Iterator

import torch

from .candidate import evaluate_candidate

_WORKER: dict = {}


def available_cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def resolve_threads(threads: int | None, on_gpu: bool) -> int | None:
    """Threads per candidate: ``threads``, else 1 on a CPU and torch's default (None) on a GPU."""
    if threads is not None:
        return threads
    return None if on_gpu else 1


def resolve_workers(workers: int | None, threads: int | None, on_gpu: bool, processes: int = 1) -> int:
    """Candidates trained at once: ``workers``, else the usable cores / threads on a CPU, and 1 on
    a GPU or when ``accelerate launch`` already runs several processes."""
    if workers is not None:
        return workers
    if on_gpu or processes > 1:
        return 1
    return max(1, available_cores() // max(1, threads or 1))


@contextmanager
def torch_threads(threads: int | None):
    """``torch.set_num_threads(threads)`` for the block (None: leave as is), then put back."""
    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _exit_with_parent(parent: int) -> None:
    """A worker whose search process was killed (``kill -9``) ends too, instead of lingering."""
    import time

    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def _start_worker(data, config, threads, parent: int) -> None:
    import threading

    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    if threads is not None:
        torch.set_num_threads(threads)
    if torch.cuda.is_available() and not config.cpu:  # several candidates share the GPU: the data goes there once
        data = data.to("cuda")
    _WORKER.update(data=data, config=config)


def _train_in_worker(index: int, genome, predicted_blocks, seed: int) -> tuple[int, dict]:
    return index, evaluate_candidate(genome, _WORKER["data"], _WORKER["config"], predicted_blocks=predicted_blocks,
                                     seed=seed)


class CandidatePool:
    """``workers`` spawned processes that train candidates on ``data`` with ``config``."""

    def __init__(self, workers: int, data, config, threads: int | None):
        import torch.multiprocessing as mp

        self._executor = ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                                             initializer=_start_worker, initargs=(data, config, threads, os.getpid()))

    def train(self, jobs: Iterable[tuple[int, object, list, int]]) -> Iterator[tuple[int, dict]]:
        """``(index, genome, predicted_blocks, seed)`` jobs; yields ``(index, result)`` as each
        finishes. A worker that dies (killed, out of memory) is a RuntimeError saying so."""
        from concurrent.futures.process import BrokenProcessPool

        pending = {self._executor.submit(_train_in_worker, *job) for job in jobs}
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
        except BrokenProcessPool as err:
            raise RuntimeError(f"a candidate-training worker process died ({err}); every evaluation finished "
                               "before it is kept: run the search again with --resume (resume=True), with fewer "
                               "workers if memory is short") from None
        finally:
            for future in pending:
                future.cancel()

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
