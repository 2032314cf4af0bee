"""Candidates trained side by side: the thread and process policy of a search.

A proxy-sized candidate does not scale with threads (a 20k-parameter network at 16 px keeps one
core busy at most), and torch's default intra-op threads spin in OpenMP when another process
holds a core, which slows a search down on a busy machine (``bench.search_wall`` measures it
quiet and under load). So on a CPU a search
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

The workers are spawned processes (``torch.multiprocessing``'s context, so the data's tensors
reach them through shared memory once, when a worker starts), each fed one candidate at a time
through its own pipe. Each candidate's training is seeded by the run's seed and its genome, and
the thread count does not depend on the number of workers, so a search gives the same records
whatever ``workers`` is. The search process writes each record as soon as its candidate is done
(results come back as they finish), so a killed search loses only the candidates in training,
as with one worker.

Crashes. A worker's stderr goes to a file that the search relays to its own stderr after each
candidate. A worker that dies while training (a signal such as SIGSEGV from a C library, an
abort, the OOM killer's SIGKILL) loses that one candidate: it is recorded with status
``"crashed"``, fitness 0, the signal and the last lines the worker wrote (faulthandler adds the
Python stack of a fatal signal), a fresh worker takes its place and the search goes on; resume
treats the record as done. With one worker (``workers: 1``, the default on a GPU) candidates
train in the search's own process, where a crash inside a library ends the search: run again
with ``--resume`` and it carries on (the crashing candidate is trained again, so a crash that
repeats needs ``workers: 2`` or more, or its cause fixed).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterable, Iterator

import torch

from ..space_blocks import BlockSpace
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


def _worker_main(conn, data, config, threads, parent: int, stderr_path: str, evaluate, space=None) -> None:
    """A worker process: its stderr goes to ``stderr_path`` (the search relays it, and keeps the
    last words of a worker that dies); then one job at a time from ``conn`` until ``None``."""
    import faulthandler
    import signal
    import sys
    import threading

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the search decides
    from tqdm import tqdm

    # a thread lock for the progress bars: tqdm's default takes a multiprocessing semaphore, which a
    # worker killed in mid-candidate (Ctrl-C in the search) would leave behind: a warning at exit
    tqdm.set_lock(threading.RLock())
    fd = os.open(stderr_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 2)  # C libraries (oneDNN, glibc's malloc checks) and Python write here
    os.close(fd)
    faulthandler.enable(file=sys.stderr, all_threads=False)  # a fatal signal leaves its Python stack in the last words
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    if threads is not None:
        torch.set_num_threads(threads)
    if torch.cuda.is_available() and not config.cpu:  # several candidates share the GPU: the data goes there once
        data = data.to("cuda")
    while True:
        job = conn.recv()
        if job is None:
            return
        index, genome, predicted_blocks, seed = job
        try:
            extra = {} if space is None else {"space": space}
            result = evaluate(genome, data, config, predicted_blocks=predicted_blocks, seed=seed, **extra)
        except BaseException as err:  # noqa: BLE001 - sent back and raised in the search process
            sys.stderr.flush()
            conn.send(("error", index, err))
            continue
        sys.stderr.flush()
        conn.send(("ok", index, result))


def describe_exit(exitcode: int | None) -> str:
    """``-11`` -> ``"SIGSEGV"``; ``1`` -> ``"exit status 1"``."""
    import signal

    if exitcode is not None and exitcode < 0:
        try:
            return signal.Signals(-exitcode).name
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit status {exitcode}"


#: how much of a dead worker's stderr a crashed record keeps (its last lines, each cut to 300 characters)
LAST_WORDS_LINES = 20
LAST_WORDS_CHARS = 2000


def crashed_result(exitcode: int | None, last_words: str, seconds: float, threads: int | None) -> dict:
    """The result of a candidate whose worker process died while training it: status
    ``"crashed"``, fitness 0 (ranked last, never picked as the best), the signal and the last
    lines the process wrote to stderr."""
    how = describe_exit(exitcode)
    lines = [line[:300] for line in last_words.strip().splitlines()
             if line.strip() and not line.startswith("Extension modules:")]  # faulthandler's module list
    words = "\n".join(lines[-LAST_WORDS_LINES:])[-LAST_WORDS_CHARS:]
    reason = f"the worker process training it died ({how})" + (f"; its last words: {words}" if words else "")
    return {"fitness": 0.0, "top5": 0.0, "parameters": 0, "trainable_parameters": 0, "train_scope": "",
            "status": "crashed", "reason": reason, "signal": how, "images_per_second": 0.0,
            "threads": threads, "seconds": round(seconds, 3)}


class _Worker:
    """One worker process, its pipe and its stderr file."""

    def __init__(self, context, slot: int, log_dir: str, args: tuple):
        import time

        self.stderr_path = os.path.join(log_dir, f"worker-{slot}-{time.monotonic_ns()}.stderr")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_worker_main, args=(child, *args[:4], self.stderr_path, *args[4:]),
                                       daemon=True)
        self.process.start()
        child.close()
        self.job = None  # the job in training: (index, genome, predicted_blocks, seed)
        self.started = 0.0
        self._relayed = 0

    def new_stderr(self) -> str:
        """What the worker wrote to stderr since the last call."""
        try:
            with open(self.stderr_path, "rb") as f:
                f.seek(self._relayed)
                chunk = f.read()
        except OSError:
            return ""
        self._relayed += len(chunk)
        return chunk.decode("utf-8", "replace")

    def last_words(self) -> str:
        try:
            with open(self.stderr_path, "rb") as f:
                f.seek(max(0, os.path.getsize(self.stderr_path) - 4 * LAST_WORDS_CHARS))
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self, now: bool = False) -> None:
        """End the worker: after its candidate (``None`` sent, 5 s allowed), or at once."""
        if now:  # its candidate is dropped (a resume trains it again); it holds no lock or semaphore to leak
            self.process.kill()
            self.process.join()
        else:
            try:
                self.conn.send(None)
            except (OSError, ValueError):
                pass
            self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


class CandidatePool:
    """``workers`` spawned processes that train candidates on ``data`` with ``config``.

    A worker that dies while it trains a candidate (a signal, an abort inside a library, the
    OOM killer) takes only that candidate with it: its result is :func:`crashed_result`, a
    fresh worker takes its place and the others go on. ``evaluate`` is the evaluation each
    worker runs (default :func:`~.candidate.evaluate_candidate`, looked up when the pool is made),
    with ``space`` (a search space other than the block genome) passed to it."""

    def __init__(self, workers: int, data, config, threads: int | None, evaluate=None, space=None):
        import tempfile

        import torch.multiprocessing as mp

        self._context = mp.get_context("spawn")
        self._logs = tempfile.TemporaryDirectory(prefix="gptnas-workers-")
        self._threads = threads
        self._args = (data, config, threads, os.getpid(), evaluate or evaluate_candidate,
                      None if isinstance(space, BlockSpace) else space)
        self._workers = [self._start(slot) for slot in range(workers)]

    def _start(self, slot: int) -> _Worker:
        return _Worker(self._context, slot, self._logs.name, self._args)

    def _relay(self, worker: _Worker) -> None:
        import sys

        text = worker.new_stderr()
        if text:
            sys.stderr.write(text)
            sys.stderr.flush()

    def train(self, jobs: Iterable[tuple[int, object, list, int]]) -> Iterator[tuple[int, dict]]:
        """``(index, genome, predicted_blocks, seed)`` jobs; yields ``(index, result)`` as each
        finishes, a crashed worker's candidate included (class doc)."""
        import time
        from collections import deque
        from multiprocessing.connection import wait as wait_for

        queue = deque(jobs)
        while queue or any(w.job is not None for w in self._workers):
            for slot, worker in enumerate(self._workers):
                if worker.job is None and queue:
                    if not worker.process.is_alive():  # died while idle: nothing of a candidate lost
                        self._relay(worker)
                        worker.conn.close()
                        worker = self._workers[slot] = self._start(slot)
                    worker.job, worker.started = queue.popleft(), time.perf_counter()
                    try:
                        worker.conn.send(worker.job)
                    except (BrokenPipeError, OSError):  # it died since: the next wait sees it dead
                        pass
            busy = [w for w in self._workers if w.job is not None]
            wait_for([w.conn for w in busy] + [w.process.sentinel for w in busy])
            for slot, worker in enumerate(self._workers):
                if worker.job is None:
                    continue
                message = None
                try:
                    if worker.conn.poll():
                        message = worker.conn.recv()
                except (EOFError, OSError):
                    message = None
                if message is None and worker.process.is_alive():
                    continue
                index, worker.job = worker.job[0], None
                if message is None:  # died in training: a crashed record, a fresh worker
                    worker.process.join()
                    self._relay(worker)
                    result = crashed_result(worker.process.exitcode, worker.last_words(),
                                            time.perf_counter() - worker.started, self._threads)
                    worker.conn.close()
                    self._workers[slot] = self._start(slot)
                    yield index, result
                    continue
                self._relay(worker)
                status, _, payload = message
                if status == "error":
                    raise payload
                yield index, payload

    def close(self, now: bool = False) -> None:
        """Stop every worker (``now``: at once, their candidates in flight dropped, as on Ctrl-C:
        a resume trains them again) and remove their stderr files."""
        if now:  # all at once, then wait for each
            for worker in self._workers:
                worker.process.kill()
        for worker in self._workers:
            worker.stop(now=now)
        self._logs.cleanup()
