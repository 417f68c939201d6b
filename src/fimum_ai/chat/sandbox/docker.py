"""The production sandbox: one throw-away Docker container per run.

`docker run --rm --network none --read-only --memory --memory-swap --pids-limit --cpus
--user 65534:65534 --cap-drop ALL --security-opt no-new-privileges`, a size-limited tmpfs work dir and
/tmp, ulimits for CPU seconds, file size and open files. The program's source travels base64-encoded
in an environment variable (never on a command line other users could read), so the program's
stdin stays the caller's. At the wall-clock limit the client is killed and `docker kill` stops the
container. The image must carry the runtimes of `languages` (see infra/docker/sandbox.Dockerfile).
"""

from __future__ import annotations

import base64
import os
import shlex
import shutil
import subprocess
import time
import uuid
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
from fimum_ai.chat.sandbox.languages import BY_ID, Language, LanguageSpec, expand
from fimum_ai.errors import InvalidInput

WORK_DIR = "/sandbox"
SOURCE_ENV = "FIMUM_SOURCE_B64"
# `docker run`'s own failures (no such image, engine refused) exit with these, not the program.
_DOCKER_FAILURES = {125, 126, 127}
_RECHECK_S = 5.0
_MAX_ENV_VALUE = 128 * 1024 - len(SOURCE_ENV) - 2  # execve's MAX_ARG_STRLEN, for "NAME=value\0"
_MARK = "fimum-build"
_START, _END = f"\x1e{_MARK} ", f"\n\x1e{_MARK}-end\n"


