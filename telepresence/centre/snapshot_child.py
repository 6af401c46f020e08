"""A snapshot pickled in a forked child, so that the leader's steps never wait for it.

Pickling the centre at 10,000 waiting takes 150-350 ms of one core (4 MB), during which a
leader that pickled in its own loop applied nothing and sent nothing. ``fork()`` gives the
child the state exactly as it is at that moment (copy-on-write: the parent's later steps
do not reach it), for the cost of copying the page tables (~10-30 ms at a few hundred MB);
the child pickles, writes the bytes to a pipe and exits, while the parent goes on stepping
and reads the pipe from its event loop. Pickling touches every object (their reference
counts), so the child copies most of the pages it shares: ~2.5x the CPU of pickling in
place (0.45 against 0.16 s of CPU at 10,000 waiting). It runs at a lower priority
(``CHILD_NICE``), on CPU the doors and the leader leave idle, and without the garbage
collector (which would walk every object once more). The child touches nothing it shares with the
parent: no event loop, no Redis, no logging; it closes every other descriptor it inherited
(a listening socket held by a child would keep the port of a killed server busy).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import gc
import os
import signal
from collections.abc import Callable

CHUNK = 1 << 20
HEADER = 8  # the child writes the length of its bytes first: a whole snapshot is one that says so
CHILD_NICE = 10  # a snapshot can wait; a socket write cannot


class SnapshotChild:
    """One ``capture()`` run in a forked child; its bytes read without blocking the loop.

    ``ready`` says when the bytes are all in; :meth:`take` returns them (or raises when the
    child failed); :meth:`close` ends the child, whatever its state. Owned by the leader's
    term, which closes it when the term ends.
    """

    def __init__(self, capture: Callable[[], bytes]) -> None:
        self._loop = asyncio.get_running_loop()
        self._chunks: list[bytes] = []
        self._failure: str | None = None
        read_fd, write_fd = os.pipe()
        with contextlib.suppress(OSError):  # fewer, larger reads
            fcntl.fcntl(read_fd, fcntl.F_SETPIPE_SZ, CHUNK)
        try:
            pid = os.fork()
        except OSError:
            os.close(read_fd)
            os.close(write_fd)
            raise
        if pid == 0:  # the child: never returns
            _run_child(capture, write_fd)
        os.close(write_fd)
        self.pid: int | None = pid
        self._fd: int | None = read_fd
        os.set_blocking(read_fd, False)
        self._loop.add_reader(read_fd, self._read)

    @property
    def ready(self) -> bool:
        """The child is done (its bytes all read, or it failed)."""
        return self._fd is None

    def take(self) -> bytes:
        """The child's bytes; raises :class:`RuntimeError` if it did not write a whole snapshot."""
        assert self.ready, "the snapshot child is still running"
        data = b"".join(self._chunks)
        whole = len(data) >= HEADER and int.from_bytes(data[:HEADER]) == len(data) - HEADER
        if self._failure is None and not whole:
            self._failure = "the snapshot child ended before writing a whole snapshot (see the log)"
        if self._failure is not None:
            raise RuntimeError(self._failure)
        return data[HEADER:]

    def close(self) -> None:
        """Stop reading and end the child (killed if it is still running). Safe to call twice."""
        if self._fd is not None:
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = None
            self._failure = self._failure or "closed before the child finished"
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self._reap()

    def _read(self) -> None:
        assert self._fd is not None
        try:
            chunk = os.read(self._fd, CHUNK)
        except BlockingIOError:
            return
        except OSError as exc:
            chunk, self._failure = b"", f"reading the snapshot child failed: {exc}"
        if chunk:
            self._chunks.append(chunk)
            return
        # End of file: the child has written all it will (it exits right after).
        self._loop.remove_reader(self._fd)
        os.close(self._fd)
        self._fd = None
        self._reap()

    def _reap(self) -> None:
        """Wait for the child's exit (it has closed its end of the pipe, or been killed)."""
        if self.pid is not None:
            with contextlib.suppress(ChildProcessError):  # reaped by someone else's waitpid(-1)
                os.waitpid(self.pid, 0)
            self.pid = None


def _run_child(capture: Callable[[], bytes], write_fd: int) -> None:
    """In the forked child: pickle, write, exit, touching nothing shared with the parent."""
    status = 1
    try:
        gc.disable()
        with contextlib.suppress(OSError):
            os.nice(CHILD_NICE)
        with contextlib.suppress(ValueError):  # (a loop outside the main thread: nothing to reset)
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, signal.SIG_DFL)
        os.closerange(3, write_fd)
        os.closerange(write_fd + 1, os.sysconf("SC_OPEN_MAX"))
        data = capture()
        view = memoryview(len(data).to_bytes(HEADER) + data)
        while view:
            view = view[os.write(write_fd, view) :]
        status = 0
    except BaseException as exc:  # said on the server's stderr; the parent says the snapshot failed
        os.write(2, f"snapshot child: {exc!r}\n".encode(errors="replace"))
    finally:
        os._exit(status)
