"""The local sandbox: bubblewrap (`bwrap`), the unprivileged namespace tool Flatpak uses.

Each run gets fresh user, PID, network, IPC, UTS and cgroup namespaces: no network (only a loopback
of its own), the host's system directories read-only, an empty read-only root, a private tmpfs work
dir (`/sandbox`, the program's only writable place besides a private `/tmp`), a non-root uid, and
resource limits set by `prlimit` inside the new user namespace (CPU seconds, writable memory,
address space, processes, file size, open files), and a seccomp filter (sandbox/seccomp.py). The
wall-clock limit kills bwrap's process group;
`--die-with-parent` and the PID namespace take everything inside down with it.

When the server runs as root, bwrap is started as an unprivileged host uid (`host_uid`, default
nobody): a sandboxed process then maps to that uid, not to root, so it cannot read root-only files
and the kernel's process-count limit applies (it does not for uid 0).
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shlex
import shutil
from collections.abc import Sequence

from fimum_ai.chat.sandbox.base import (
    RunResult,
    SandboxLimits,
    SandboxUnavailable,
    UnsupportedLanguage,
    classify,
    exit_status,
    run_process_tree,
)
from fimum_ai.chat.sandbox.languages import (
    SANDBOX_PATH,
    Language,
    LanguageSpec,
    detect_host_languages,
    expand,
)
from fimum_ai.chat.sandbox.seccomp import seccomp_program

WORK_DIR = "/sandbox"
INSIDE_UID = 65534  # "nobody" inside the sandbox
# /etc entries programs need (dynamic linker cache, `alternatives` symlinks, the JVM's config);
# nothing else of the host's /etc (passwords, keys, hosts) is visible.
_ETC = ("/etc/alternatives", "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime")
_ETC_GLOBS = ("/etc/java-*",)
_TOP_DIRS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
_BUILD_LOG_BYTES = 32768


class BubblewrapSandbox:
    name = "bubblewrap"

    def __init__(
        self,
        limits: SandboxLimits,
        *,
        bwrap: str = "bwrap",
        prlimit: str = "/usr/bin/prlimit",
        host_uid: int = 65534,
        allow: Sequence[str] | None = None,
        seccomp: bool = True,
    ) -> None:
        self.limits = limits
        self.bwrap = shutil.which(bwrap) or bwrap
        self.prlimit = prlimit
        self.host_uid = host_uid
        self._allow = list(allow) if allow is not None else None
        self.seccomp = seccomp
        self._languages: dict[str, Language] | None = None

    # --- what exists -------------------------------------------------------------------------

    def available(self) -> tuple[bool, str]:
        if not (os.path.isfile(self.bwrap) and os.access(self.bwrap, os.X_OK)):
            return False, "bubblewrap (bwrap) is not installed: apt-get install bubblewrap"
        if not os.access(self.prlimit, os.X_OK):
            return False, f"{self.prlimit} (util-linux) is missing"
        return True, ""

    def languages(self) -> list[Language]:
        if not self.available()[0]:
            return []
        if self._languages is None:
            self._languages = {lang.id: lang for lang in detect_host_languages(self._allow)}
        return list(self._languages.values())

    def language(self, language_id: str) -> Language:
        ok, why = self.available()
        if not ok:
            raise SandboxUnavailable(why)
        self.languages()
        assert self._languages is not None
        found = self._languages.get(language_id)
        if found is None:
            raise UnsupportedLanguage(
                f"language {language_id!r} is not available in this sandbox",
                details={"language": language_id, "available": sorted(self._languages)},
            )
        return found

    # --- running -----------------------------------------------------------------------------

    def _prlimit(self, *, cpu_s: int, memory: int, address_space: int) -> list[str]:
        lim = self.limits
        # CPU: SIGXCPU at the soft limit, SIGKILL one second later at the hard limit.
        return [
            self.prlimit,
            f"--cpu={cpu_s}:{cpu_s + 1}",
            f"--data={memory}",
            f"--as={address_space}",
            f"--nproc={lim.max_processes}",
            f"--fsize={lim.max_file_bytes}",
            f"--nofile={lim.max_open_files}",
            "--core=0",
            "--",
        ]

    def _address_space(self, spec: LanguageSpec) -> int:
        lim = self.limits
        return lim.big_address_space_bytes if spec.big_address_space else lim.address_space_bytes

    def command(
        self,
        spec: LanguageSpec,
        source_fd: int,
        json_status_fd: int,
        status_fd: int | None,
        seccomp_fd: int | None = None,
    ) -> list[str]:
        """The full bwrap command line for one run (public so tests can check what is asked for).
        bwrap reports the sandbox's start and exit code on `json_status_fd`; a compiled language's
        build result goes to `status_fd`."""
        lim = self.limits
        argv = [
            self.bwrap,
            "--json-status-fd",
            str(json_status_fd),
            "--die-with-parent",
            "--new-session",
            "--unshare-all",  # user, pid, net, ipc, uts, cgroup: no network at all
            "--unshare-user",
            "--disable-userns",
            "--uid",
            str(INSIDE_UID),
            "--gid",
            str(INSIDE_UID),
            "--hostname",
            "sandbox",
            "--clearenv",
            "--setenv",
            "PATH",
            SANDBOX_PATH,
            "--setenv",
            "HOME",
            WORK_DIR,
            "--setenv",
            "TMPDIR",
            "/tmp",
            "--setenv",
            "LANG",
            "C.UTF-8",
        ]
        for key, value in spec.env:
            argv += ["--setenv", key, value]
        argv += ["--ro-bind", "/usr", "/usr"]
        for top in _TOP_DIRS:
            path = "/" + top
            if os.path.islink(path):
                argv += ["--symlink", os.readlink(path), path]
            elif os.path.isdir(path):
                argv += ["--ro-bind", path, path]
        etc = [*_ETC, *(p for pattern in _ETC_GLOBS for p in sorted(glob.glob(pattern)))]
        for path in etc:
            argv += ["--ro-bind-try", path, path]
        argv += [
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--size",
            str(lim.work_dir_bytes),
            "--tmpfs",
            "/tmp",
            "--size",
            str(lim.work_dir_bytes),
            "--tmpfs",
            WORK_DIR,
            "--file",
            str(source_fd),
            f"{WORK_DIR}/{spec.source}",
            "--remount-ro",
            "/",
            "--remount-ro",  # bwrap's private /dev: device nodes work, no new files
            "/dev",
            "--chdir",
            WORK_DIR,
            *(["--seccomp", str(seccomp_fd)] if seccomp_fd is not None else []),
            "--",
        ]
        run = self._prlimit(cpu_s=lim.cpu_s, memory=lim.memory_bytes, address_space=self._address_space(spec))
        if spec.build is None:
            return argv + run + expand(spec.run, lim.memory_bytes)
        assert status_fd is not None
        build = self._prlimit(
            cpu_s=lim.build_cpu_s,
            memory=max(lim.build_memory_bytes, lim.memory_bytes),
            address_space=max(self._address_space(spec), 2 * lim.build_memory_bytes),
        )
        # The build's result and messages go to the status pipe (fd `status_fd`), which is closed
        # before the program starts, so a program cannot fake a build result.
        script = (
            f"{shlex.join(build + expand(spec.build, lim.build_memory_bytes))} >/tmp/.build.log 2>&1; rc=$?; "
            f'echo "build-exit $rc" >&{status_fd}; '
            f"head -c {_BUILD_LOG_BYTES} /tmp/.build.log >&{status_fd}; "
            f"exec {status_fd}>&-; "
            '[ "$rc" -eq 0 ] || exit 1; '
            f"exec {shlex.join(run + expand(spec.run, lim.memory_bytes))}"
        )
        return [*argv, "/bin/bash", "-c", script]  # dash cannot redirect fds above 9

    async def run(
        self, language: str, code: str, *, stdin: str = "", timeout_s: float | None = None
    ) -> RunResult:
        spec = self.language(language).spec
        source_fd = os.memfd_create("fimum-sandbox-source")
        json_read, json_write = os.pipe()
        status_read: int | None = None
        status_write: int | None = None
        program = seccomp_program() if self.seccomp else None
        seccomp_fd = os.memfd_create("fimum-sandbox-seccomp") if program is not None else None
        try:
            os.write(source_fd, code.encode())
            os.lseek(source_fd, 0, os.SEEK_SET)
            fds = [source_fd, json_write]
            if seccomp_fd is not None and program is not None:
                os.write(seccomp_fd, program)
                os.lseek(seccomp_fd, 0, os.SEEK_SET)
                fds.append(seccomp_fd)
            reads = [json_read]
            if spec.build is not None:
                status_read, status_write = os.pipe()
                fds.append(status_write)
                reads.append(status_read)
            as_root = os.geteuid() == 0
            outcome = await run_process_tree(
                self.command(spec, source_fd, json_write, status_write, seccomp_fd),
                stdin=stdin.encode(),
                timeout_s=timeout_s or self.limits.timeout_s,
                max_output_bytes=self.limits.max_output_bytes,
                env={"PATH": SANDBOX_PATH},
                pass_fds=fds,
                status_fds=reads,
                user=self.host_uid if as_root else None,
                group=self.host_uid if as_root else None,
            )
        finally:
            for fd in (source_fd, json_read, json_write, status_read, status_write, seccomp_fd):
                if fd is not None:
                    with contextlib.suppress(OSError):
                        os.close(fd)
        started, returncode = _json_status(outcome.side_channels[0])
        if not started and not outcome.timed_out:
            # bwrap itself failed (no user namespaces, a bad mount): not the program's fault.
            raise SandboxUnavailable(
                "the sandbox could not start: " + (outcome.stderr.strip()[:500] or "bwrap failed"),
                details={"backend": self.name},
            )
        build_failed, build_output = (
            _build_report(outcome.side_channels[1]) if len(outcome.side_channels) > 1 else (False, "")
        )
        exit_code, signal_name = exit_status(outcome.returncode if returncode is None else returncode)
        if exit_code is not None and outcome.returncode == 1 and build_failed:
            exit_code = None
        return RunResult(
            language=spec.id,
            status=classify(outcome, exit_code, signal_name, build_failed),
            exit_code=exit_code,
            signal=signal_name,
            stdout=outcome.stdout,
            stderr=outcome.stderr,
            truncated=outcome.truncated,
            duration_s=outcome.duration_s,
            backend=self.name,
            build_output=build_output,
        )


def _json_status(data: bytes) -> tuple[bool, int | None]:
    """(the sandbox started, the exit status bwrap reported) from --json-status-fd's documents."""
    started, code = False, None
    for line in data.decode("utf-8", errors="replace").splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict):
            started = started or "child-pid" in doc
            if isinstance(doc.get("exit-code"), int):
                code = doc["exit-code"]
    return started, code


def _build_report(side: bytes) -> tuple[bool, str]:
    """(the build failed, its messages) from the status pipe; no report means no build step."""
    if not side.startswith(b"build-exit "):
        return False, ""
    first, _, rest = side.partition(b"\n")
    try:
        code = int(first.split()[1])
    except (IndexError, ValueError):
        code = 1
    return code != 0, rest.decode("utf-8", errors="replace")