class DockerSandbox:
    name = "docker"

    def __init__(
        self,
        limits: SandboxLimits,
        *,
        image: str,
        languages: Sequence[str],
        docker: str = "docker",
        cpus: float = 1.0,
    ) -> None:
        self.limits = limits
        self.image = image
        self.docker = shutil.which(docker) or docker
        self.cpus = cpus
        self._languages = [BY_ID[name] for name in languages if name in BY_ID]
        self._checked: tuple[float, tuple[bool, str]] | None = None

    def available(self) -> tuple[bool, str]:
        """Asks the engine (`docker version`) at most every few seconds: every run checks."""
        now = time.monotonic()
        if self._checked is None or now - self._checked[0] > _RECHECK_S:
            self._checked = (now, self._ask_engine())
        return self._checked[1]

    def _ask_engine(self) -> tuple[bool, str]:
        if not (os.path.isfile(self.docker) and os.access(self.docker, os.X_OK)):
            return False, "docker engine unavailable: the docker client is not installed"
        try:
            done = subprocess.run(
                [self.docker, "version", "--format", "{{.Server.Version}}"],
                capture_output=True,
                text=True,
                timeout=10,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            return False, f"docker engine unavailable: {exc}"
        if done.returncode != 0 or not done.stdout.strip():
            reason = (done.stderr.strip().splitlines() or ["no answer"])[-1]
            return False, f"docker engine unavailable: {reason}"
        return True, ""

    def languages(self) -> list[Language]:
        # The image's runtimes are configuration; their versions are the image's business.
        return [Language(spec, f"from image {self.image}") for spec in self._languages]

    def _spec(self, language_id: str) -> LanguageSpec:
        for spec in self._languages:
            if spec.id == language_id:
                return spec
        raise UnsupportedLanguage(
            f"language {language_id!r} is not available in this sandbox",
            details={"language": language_id, "available": [s.id for s in self._languages]},
        )

    def script(self, spec: LanguageSpec) -> str:
        """The POSIX shell the container runs: decode the source, build (its messages to stderr
        between two marker lines), then exec the program."""
        lim = self.limits
        decode = f'printf %s "${SOURCE_ENV}" | base64 -d > {shlex.quote(spec.source)} && unset {SOURCE_ENV}'
        run = shlex.join(expand(spec.run, lim.memory_bytes))
        if spec.build is None:
            return f"{decode} && exec {run}"
        build = shlex.join(expand(spec.build, lim.build_memory_bytes))
        return (
            f"{decode} && {{ {build} >/tmp/.build.log 2>&1; rc=$?; "
            f"printf '\\036{_MARK} %s\\n' \"$rc\" >&2; head -c 32768 /tmp/.build.log >&2; "
            f"printf '\\n\\036{_MARK}-end\\n' >&2; "
            f'[ "$rc" -eq 0 ] || exit 1; }} && exec {run}'
        )

    def command(self, spec: LanguageSpec, container: str) -> list[str]:
        lim = self.limits
        tmpfs = f"rw,exec,nosuid,nodev,size={lim.work_dir_bytes},uid=65534,gid=65534,mode=0700"
        env = [
            "-e",
            SOURCE_ENV,  # value from the client's environment, not the command line
            "-e",
            "HOME=" + WORK_DIR,
            "-e",
            "LANG=C.UTF-8",
            *(item for key, value in spec.env for item in ("-e", f"{key}={value}")),
        ]
        return [
            self.docker,
            "run",
            "--rm",
            "-i",
            "--name",
            container,
            "--network",
            "none",
            "--read-only",
            "--memory",
            str(max(lim.memory_bytes, lim.build_memory_bytes if spec.build else 0)),
            "--memory-swap",
            str(max(lim.memory_bytes, lim.build_memory_bytes if spec.build else 0)),
            "--pids-limit",
            str(lim.max_processes),
            "--cpus",
            str(self.cpus),
            "--user",
            "65534:65534",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
            "--ulimit",
            f"cpu={lim.cpu_s}:{lim.cpu_s + 1}",
            "--ulimit",
            f"fsize={lim.max_file_bytes}",
            "--ulimit",
            f"nofile={lim.max_open_files}",
            "--ulimit",
            "core=0",
            "--tmpfs",
            f"{WORK_DIR}:{tmpfs}",
            "--tmpfs",
            f"/tmp:{tmpfs}",
            "--workdir",
            WORK_DIR,
            *env,
            "--entrypoint",
            "/bin/sh",
            self.image,
            "-c",
            self.script(spec),
        ]

    async def run(
        self, language: str, code: str, *, stdin: str = "", timeout_s: float | None = None
    ) -> RunResult:
        spec = self._spec(language)
        encoded = base64.b64encode(code.encode()).decode()
        if len(encoded) > _MAX_ENV_VALUE:
            # One environment string reaches the program through execve, which caps it at 128 KiB.
            limit = _MAX_ENV_VALUE * 3 // 4
            raise InvalidInput(
                f"code: the Docker sandbox takes at most {limit} bytes of source",
                details={"field": "code", "limit": limit},
            )
        ok, why = self.available()
        if not ok:
            raise SandboxUnavailable(why, details={"backend": self.name})
        container = f"fimum-sandbox-{uuid.uuid4().hex[:16]}"

        def kill_container() -> None:
            subprocess.Popen(
                [self.docker, "kill", container], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )

        outcome = await run_process_tree(
            self.command(spec, container),
            stdin=stdin.encode(),
            timeout_s=timeout_s or self.limits.timeout_s,
            max_output_bytes=self.limits.max_output_bytes,
            env={**os.environ, SOURCE_ENV: encoded},
            kill_extra=kill_container,
        )
        if outcome.returncode in _DOCKER_FAILURES and _START not in outcome.stderr:
            raise SandboxUnavailable(
                "docker could not start the sandbox: " + outcome.stderr.strip()[:500],
                details={"backend": self.name, "image": self.image},
            )
        stderr, build_failed, build_output = _split_build(outcome.stderr)
        exit_code, signal_name = exit_status(outcome.returncode)
        return RunResult(
            language=spec.id,
            status=classify(outcome, exit_code, signal_name, build_failed),
            exit_code=None if build_failed else exit_code,
            signal=signal_name,
            stdout=outcome.stdout,
            stderr=stderr,
            truncated=outcome.truncated,
            duration_s=outcome.duration_s,
            backend=self.name,
            build_output=build_output,
        )


def _split_build(stderr: str) -> tuple[str, bool, str]:
    """(program stderr, build failed, build messages): the build's report sits between markers."""
    start = stderr.find(_START)
    if start < 0:
        return stderr, False, ""
    status, _, rest = stderr[start + len(_START) :].partition("\n")
    log, _, after = rest.partition(_END)
    return stderr[:start] + after, status.strip() != "0", log
