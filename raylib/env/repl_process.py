"""One REPL process: spawn, send a JSON request, read the answer with a deadline, kill its process group.

The Lean REPL (leanprover-community/repl) reads JSON requests separated by blank lines and answers each
with a JSON object (pretty-printed over several lines) followed by a blank line. It has no timeout and
grows in memory, so this class caps its address space (RLIMIT_AS, set by ``/bin/sh`` before it execs the
REPL, so it holds from the first instruction), runs it in its own process group,
and kills the whole group on a timeout, a malformed answer, or when asked to.
"""

from __future__ import annotations

import json
import logging
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from typing import Sequence

log = logging.getLogger(__name__)
SHELL = "/bin/sh"


class ReplFailure(RuntimeError):
    """The process could not answer; it has been killed. ``kind`` is timeout, crash or protocol."""

    kind = "failure"


class ReplTimeout(ReplFailure):
    kind = "timeout"


class ReplCrash(ReplFailure):
    kind = "crash"


class ReplProtocolError(ReplFailure):
    kind = "protocol"


class ReplProcess:
    def __init__(self, command: Sequence[str], cwd: str | None = None, memory_limit_bytes: int | None = None,
                 env: dict[str, str] | None = None):
        if not command:
            raise ValueError("empty REPL command: set env.lean_repl.command, e.g. ['lake', 'exe', 'repl']")
        self.command = list(command)
        self.cwd = cwd
        self.memory_limit_bytes = memory_limit_bytes
        self.env = env
        self.proc: subprocess.Popen | None = None
        self._stderr = None
        self._buf = bytearray()
        self.requests = 0

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        self.kill()
        self._stderr = tempfile.TemporaryFile()
        try:
            self._check_program()
            self.proc = subprocess.Popen(
                self._capped_command(), cwd=self.cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=self._stderr, start_new_session=True, env=self.env)
        except FileNotFoundError as e:
            raise ReplCrash(f"cannot start REPL {self.command!r} (cwd={self.cwd!r}): {e.strerror}: "
                            f"{e.filename}; check env.lean_repl.command and cwd") from None
        self._buf.clear()
        self.requests = 0
        log.debug("started REPL pid %d: %s", self.proc.pid, " ".join(self.command))

    def _capped_command(self) -> list[str]:
        """The command run under the address-space cap from its first instruction.

        ``/bin/sh`` sets RLIMIT_AS (``ulimit -v``, in KiB) and then execs the REPL in the same process, so
        the cap is in place before the REPL's first instruction. (A ``preexec_fn`` would do the same but
        runs Python between fork and exec, which can deadlock in a threaded Ray actor; ``prlimit`` after
        the start leaves a window in which the REPL runs uncapped.)
        """
        if not self.memory_limit_bytes:
            return self.command
        kib = max(1, self.memory_limit_bytes // 1024)
        return [SHELL, "-c", f'ulimit -v {kib} && exec "$@"', "repl-capped", *self.command]

    def _check_program(self) -> None:
        prog = self.command[0]
        if os.sep in prog:
            found = os.path.exists(os.path.join(self.cwd or ".", prog))
        else:
            found = shutil.which(prog, path=(self.env or os.environ).get("PATH")) is not None
        if not found:
            raise FileNotFoundError(2, "No such file or directory", prog)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        for stream in (proc.stdin, proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover
            log.error("REPL pid %d did not die after SIGKILL", proc.pid)
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def stderr_tail(self, limit: int = 2000) -> str:
        if self._stderr is None:
            return ""
        try:
            self._stderr.seek(0, os.SEEK_END)
            size = self._stderr.tell()
            self._stderr.seek(max(0, size - limit))
            return self._stderr.read().decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            return ""

    # -- one request -----------------------------------------------------------------------------
    def request(self, payload: dict, timeout: float) -> dict:
        """Send one request and return the parsed answer; on any failure the process is killed."""
        if not self.alive:
            raise ReplCrash(self._death_note("before the request"))
        data = (json.dumps(payload, ensure_ascii=False) + "\n\n").encode("utf-8")
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise self._fail(ReplCrash, self._death_note("while sending")) from None
        self.requests += 1
        raw = self._read_answer(time.monotonic() + timeout, timeout)
        try:
            answer = json.loads(raw)
        except json.JSONDecodeError as e:
            raise self._fail(ReplProtocolError, f"malformed JSON from the REPL ({e.msg}): {raw[:300]!r}") from None
        if not isinstance(answer, dict):
            raise self._fail(ReplProtocolError, f"the REPL answered a non-object: {raw[:300]!r}")
        return answer

    def _read_answer(self, deadline: float, timeout: float) -> str:
        fd = self.proc.stdout.fileno()
        while True:
            chunk = self._take_answer()
            if chunk is not None:
                return chunk
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._fail(ReplTimeout, f"no answer within {timeout:g} s; REPL process killed")
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            data = os.read(fd, 1 << 16)
            if not data:
                partial = bytes(self._buf).decode("utf-8", "replace").strip()
                note = self._death_note("while answering")
                if partial:
                    note += f"; partial answer: {partial[:300]!r}"
                raise self._fail(ReplCrash, note)
            self._buf.extend(data)

    def _take_answer(self) -> str | None:
        # Skip blank lines between answers, then take everything up to the next blank line.
        while self._buf[:1] in (b"\n", b"\r"):
            del self._buf[:1]
        end = self._buf.find(b"\n\n")
        if end < 0:
            end_crlf = self._buf.find(b"\r\n\r\n")
            if end_crlf < 0:
                return None
            end, sep = end_crlf, 4
        else:
            sep = 2
        chunk = bytes(self._buf[:end]).decode("utf-8", "replace")
        del self._buf[:end + sep]
        return chunk

    def _death_note(self, when: str) -> str:
        code = self.proc.poll() if self.proc else None
        if code is None and self.proc is not None:
            try:
                code = self.proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                code = None
        how = ("exit code %s" % code) if code is None or code >= 0 else f"killed by signal {-code}"
        tail = self.stderr_tail()
        return f"REPL process died {when} ({how})" + (f"; stderr: {tail[-800:]}" if tail else "")

    def _fail(self, cls: type[ReplFailure], message: str) -> ReplFailure:
        log.warning("%s", message)
        self.kill()
        return cls(message)
