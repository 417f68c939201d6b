"""Sign-in by one-time code, tokens, revocation, API keys, admin and limits, end to end over HTTP.

Every test runs twice (the `backend` fixture): embedded (SQLite + in-process revocation and limits)
and distributed (PostgreSQL in a schema of its own + Redis under a prefix of its own). Codes are
read from what a real SMTP server on 127.0.0.1 received.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
import time_machine
from fastapi.testclient import TestClient

from fimum_ai.app import create_app
from fimum_ai.settings import load_settings
from tests.conftest import remember_secret
from tests.peers.smtp import SmtpServer

CODE = re.compile(r"(?<!\d)(\d{6})(?!\d)")


@pytest.fixture
def mail(smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch) -> SmtpServer:
    monkeypatch.setenv("FIMUM_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("FIMUM_SMTP_PORT", str(smtp_server.port))
    monkeypatch.setenv("FIMUM_SMTP_TLS", "none")
    monkeypatch.setenv("FIMUM_SIGNUP", "open")  # distributed mode defaults to invite-only
    return smtp_server


@pytest.fixture
def client(backend: str, mail: SmtpServer) -> Iterator[TestClient]:
    with TestClient(create_app(load_settings())) as test_client:
        yield test_client


def code_from_mail(mail: SmtpServer, address: str, nth: int = 1) -> str:
    """The code of the nth e-mail to `address` (waits for it: delivery is off the request path)."""
    deadline = time.monotonic() + 10
    while True:
        received = [m for m in mail.messages if address in m.rcpt_tos]
        if len(received) >= nth:
            break
        assert time.monotonic() < deadline, f"no e-mail #{nth} to {address}"
        time.sleep(0.02)
    message = received[nth - 1]
    code = CODE.search(message.part("plain"))
    assert code is not None
    assert code.group(1) in message.part("html")
    return remember_secret(code.group(1))


def sign_in(client: TestClient, mail: SmtpServer, address: str) -> dict[str, Any]:
    sent = sum(address in m.rcpt_tos for m in mail.messages)
    assert client.post("/api/v1/auth/otp/request", json={"identifier": address}).status_code == 202
    code = code_from_mail(mail, address, sent + 1)
    response = client.post("/api/v1/auth/otp/verify", json={"identifier": address, "code": code})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    remember_secret(body["access_token"])
    remember_secret(body["refresh_token"])
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code, body
    return body


# ------------------------------------------------------------------------------------- sign-in


def test_email_sign_in_gives_tokens_and_me(client: TestClient, mail: SmtpServer) -> None:
    tokens = sign_in(client, mail, "ada@example.com")
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] == 3600 and tokens["refresh_expires_in"] == 7 * 86400
    assert tokens["user"]["email"] == "ada@example.com"
    assert tokens["user"]["is_admin"] is True  # the first account of a fresh install
    me = client.get("/api/v1/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 200
    body = me.json()
    assert body["tier"] == "free"
    assert body["limits"] == {"requests_per_minute": 100, "images_per_day": 5, "research_per_day": 10}
    assert body["usage"]["images"]["used"] == 0 and body["usage"]["images"]["remaining"] == 5
    assert body["usage"]["images"]["resets_at"].endswith(("+00:00", "Z"))
    # The second account is an ordinary user.
    assert sign_in(client, mail, "bob@example.com")["user"]["is_admin"] is False


def test_identifiers_are_normalised(client: TestClient, mail: SmtpServer) -> None:
    first = sign_in(client, mail, "ada@example.com")
    client.post("/api/v1/auth/otp/request", json={"identifier": "  ADA@Example.COM "})
    code = code_from_mail(mail, "ada@example.com", 2)
    again = client.post("/api/v1/auth/otp/verify", json={"identifier": "Ada@example.com", "code": code})
    assert again.json()["user"]["id"] == first["user"]["id"]


def test_known_and_unknown_identifiers_get_the_same_answer(client: TestClient, mail: SmtpServer) -> None:
    sign_in(client, mail, "known@example.com")
    known = client.post("/api/v1/auth/otp/request", json={"identifier": "known@example.com"})
    unknown = client.post("/api/v1/auth/otp/request", json={"identifier": "nobody@example.com"})
    assert known.status_code == unknown.status_code == 202
    strip = lambda body: {k: v for k, v in body.items() if k != "window_resets_at"}  # noqa: E731
    # The known address used one request more (its sign-in), so compare the shape and the rest.
    assert set(known.json()) == set(unknown.json())
    assert {**strip(known.json()), "requests_remaining": 0} == {
        **strip(unknown.json()),
        "requests_remaining": 0,
    }


def test_invite_only_answers_unknown_identifiers_alike_but_sends_nothing(
    backend: str, mail: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FIMUM_SIGNUP", "invite")
    with TestClient(create_app(load_settings())) as client:
        response = client.post("/api/v1/auth/otp/request", json={"identifier": "stranger@example.com"})
        assert response.status_code == 202
        # A decoy challenge exists, so a guess fails exactly like a wrong code for a real account.
        guess = client.post(
            "/api/v1/auth/otp/verify", json={"identifier": "stranger@example.com", "code": "123456"}
        )
        assert_error(guess, 400, "otp_invalid")
        assert guess.json()["error"]["details"]["attempts_left"] == 4
        accounts = client.app.state.accounts  # type: ignore[attr-defined]
        client.portal.call(accounts.dispatcher.wait_idle, 5.0)
    assert [m for m in mail.messages if "stranger@example.com" in m.rcpt_tos] == []


def test_codes_are_single_use_and_superseded(client: TestClient, mail: SmtpServer) -> None:
    client.post("/api/v1/auth/otp/request", json={"identifier": "ada@example.com"})
    first = code_from_mail(mail, "ada@example.com", 1)
    client.post("/api/v1/auth/otp/request", json={"identifier": "ada@example.com"})
    second = code_from_mail(mail, "ada@example.com", 2)
    if first != second:  # one in a million they coincide
        old = client.post("/api/v1/auth/otp/verify", json={"identifier": "ada@example.com", "code": first})
        assert_error(old, 400, "otp_invalid")
    ok = client.post("/api/v1/auth/otp/verify", json={"identifier": "ada@example.com", "code": second})
    assert ok.status_code == 200
    remember_secret(ok.json()["access_token"])
    remember_secret(ok.json()["refresh_token"])
    replay = client.post("/api/v1/auth/otp/verify", json={"identifier": "ada@example.com", "code": second})
    assert_error(replay, 400, "otp_invalid")


def test_five_wrong_codes_kill_the_challenge(client: TestClient, mail: SmtpServer) -> None:
    client.post("/api/v1/auth/otp/request", json={"identifier": "ada@example.com"})
    code = code_from_mail(mail, "ada@example.com")
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for attempts_left in (4, 3, 2, 1):
        response = client.post(
            "/api/v1/auth/otp/verify", json={"identifier": "ada@example.com", "code": wrong}
        )
        assert (
            assert_error(response, 400, "otp_invalid")["error"]["details"]["attempts_left"] == attempts_left
        )
    fifth = client.post("/api/v1/auth/otp/verify", json={"identifier": "ada@example.com", "code": wrong})
    assert_error(fifth, 400, "otp_attempts_exceeded")
    right = client.post("/api/v1/auth/otp/verify", json={"identifier": "ada@example.com", "code": code})
    assert_error(right, 400, "otp_attempts_exceeded")


def test_codes_expire_after_ten_minutes(client: TestClient, mail: SmtpServer) -> None:
    with time_machine.travel(time.time(), tick=True) as traveller:
        client.post("/api/v1/auth/otp/request", json={"identifier": "ada@example.com"})
        code = code_from_mail(mail, "ada@example.com")
        traveller.shift(601)
        late = client.post("/api/v1/auth/otp/verify", json={"identifier": "ada@example.com", "code": code})
        assert_error(late, 400, "otp_expired")


def test_a_code_is_still_good_just_before_expiry(client: TestClient, mail: SmtpServer) -> None:
    with time_machine.travel(time.time(), tick=True) as traveller:
        client.post("/api/v1/auth/otp/request", json={"identifier": "ada@example.com"})
        code = code_from_mail(mail, "ada@example.com")
        traveller.shift(590)
        ok = client.post("/api/v1/auth/otp/verify", json={"identifier": "ada@example.com", "code": code})
        assert ok.status_code == 200
        remember_secret(ok.json()["access_token"])
        remember_secret(ok.json()["refresh_token"])


def test_three_code_requests_per_fifteen_minutes(client: TestClient, mail: SmtpServer) -> None:
    for remaining in (2, 1, 0):
        response = client.post("/api/v1/auth/otp/request", json={"identifier": "ada@example.com"})
        assert response.status_code == 202 and response.json()["requests_remaining"] == remaining
    fourth = client.post("/api/v1/auth/otp/request", json={"identifier": "ada@example.com"})
    assert_error(fourth, 429, "rate_limited")
    assert 1 <= int(fourth.headers["Retry-After"]) <= 15 * 60
    # Another identifier from the same address is not affected by that limit.
    assert client.post("/api/v1/auth/otp/request", json={"identifier": "bob@example.com"}).status_code == 202


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"identifier": "not-an-address"}, 400, "invalid_input"),
        ({"identifier": "+1 555"}, 400, "invalid_input"),
        ({"identifier": "ada@example.com", "channel": "sms"}, 400, "invalid_input"),
        ({"identifier": "ada@example.com", "channel": "pigeon"}, 422, "validation_error"),
        ({}, 422, "validation_error"),
    ],
)
def test_bad_code_requests_get_clear_errors(
    client: TestClient, body: dict[str, Any], status: int, code: str
) -> None:
    assert_error(client.post("/api/v1/auth/otp/request", json=body), status, code)


def test_malformed_codes_are_422(client: TestClient) -> None:
    response = client.post(
        "/api/v1/auth/otp/verify", json={"identifier": "ada@example.com", "code": "12ab56"}
    )
    assert_error(response, 422, "validation_error")
    assert response.json()["error"]["message"].startswith("code:")


# -------------------------------------------------------------------------------------- tokens


def test_protected_routes_need_a_token(client: TestClient) -> None:
    response = client.get("/api/v1/me")
    assert_error(response, 401, "not_authenticated")
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert_error(client.get("/api/v1/me", headers=bearer("garbage")), 401, "invalid_token")


def test_refresh_rotates_and_reuse_ends_the_session(client: TestClient, mail: SmtpServer) -> None:
    first = sign_in(client, mail, "ada@example.com")
    rotated = client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert rotated.status_code == 200
    second = rotated.json()
    remember_secret(second["access_token"])
    remember_secret(second["refresh_token"])
    assert second["refresh_token"] != first["refresh_token"]
    assert client.get("/api/v1/me", headers=bearer(second["access_token"])).status_code == 200
    # The old refresh token comes back: someone copied it. The whole family dies.
    reuse = client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert assert_error(reuse, 401, "invalid_token")["error"]["details"]["reason"] == "reused"
    after = client.post("/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert_error(after, 401, "invalid_token")
    assert_error(client.get("/api/v1/me", headers=bearer(second["access_token"])), 401, "invalid_token")


def test_an_access_token_is_not_a_refresh_token(client: TestClient, mail: SmtpServer) -> None:
    tokens = sign_in(client, mail, "ada@example.com")
    response = client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["access_token"]})
    assert assert_error(response, 401, "invalid_token")["error"]["details"]["reason"] == "wrong_type"


def test_browser_refresh_uses_the_cookie_and_needs_the_csrf_header(
    client: TestClient, mail: SmtpServer
) -> None:
    sign_in(client, mail, "ada@example.com")
    assert "fimum_refresh" in client.cookies and "fimum_csrf" in client.cookies
    assert_error(client.post("/api/v1/auth/refresh"), 403, "forbidden")
    csrf = client.cookies["fimum_csrf"]
    response = client.post("/api/v1/auth/refresh", headers={"X-CSRF-Token": csrf})
    assert response.status_code == 200
    remember_secret(response.json()["access_token"])
    remember_secret(response.json()["refresh_token"])
    cookie_header = "; ".join(response.headers.get_list("set-cookie"))
    assert "HttpOnly" in cookie_header and "SameSite=strict" in cookie_header
    assert "Path=/api/v1/auth" in cookie_header


def test_access_tokens_expire(client: TestClient, mail: SmtpServer) -> None:
    with time_machine.travel(time.time(), tick=True) as traveller:
        tokens = sign_in(client, mail, "ada@example.com")
        traveller.shift(3600 + 10)
        expired = client.get("/api/v1/me", headers=bearer(tokens["access_token"]))
        assert assert_error(expired, 401, "invalid_token")["error"]["details"]["reason"] == "expired"
        # The refresh token (7 days) still works and gives a fresh access token.
        fresh = client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).json()
        remember_secret(fresh["access_token"])
        remember_secret(fresh["refresh_token"])
        assert client.get("/api/v1/me", headers=bearer(fresh["access_token"])).status_code == 200


def test_logout_revokes_the_access_and_refresh_tokens(client: TestClient, mail: SmtpServer) -> None:
    tokens = sign_in(client, mail, "ada@example.com")
    other = sign_in(client, mail, "ada@example.com")  # a second session on another device
    client.cookies.clear()  # that device's cookie is not in this one's jar
    response = client.post("/api/v1/auth/logout", headers=bearer(tokens["access_token"]))
    assert response.status_code == 204
    revoked = client.get("/api/v1/me", headers=bearer(tokens["access_token"]))
    assert assert_error(revoked, 401, "invalid_token")["error"]["details"]["reason"] == "revoked"
    assert_error(
        client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}),
        401,
        "invalid_token",
    )
    # The other session lives on.
    assert client.get("/api/v1/me", headers=bearer(other["access_token"])).status_code == 200


def test_logout_everywhere_ends_every_session(client: TestClient, mail: SmtpServer) -> None:
    one = sign_in(client, mail, "ada@example.com")
    two = sign_in(client, mail, "ada@example.com")
    assert client.post("/api/v1/auth/logout-all", headers=bearer(two["access_token"])).status_code == 204
    for session in (one, two):
        assert_error(client.get("/api/v1/me", headers=bearer(session["access_token"])), 401, "invalid_token")
        refreshed = client.post("/api/v1/auth/refresh", json={"refresh_token": session["refresh_token"]})
        assert_error(refreshed, 401, "invalid_token")
    # Signing in again works at once (same second included).
    assert (
        client.get(
            "/api/v1/me", headers=bearer(sign_in(client, mail, "ada@example.com")["access_token"])
        ).status_code
        == 200
    )


# ------------------------------------------------------------------------------------ API keys


def test_api_keys_are_shown_once_work_as_bearer_and_can_be_revoked(
    client: TestClient, mail: SmtpServer
) -> None:
    tokens = sign_in(client, mail, "ada@example.com")
    created = client.post(
        "/api/v1/me/api-keys", json={"name": "laptop script"}, headers=bearer(tokens["access_token"])
    )
    assert created.status_code == 201
    key = remember_secret(created.json()["key"])
    assert key.startswith("fim_") and len(key) > 40
    me = client.get("/api/v1/me", headers=bearer(key))
    assert me.status_code == 200 and me.json()["auth"]["via"] == "api_key"
    listed = client.get("/api/v1/me/api-keys", headers=bearer(key)).json()["items"]
    assert [item["name"] for item in listed] == ["laptop script"]
    assert "key" not in listed[0] and key.startswith(listed[0]["prefix"])
    assert (
        client.delete(
            f"/api/v1/me/api-keys/{listed[0]['id']}", headers=bearer(tokens["access_token"])
        ).status_code
        == 204
    )
    assert_error(client.get("/api/v1/me", headers=bearer(key)), 401, "invalid_token")
    assert_error(
        client.delete(f"/api/v1/me/api-keys/{listed[0]['id']}", headers=bearer(tokens["access_token"])),
        404,
        "not_found",
    )


def test_api_keys_of_other_users_cannot_be_revoked(client: TestClient, mail: SmtpServer) -> None:
    ada = sign_in(client, mail, "ada@example.com")
    bob = sign_in(client, mail, "bob@example.com")
    key = client.post("/api/v1/me/api-keys", json={"name": "k"}, headers=bearer(ada["access_token"])).json()
    remember_secret(key["key"])
    assert_error(
        client.delete(f"/api/v1/me/api-keys/{key['id']}", headers=bearer(bob["access_token"])),
        404,
        "not_found",
    )


# --------------------------------------------------------------------------------------- admin


def test_admin_manages_users_and_others_cannot(client: TestClient, mail: SmtpServer) -> None:
    admin = sign_in(client, mail, "admin@example.com")
    user = sign_in(client, mail, "user@example.com")
    assert_error(client.get("/api/v1/admin/users", headers=bearer(user["access_token"])), 403, "forbidden")

    listed = client.get("/api/v1/admin/users?limit=1", headers=bearer(admin["access_token"])).json()
    assert len(listed["items"]) == 1 and listed["next_cursor"]
    rest = client.get(
        f"/api/v1/admin/users?limit=1&cursor={listed['next_cursor']}", headers=bearer(admin["access_token"])
    )
    assert rest.json()["items"][0]["email"] == "user@example.com" and rest.json()["next_cursor"] is None

    user_id = user["user"]["id"]
    patched = client.patch(
        f"/api/v1/admin/users/{user_id}", json={"tier": "pro"}, headers=bearer(admin["access_token"])
    )
    assert patched.status_code == 200 and patched.json()["tier"] == "pro"
    me = client.get("/api/v1/me", headers=bearer(user["access_token"])).json()
    assert me["tier"] == "pro"
    assert me["limits"] == {"requests_per_minute": 1000, "images_per_day": 100, "research_per_day": None}

    bad_tier = client.patch(
        f"/api/v1/admin/users/{user_id}", json={"tier": "gold"}, headers=bearer(admin["access_token"])
    )
    assert_error(bad_tier, 400, "invalid_input")
    missing = client.patch(
        "/api/v1/admin/users/nope", json={"tier": "pro"}, headers=bearer(admin["access_token"])
    )
    assert_error(missing, 404, "not_found")

    disabled = client.patch(
        f"/api/v1/admin/users/{user_id}", json={"disabled": True}, headers=bearer(admin["access_token"])
    )
    assert disabled.status_code == 200
    assert_error(client.get("/api/v1/me", headers=bearer(user["access_token"])), 401, "invalid_token")
    # A disabled user gets no code (the answer is the same 202).
    before = len(mail.messages)
    assert client.post("/api/v1/auth/otp/request", json={"identifier": "user@example.com"}).status_code == 202
    time.sleep(0.3)
    assert len(mail.messages) == before

    invited = client.post(
        "/api/v1/admin/users",
        json={"identifier": "+14155550123", "tier": "enterprise"},
        headers=bearer(admin["access_token"]),
    )
    assert invited.status_code == 201 and invited.json()["phone"] == "+14155550123"
    duplicate = client.post(
        "/api/v1/admin/users", json={"identifier": "+1 415 555 0123"}, headers=bearer(admin["access_token"])
    )
    assert_error(duplicate, 409, "conflict")
    self_disable = client.patch(
        f"/api/v1/admin/users/{admin['user']['id']}",
        json={"disabled": True},
        headers=bearer(admin["access_token"]),
    )
    assert_error(self_disable, 403, "forbidden")


# -------------------------------------------------------------------------------- rate limiting


def test_per_user_request_rate_limit(backend: str, mail: SmtpServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIMUM_TIERS__FREE__REQUESTS_PER_MINUTE", "5")
    with TestClient(create_app(load_settings())) as client:
        tokens = sign_in(client, mail, "ada@example.com")
        tokens = sign_in(client, mail, "bob@example.com")  # not an admin, tier free
        statuses = [client.get("/api/v1/me", headers=bearer(tokens["access_token"])) for _ in range(6)]
        assert [r.status_code for r in statuses] == [200] * 5 + [429]
        assert statuses[0].headers["X-RateLimit-Limit"] == "5"
        assert statuses[4].headers["X-RateLimit-Remaining"] == "0"
        assert_error(statuses[5], 429, "rate_limited")
        assert int(statuses[5].headers["Retry-After"]) >= 1


def test_a_tier_added_in_the_config_has_its_own_limits(
    backend: str, mail: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FIMUM_TIERS__TEAM__REQUESTS_PER_MINUTE", "500")
    monkeypatch.setenv("FIMUM_TIERS__TEAM__IMAGES_PER_DAY", "20")
    monkeypatch.setenv("FIMUM_TIERS__TEAM__RESEARCH_PER_DAY", "-1")
    with TestClient(create_app(load_settings())) as client:
        admin = sign_in(client, mail, "admin@example.com")
        user = sign_in(client, mail, "user@example.com")
        patched = client.patch(
            f"/api/v1/admin/users/{user['user']['id']}",
            json={"tier": "team"},
            headers=bearer(admin["access_token"]),
        )
        assert patched.status_code == 200
        me = client.get("/api/v1/me", headers=bearer(user["access_token"]))
        assert me.json()["limits"] == {
            "requests_per_minute": 500,
            "images_per_day": 20,
            "research_per_day": None,
        }
        assert me.headers["X-RateLimit-Limit"] == "500"
        assert me.json()["usage"]["images"]["remaining"] == 20
