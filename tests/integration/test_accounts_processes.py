"""Accounts across real processes: two API servers sharing PostgreSQL and Redis, restarts of an
embedded server, and the operator's `fimum users` / `fimum db` commands."""

from __future__ import annotations

import json
import os
import re
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from fimum_ai.app import create_app
from fimum_ai.settings import ConfigError, load_settings
from tests.conftest import JWT_TEST_SECRET, REDIS_URL, remember_secret
from tests.integration.test_accounts import bearer, code_from_mail, sign_in
from tests.peers.smtp import SmtpServer

FIMUM = str(Path(sys.executable).with_name("fimum"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    def __init__(self, base: str, proc: subprocess.Popen[str]) -> None:
        self.base = base
        self.proc = proc
        self.output = ""

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(self.base + path, timeout=10, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.post(self.base + path, timeout=10, **kwargs)


@contextmanager
def fimum_server(env: dict[str, str]) -> Iterator[Server]:
    port = _free_port()
    proc = subprocess.Popen(
        [FIMUM, "serve", "--port", str(port)],
        env=os.environ | env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    server = Server(f"http://127.0.0.1:{port}", proc)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{server.base}/healthz", timeout=1)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    raise AssertionError(f"server did not start: {proc.communicate()[0]}") from None
                time.sleep(0.2)
        yield server
    finally:
        proc.terminate()
        server.output = proc.communicate(timeout=15)[0]


def fimum(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FIMUM, *args], env=dict(os.environ), capture_output=True, text=True, timeout=timeout
    )


def refused_soon(server: Server, token: str, within_s: float = 1.0) -> httpx.Response:
    """Revocations reach other replicas over Redis pub/sub: milliseconds, not a request's time."""
    deadline = time.monotonic() + within_s
    while True:
        response = server.get("/api/v1/me", headers=bearer(token))
        if response.status_code == 401 or time.monotonic() > deadline:
            assert response.status_code == 401, response.text
            return response
        time.sleep(0.01)


def test_a_token_revoked_through_one_server_is_refused_by_another(
    smtp_server: SmtpServer, pg_schema: str, redis_prefix: str
) -> None:
    from tests.conftest import POSTGRES_URL

    env = {
        "FIMUM_MODE": "distributed",
        "FIMUM_DATABASE_URL": POSTGRES_URL,
        "FIMUM_DATABASE_SCHEMA": pg_schema,
        "FIMUM_REDIS_URL": REDIS_URL,
        "FIMUM_REDIS_PREFIX": redis_prefix,
        "FIMUM_JWT_SECRET": JWT_TEST_SECRET,
        "FIMUM_SIGNUP": "open",
        "FIMUM_SMTP_HOST": "127.0.0.1",
        "FIMUM_SMTP_PORT": str(smtp_server.port),
        "FIMUM_SMTP_TLS": "none",
    }
    secrets: list[str] = []
    with fimum_server(env) as a, fimum_server(env) as b:
        assert a.post("/api/v1/auth/otp/request", json={"identifier": "ada@example.com"}).status_code == 202
        code = code_from_mail(smtp_server, "ada@example.com")
        tokens = a.post(
            "/api/v1/auth/otp/verify", json={"identifier": "ada@example.com", "code": code}
        ).json()
        secrets += [code, tokens["access_token"], tokens["refresh_token"]]
        assert b.get("/api/v1/me", headers=bearer(tokens["access_token"])).status_code == 200

        # Rotation on A, reuse of the old refresh token on B: the family dies everywhere.
        rotated = a.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).json()
        secrets += [rotated["access_token"], rotated["refresh_token"]]
        reuse = b.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert reuse.status_code == 401 and reuse.json()["error"]["details"]["reason"] == "reused"
        refused = refused_soon(a, rotated["access_token"])
        assert refused.json()["error"]["details"]["reason"] == "revoked"

        # A fresh session, logged out through B, is refused by A at once.
        assert a.post("/api/v1/auth/otp/request", json={"identifier": "ada@example.com"}).status_code == 202
        code = code_from_mail(smtp_server, "ada@example.com", 2)
        fresh = a.post("/api/v1/auth/otp/verify", json={"identifier": "ada@example.com", "code": code}).json()
        secrets += [code, fresh["access_token"], fresh["refresh_token"]]
        assert a.get("/api/v1/me", headers=bearer(fresh["access_token"])).status_code == 200
        assert b.post("/api/v1/auth/logout", headers=bearer(fresh["access_token"])).status_code == 204
        after = refused_soon(a, fresh["access_token"])
        assert after.json()["error"]["details"]["reason"] == "revoked"
    for secret in secrets:
        remember_secret(secret)
        assert secret not in a.output and secret not in b.output
    assert '"otp requested"' in a.output  # the logs were there to look at


def test_embedded_key_file_and_revocations_survive_a_restart(
    smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FIMUM_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("FIMUM_SMTP_PORT", str(smtp_server.port))
    monkeypatch.setenv("FIMUM_SMTP_TLS", "none")
    settings = load_settings()
    with TestClient(create_app(settings)) as client:
        kept = sign_in(client, smtp_server, "ada@example.com")
        client.cookies.clear()
        dropped = sign_in(client, smtp_server, "ada@example.com")
        client.cookies.clear()
        assert client.post("/api/v1/auth/logout", headers=bearer(dropped["access_token"])).status_code == 204
    key_file = settings.data_dir / "jwt_secret"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(key_file.read_bytes().strip()) >= 32
    with TestClient(create_app(load_settings())) as client:  # a restart: same key, same revocations
        assert client.get("/api/v1/me", headers=bearer(kept["access_token"])).status_code == 200
        assert client.get("/api/v1/me", headers=bearer(dropped["access_token"])).status_code == 401


def test_distributed_mode_refuses_a_short_or_missing_signing_key() -> None:
    base = {"mode": "distributed", "redis_url": REDIS_URL}
    for secret in (None, "too-short"):
        with pytest.raises(ConfigError, match="FIMUM_JWT_SECRET of at least 32 bytes"):
            load_settings(**base, jwt_secret=secret)
    with pytest.raises(ConfigError, match="FIMUM_REDIS_URL"):
        load_settings(mode="distributed", jwt_secret=JWT_TEST_SECRET)
    proc = subprocess.run(
        [FIMUM, "serve"],
        env=os.environ | {"FIMUM_MODE": "distributed", "FIMUM_REDIS_URL": REDIS_URL},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "FIMUM_JWT_SECRET" in proc.stderr and "Traceback" not in proc.stderr


def test_operator_commands_create_users_tiers_and_api_keys(backend: str) -> None:
    assert fimum("db", "upgrade").returncode == 0
    current = fimum("db", "current")
    assert current.returncode == 0 and re.search(r"current: (\w+)\s+head: \1", current.stdout), current.stdout

    created = fimum("users", "create", "ada@example.com", "--tier", "pro", "--admin")
    assert created.returncode == 0, created.stderr
    assert fimum("users", "create", "ADA@example.com").returncode == 2  # already there
    assert fimum("users", "create", "+14155550123").returncode == 0
    bad_tier = fimum("users", "set-tier", "+14155550123", "gold")
    assert bad_tier.returncode == 2 and "unknown tier" in bad_tier.stderr
    assert fimum("users", "set-tier", "+1 415 555 0123", "enterprise").returncode == 0
    listed = {u["email"] or u["phone"]: u for u in json.loads(fimum("users", "list", "--json").stdout)}
    assert listed["ada@example.com"]["tier"] == "pro" and listed["ada@example.com"]["is_admin"] is True
    assert listed["+14155550123"]["tier"] == "enterprise"
    table = fimum("users", "list")
    assert table.returncode == 0 and "tier" in table.stdout

    made = fimum("users", "api-key", "create", "ada@example.com", "--name", "ci")
    assert made.returncode == 0, made.stderr
    key = remember_secret(re.findall(r"fim_[A-Za-z0-9_-]+", made.stdout)[0])
    with TestClient(create_app(load_settings())) as client:
        me = client.get("/api/v1/me", headers=bearer(key))
        assert me.status_code == 200, me.text
        assert me.json()["tier"] == "pro" and me.json()["user"]["is_admin"] is True

    assert fimum("users", "disable", "ada@example.com").returncode == 0
    with TestClient(create_app(load_settings())) as client:
        assert client.get("/api/v1/me", headers=bearer(key)).status_code == 401
    missing = fimum("users", "disable", "nobody@example.com")
    assert missing.returncode == 2 and "no user" in missing.stderr
