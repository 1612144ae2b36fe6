"""The readers that can spin (PDF, HTML), run in a child process under a time and memory budget.

pypdf and trafilatura are pure parsers of untrusted bytes: a 70 KB PDF whose pages share one
huge content stream, or a 50 MB HTML page, can keep them busy for minutes and use gigabytes.
They cannot be interrupted from inside (lxml parses in C), so they run in a child process
(``python -m index.readers.process``) whose address space is capped and which is killed when a
file takes longer than the limit; the next file gets a fresh child. The file is then skipped with
a reason naming the limit (:mod:`index.limits`).

Protocol (the child's stdin and stdout, nothing pickled): a request is one JSON line
``{"format", "size", "max_chars", "seconds", "memory_mb"}`` followed by ``size`` bytes; the
answer is one JSON line, ``{"parsed": {…}}`` or ``{"skip": "reason"}``.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path

from index.readers.base import Parsed, SkipDocument
from index.limits import Limits, over

#: Formats read in the child process.
FORMATS = ("pdf", "html")
#: Seconds a new child may take to import its readers (not counted in any file's reading time).
START_SECONDS = 120


class ReaderProcess:
    """One child process, started on first use and restarted after it is killed. Thread-safe:
    requests are served one at a time."""

    def __init__(self):
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def read(self, fmt: str, data: bytes, limits: Limits) -> Parsed:
        """What the ``fmt`` reader finds in ``data``, or SkipDocument with the reason (also when
        it runs past ``limits.read_seconds`` or ``limits.read_memory_mb``)."""
        with self._lock:
            try:
                proc = self._start()
            except OSError:  # no way to start a child (a frozen interpreter…): read here, unguarded
                return read_here(fmt, data, limits.max_chars, None)
            header = {"format": fmt, "size": len(data), "max_chars": limits.max_chars,
                      "seconds": limits.read_seconds, "memory_mb": limits.read_memory_mb}
            try:
                proc.stdin.write(json.dumps(header).encode() + b"\n")
                proc.stdin.write(data)
                proc.stdin.flush()
            except OSError:
                self._died(limits)
            line = self._answer(proc, time.monotonic() + limits.read_seconds, limits)
            try:
                answer = json.loads(line)
            except ValueError:
                self.close()
                raise SkipDocument("the reader process gave an unreadable answer") from None
            if answer.get("exit"):  # the child ends after this answer: the next file gets a new one
                self.close()
        if "skip" in answer:
            raise SkipDocument(str(answer["skip"]))
        return Parsed(**answer["parsed"])

    def _start(self) -> subprocess.Popen:
        if self._proc is None or self._proc.poll() is not None:
            root = str(Path(__file__).resolve().parents[2])
            env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
                       # One thread each: the numeric libraries imported with the package reserve
                       # address space per thread, which the reader's cap must not be spent on.
                       OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
            self._proc = subprocess.Popen([sys.executable, "-m", "index.readers.process"], stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0, env=env,
                                          close_fds=True)
            # It says when its readers are imported: the reading time of a file starts after that.
            try:
                ready = self._answer(self._proc, time.monotonic() + START_SECONDS, None)
            except SkipDocument:
                ready = b""
            if ready.strip() != b'{"ready": true}':
                self.close()
                raise OSError("the reader process did not start")
        return self._proc

    def _answer(self, proc: subprocess.Popen, deadline: float, limits: Limits | None) -> bytes:
        fd, buf = proc.stdout.fileno(), bytearray()
        while not buf.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                self.close()
                raise SkipDocument(over("read_seconds", limits) if limits else "the reader process did not answer")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    self._died(limits)
                buf += chunk
        return bytes(buf)

    def _died(self, limits: Limits | None):
        proc, self._proc = self._proc, None
        code = proc.wait() if proc is not None else None
        if code is not None and code < 0:
            raise SkipDocument(f"the reader process was killed by signal {-code} while reading this file "
                               f"(a damaged file? {over('read_memory_mb', limits or Limits())})")
        raise SkipDocument(f"the reader process ended while reading this file (exit status {code})")

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc is not None:
            for pipe in (proc.stdin, proc.stdout):
                try:
                    pipe.close()
                except OSError:
                    pass


_shared: ReaderProcess | None = None
_shared_lock = threading.Lock()


def shared() -> ReaderProcess:
    """The process-wide reader process (ended when Python exits)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = ReaderProcess()
            atexit.register(_shared.close)
        return _shared


def read_here(fmt: str, data: bytes, max_chars: int, deadline: float | None) -> Parsed:
    """Run the ``fmt`` reader in this process (what the child does)."""
    if fmt == "pdf":
        from index.readers.pdf import read_pdf

        return read_pdf(data, max_chars=max_chars, deadline=deadline)
    from index.readers.html import read_html

    return read_html(data, max_chars=max_chars)


def serve() -> None:
    """The child's loop: one request at a time until stdin closes."""
    import resource

    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a library that prints must not write into the answers
    import pypdf  # noqa: F401  (imported now: a file's reading time is its own)
    import trafilatura  # noqa: F401

    out.write(b'{"ready": true}\n')
    out.flush()
    source = sys.stdin.buffer
    while True:
        line = source.readline()
        if not line:
            return
        request = json.loads(line)
        data = source.read(int(request["size"]))
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        cap = int(request["memory_mb"]) * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (cap if hard == resource.RLIM_INFINITY else min(cap, hard), hard))
        # CPU time too, in case the parent died and is not there to stop a file that spins.
        usage = resource.getrusage(resource.RUSAGE_SELF)
        _, hard = resource.getrlimit(resource.RLIMIT_CPU)
        cpu = int(usage.ru_utime + usage.ru_stime + 2 * float(request["seconds"]) + 10)
        resource.setrlimit(resource.RLIMIT_CPU, (cpu if hard == resource.RLIM_INFINITY else min(cpu, hard), hard))
        limits = Limits(max_chars=int(request["max_chars"]), read_seconds=float(request["seconds"]),
                        read_memory_mb=int(request["memory_mb"]))
        fatal = False
        try:
            parsed = read_here(request["format"], data, limits.max_chars, time.monotonic() + limits.read_seconds)
            answer = {"parsed": asdict(parsed)}
        except SkipDocument as skip:
            answer = {"skip": str(skip)}
        except MemoryError:
            answer, fatal = {"skip": over("read_memory_mb", limits), "exit": True}, True
        except RecursionError:
            answer = {"skip": "the file is nested too deeply to read"}
        del data
        out.write(json.dumps(answer).encode() + b"\n")
        out.flush()
        if fatal:  # memory may be fragmented past use: the next file gets a fresh process
            return


if __name__ == "__main__":
    serve()
