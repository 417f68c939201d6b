"""The Docker sandbox backend. No Docker engine runs on these machines, so: the command it builds
carries every isolation flag, the script it runs inside the container works (run here by the same
POSIX shell), and without an engine it says so clearly, through the API too."""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fimum_ai.app import create_app
from fimum_ai.chat.sandbox import DockerSandbox, SandboxService, SandboxUnavailable, limits_from
from fimum_ai.chat.sandbox.docker import SOURCE_ENV, _split_build
from fimum_ai.chat.sandbox.languages import BY_ID
from fimum_ai.settings import SandboxConfig, load_settings
from tests.conftest import auth_headers


def sandbox(docker: str = "docker") -> DockerSandbox:
    config = SandboxConfig(backend="docker", memory_bytes=128 << 20, max_processes=50, cpu_s=5)
    return DockerSandbox(
        limits_from(config), image="fimum/sandbox:test", languages=["python", "c", "bash"], docker=docker
    )


def test_the_container_is_locked_down() -> None:
    argv = sandbox().command(BY_ID["python"], "fimum-sandbox-x")
    joined = " ".join(argv)
    assert argv[1:4] == ["run", "--rm", "-i"]
    for pair in (
        ("--network", "none"),
        ("--pids-limit", "50"),
        ("--user", "65534:65534"),
        ("--cap-drop", "ALL"),
        ("--security-opt", "no-new-privileges"),
        ("--memory", str(128 << 20)),
        ("--memory-swap", str(128 << 20)),  # no swap on top of the memory limit
        ("--name", "fimum-sandbox-x"),
    ):
        index = argv.index(pair[0])
        assert argv[index + 1] == pair[1], pair
    assert "--read-only" in argv
    assert "cpu=5:6" in argv and "core=0" in argv
    assert any(a.startswith("/sandbox:") and "size=" in a for a in argv)
    # The source comes from the client's environment, never from the command line.
    assert argv[argv.index(SOURCE_ENV) - 1 : argv.index(SOURCE_ENV) + 1] == ["-e", SOURCE_ENV]
    assert "print(" not in joined
    assert argv[argv.index("fimum/sandbox:test") - 1] == "/bin/sh"


def test_a_compiled_language_may_use_more_memory_to_build() -> None:
    argv = sandbox().command(BY_ID["c"], "fimum-sandbox-y")
    assert int(argv[argv.index("--memory") + 1]) >= 1 << 30


@pytest.mark.parametrize(
    ("language", "code", "stdout", "failed"),
    [
        ("python", "print(input()[::-1])", "olleh\n", False),
        (
            "c",
            '#include <stdio.h>\nint main(void){ char s[16]; scanf("%15s", s); printf("[%s]\\n", s); }',
            "[hello]\n",
            False,
        ),
        ("c", "int main(void) { return nope; }", "", True),
    ],
)
def test_the_container_script_decodes_builds_and_runs(
    tmp_path: Path, language: str, code: str, stdout: str, failed: bool
) -> None:
    if shutil.which(BY_ID[language].requires[0]) is None:
        pytest.skip(f"{language} is not installed")
    script = sandbox().script(BY_ID[language])
    done = subprocess.run(
        ["/bin/sh", "-c", script],
        input="hello\n",
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PATH": os.environ["PATH"], SOURCE_ENV: base64.b64encode(code.encode()).decode()},
        timeout=60,
    )
    stderr, build_failed, build_output = _split_build(done.stderr)
    assert (done.stdout, build_failed) == (stdout, failed), done
    if failed:
        assert "nope" in build_output and done.returncode == 1
    else:
        assert stderr == "" and done.returncode == 0


def test_without_an_engine_it_says_so() -> None:
    box = sandbox()
    ok, why = box.available()
    if ok:
        pytest.skip("a Docker engine is running here")
    assert why.startswith("docker engine unavailable")
    with pytest.raises(SandboxUnavailable, match="docker engine unavailable"):
        asyncio.run(box.run("python", "print(1)"))
    missing = sandbox(docker="/nonexistent/docker")
    assert missing.available() == (False, "docker engine unavailable: the docker client is not installed")


def test_the_api_on_the_docker_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    if sandbox().available()[0]:
        pytest.skip("a Docker engine is running here")
    monkeypatch.setenv("FIMUM_SANDBOX__BACKEND", "docker")
    with TestClient(create_app(load_settings())) as client:
        assert isinstance(client.app.state.sandbox, SandboxService)  # type: ignore[attr-defined]
        headers = auth_headers(client)
        listed = client.get("/api/v1/sandbox/languages", headers=headers).json()
        assert listed["backend"] == "docker" and listed["available"] is False
        assert listed["reason"].startswith("docker engine unavailable")
        ran = client.post(
            "/api/v1/sandbox/run", json={"language": "python", "code": "print(1)"}, headers=headers
        )
        assert ran.status_code == 503
        assert ran.json()["error"]["code"] == "sandbox_unavailable"
        assert ran.json()["error"]["message"].startswith("docker engine unavailable")


def test_source_too_big_for_one_environment_string_is_refused_clearly() -> None:
    from fimum_ai.errors import InvalidInput

    with pytest.raises(InvalidInput, match="at most 98") as refused:
        asyncio.run(sandbox().run("python", "#" * 200_000))
    assert refused.value.details["field"] == "code"
