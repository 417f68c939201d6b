"""The sandbox interface both backends implement, its results and errors, and the part they share:
run one process tree, capture its output up to a size, and kill the whole tree at a deadline."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from fimum_ai.chat.sandbox.languages import Language
from fimum_ai.errors import FimumError, InvalidInput

RunStatus = Literal[
    "ok",  # exit code 0
    "error",  # the program exited with another code
    "compile_error",  # the build step failed (C, C++, Java, Rust)
    "timeout",  # the wall-clock limit: the whole process tree was killed
    "killed",  # a resource limit ended it (CPU time: SIGXCPU/SIGKILL; memory: often SIGSEGV/SIGABRT)
    "output_limit",  # more output than allowed: cut and the process tree killed
]


class SandboxUnavailable(FimumError):
    """The configured backend cannot run anything here (no bwrap, no Docker engine)."""

    code = "sandbox_unavailable"
    status = 503


class UnsupportedLanguage(InvalidInput):
    code = "unsupported_language"


@dataclass(frozen=True, slots=True)
class SandboxLimits:
    timeout_s: float  # wall clock, build + run
    cpu_s: int  # CPU seconds of the program (RLIMIT_CPU)
    memory_bytes: int  # writable memory per process (RLIMIT_DATA; Docker: --memory for the container)
    address_space_bytes: int  # RLIMIT_AS for most languages
    big_address_space_bytes: int  # RLIMIT_AS for V8 / JVM, which reserve large ranges up front
    max_processes: int  # processes and threads (RLIMIT_NPROC inside the sandbox's user namespace)
    max_output_bytes: int  # stdout + stderr together
    max_file_bytes: int  # any one file written (RLIMIT_FSIZE)
    work_dir_bytes: int  # size of the private tmpfs work dir (and of /tmp)
    max_open_files: int = 256
    build_cpu_s: int = 30
    build_memory_bytes: int = 1 << 30


@dataclass(frozen=True, slots=True)
class RunResult:
    language: str
    status: RunStatus
    exit_code: int | None  # None when killed by the sandbox before it exited
    signal: str | None  # e.g. "SIGKILL" when the program died of a signal
    stdout: str
    stderr: str
    truncated: bool  # the output was cut at the limit
    duration_s: float
    backend: str
    build_output: str = ""  # the compiler's messages (compiled languages)

    def to_dict(self) -> dict[str, Any]:
        return {
            "language": self.language,
            "status": self.status,
            "exit_code": self.exit_code,
            "signal": self.signal,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "truncated": self.truncated,
            "duration_s": round(self.duration_s, 3),
            "backend": self.backend,
            "build_output": self.build_output,
        }


class Sandbox(Protocol):
    """Runs untrusted code. Implementations: BubblewrapSandbox (local), DockerSandbox (production)."""

    name: str
    limits: SandboxLimits

    def languages(self) -> list[Language]: ...

    def available(self) -> tuple[bool, str]:
        """(usable, why not)."""
        ...

    async def run(
        self, language: str, code: str, *, stdin: str = "", timeout_s: float | None = None
    ) -> RunResult: ...


# --- One process tree, its output and its deadline ------------------------------------------------


@dataclass(slots=True)
class _Capture:
    limit: int
    on_overflow: Callable[[], None]
    total: int = 0
    truncated: bool = False
    chunks: dict[str, list[bytes]] = field(default_factory=lambda: {"stdout": [], "stderr": []})

    def add(self, stream: str, data: bytes) -> None:
        room = self.limit - self.total
        if len(data) > room:
            data = data[: max(room, 0)]
            if not self.truncated:
                self.truncated = True
                self.on_overflow()
        self.total += len(data)
        if data:
            self.chunks[stream].append(data)

    def text(self, stream: str) -> str:
        return b"".join(self.chunks[stream]).decode("utf-8", errors="replace")


@dataclass(frozen=True, slots=True)
class ProcessOutcome:
    returncode: int | None
    stdout: str
    stderr: str
    truncated: bool
    timed_out: bool
    duration_s: float
    side_channels: tuple[bytes, ...]  # what the sandbox wrote on each status pipe


async def run_process_tree(
    argv: Sequence[str],
    *,
    stdin: bytes,
    timeout_s: float,
    max_output_bytes: int,
    env: dict[str, str] | None = None,
    pass_fds: Sequence[int] = (),
    status_fds: Sequence[int] = (),
    kill_extra: Callable[[], None] | None = None,
    user: int | None = None,
    group: int | None = None,
) -> ProcessOutcome:
    """Start argv in a new session (its own process group), feed stdin, read stdout/stderr up to
    `max_output_bytes` together; at the deadline or on overflow kill the whole group (and call
    `kill_extra`, e.g. `docker kill`). `status_fds` are read ends of pipes the sandbox may write
    small reports to; what they hold is returned in the same order.
    """
    started = time.monotonic()
    extra: dict[str, Any] = {}
    if user is not None:
        extra.update(user=user, group=group, extra_groups=[])
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
        pass_fds=tuple(pass_fds),
        env=env,
        cwd="/",
        **extra,
    )
    killed = False

    def kill() -> None:
        nonlocal killed
        if killed:
            return
        killed = True
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        if kill_extra is not None:
            kill_extra()

    capture = _Capture(max_output_bytes, kill)

    async def pump(stream: asyncio.StreamReader | None, name: str) -> None:
        if stream is None:
            return
        while chunk := await stream.read(65536):
            capture.add(name, chunk)

    async def feed() -> None:
        if process.stdin is None:
            return
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            if stdin:
                process.stdin.write(stdin)
                await process.stdin.drain()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            process.stdin.close()

    timed_out = False
    work = asyncio.gather(
        pump(process.stdout, "stdout"), pump(process.stderr, "stderr"), feed(), process.wait()
    )
    try:
        await asyncio.wait_for(asyncio.shield(work), timeout_s)
    except TimeoutError:
        timed_out = True
        kill()
        try:
            await asyncio.wait_for(asyncio.shield(work), 10)
        except TimeoutError:  # something outside the group still holds the pipes: stop reading
            work.cancel()
    except BaseException:  # cancelled (the client went away) or failed: nothing may outlive us
        kill()
        work.cancel()
        raise
    finally:
        if process.returncode is None:
            kill()
    side = tuple(_drain(fd) for fd in status_fds)
    return ProcessOutcome(
        returncode=None if timed_out else process.returncode,
        stdout=capture.text("stdout"),
        stderr=capture.text("stderr"),
        truncated=capture.truncated,
        timed_out=timed_out,
        duration_s=time.monotonic() - started,
        side_channels=side,
    )


def _drain(fd: int) -> bytes:
    """What is left in a pipe whose writers are gone (the sandbox has ended)."""
    os.set_blocking(fd, False)
    data = bytearray()
    with contextlib.suppress(BlockingIOError):
        while chunk := os.read(fd, 4096):
            data.extend(chunk)
    return bytes(data)


def exit_status(returncode: int | None) -> tuple[int | None, str | None]:
    """(exit code, signal name) from a wrapper's exit status, which reports death by signal N as
    128 + N (bwrap, docker, a shell)."""
    if returncode is None:
        return None, None
    if returncode < 0:
        return None, signal.Signals(-returncode).name
    if 128 < returncode < 128 + 65:
        with contextlib.suppress(ValueError):
            return None, signal.Signals(returncode - 128).name
    return returncode, None


def classify(
    outcome: ProcessOutcome, exit_code: int | None, signal_name: str | None, build_failed: bool
) -> RunStatus:
    if outcome.truncated:
        return "output_limit"
    if outcome.timed_out:
        return "timeout"
    if build_failed:
        return "compile_error"
    if signal_name is not None:
        return "killed"
    return "ok" if exit_code == 0 else "error"
