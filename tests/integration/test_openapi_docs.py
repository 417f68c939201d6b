"""The Swagger docs (FR-DOC-002): every API operation has a summary, its error answers with the shared
error body and real error codes, and request bodies with examples, ranges and upload guidance."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel

from fimum_ai.accounts import routes as account_routes
from fimum_ai.app import create_app
from fimum_ai.errors import ErrorResponse, FimumError
from fimum_ai.images import openai_compat, uploads
from fimum_ai.images import routes as image_routes
from fimum_ai.settings import load_settings

# Codes that no exception class carries: the validation handler's, and a job's whose worker died twice.
CODES_WITHOUT_A_CLASS = {"validation_error", "interrupted"}
ERROR_REF = "#/components/schemas/ErrorResponse"


@pytest.fixture(scope="module")
def openapi(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("FIMUM_DATA_DIR", str(tmp_path_factory.mktemp("data")))
        client = TestClient(create_app(load_settings()))  # not started: the schema needs no lifespan
        response = client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def api_operations(openapi: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, item in openapi["paths"].items():
        if path.startswith(("/api/v1/", "/v1/")):
            for method, operation in item.items():
                yield f"{method.upper()} {path}", operation


def all_codes() -> set[str]:
    codes: set[str] = set()
    pending: list[type[FimumError]] = [FimumError]
    while pending:
        cls = pending.pop()
        codes.add(cls.code)
        pending.extend(cls.__subclasses__())
    return codes | CODES_WITHOUT_A_CLASS


def test_every_operation_has_a_summary_and_its_errors(openapi: dict[str, Any]) -> None:
    operations = dict(api_operations(openapi))
    assert len(operations) >= 25
    for label, operation in operations.items():
        responses = operation["responses"]
        assert operation.get("summary"), f"{label}: no summary"
        if operation.get("security"):
            assert "401" in responses, f"{label}: signs in, but 401 is not documented"
        if operation.get("parameters") or operation.get("requestBody"):
            assert "422" in responses, f"{label}: takes input, but 422 is not documented"
        assert "429" in responses, f"{label}: the request limit applies, but 429 is not documented"


def test_every_error_answer_is_the_shared_error_body_with_real_codes(openapi: dict[str, Any]) -> None:
    codes = all_codes()
    assert "HTTPValidationError" not in openapi["components"]["schemas"], "FastAPI's 422 body is not ours"
    for label, operation in api_operations(openapi):
        for status, response in operation["responses"].items():
            if int(status) < 400:
                continue
            media = response["content"]["application/json"]
            assert media["schema"] == {"$ref": ERROR_REF}, f"{label} {status}: not the error model"
            examples = media["examples"]
            assert examples, f"{label} {status}: no example body"
            for code, example in examples.items():
                body = ErrorResponse.model_validate(example["value"])
                assert body.error.code == code, f"{label} {status}: example {code} shows {body.error.code}"
                assert code in codes, f"{label} {status}: {code} is not a code the app returns"
                assert f"`{code}`" in response["description"], f"{label} {status}: {code} not described"
        too_many = operation["responses"]["429"]
        assert "Retry-After" in too_many["headers"]
        assert "rate_limited" in too_many["content"]["application/json"]["examples"], label


def test_error_examples_name_the_codes_each_route_really_returns(openapi: dict[str, Any]) -> None:
    def codes(path: str, method: str, status: str) -> set[str]:
        examples = openapi["paths"][path][method]["responses"][status]["content"]["application/json"]
        return set(examples["examples"])

    assert {"nsfw_content_blocked", "invalid_input"} <= codes("/api/v1/image/generate", "post", "400")
    assert {"quota_exceeded", "rate_limited"} <= codes("/api/v1/image/generate", "post", "429")
    assert {"model_not_installed", "gpu_out_of_memory"} <= codes("/api/v1/image/generate", "post", "503")
    assert {"invalid_image", "nsfw_content_blocked"} <= codes("/api/v1/image/edit", "post", "400")
    assert codes("/api/v1/image/edit", "post", "413") == {"payload_too_large"}
    assert codes("/api/v1/image/edit", "post", "415") == {"unsupported_media_type"}
    assert {"otp_invalid", "otp_expired"} <= codes("/api/v1/auth/otp/verify", "post", "400")
    assert codes("/api/v1/images/{image_id}", "get", "404") == {"not_found"}
    assert {"not_authenticated", "invalid_token"} <= codes("/api/v1/me", "get", "401")
    assert codes("/v1/images/generations", "post", "503") >= {"model_not_installed"}


def test_request_bodies_carry_examples_that_are_valid_requests(openapi: dict[str, Any]) -> None:
    models: dict[str, type[BaseModel]] = {
        "/api/v1/image/generate": image_routes.GenerateRequest,
        "/api/v1/image/edit": image_routes.EditRequest,
        "/api/v1/image/outpaint": image_routes.OutpaintRequest,
        "/api/v1/image/upscale": image_routes.UpscaleRequest,
        "/v1/images/generations": openai_compat.ImagesGenerationRequest,
        "/api/v1/auth/otp/request": account_routes.OtpRequest,
        "/api/v1/auth/otp/verify": account_routes.OtpVerify,
        "/api/v1/me/api-keys": account_routes.ApiKeyCreate,
        "/api/v1/admin/users": account_routes.UserCreate,
    }
    schemas = openapi["components"]["schemas"]
    for label, operation in api_operations(openapi):
        body = operation.get("requestBody")
        if body is None:
            continue
        for media_type, media in body["content"].items():
            schema = media["schema"]
            if "$ref" in schema:
                schema = schemas[schema["$ref"].rsplit("/", 1)[1]]
            if "anyOf" in schema:  # an optional body (refresh, logout)
                ref = next(s["$ref"] for s in schema["anyOf"] if "$ref" in s)
                schema = schemas[ref.rsplit("/", 1)[1]]
            assert schema.get("examples") or media.get("examples"), f"{label} {media_type}: no example"
            for name, field in schema["properties"].items():
                assert field.get("description"), f"{label}: field {name} has no description"
    for model in models.values():
        for example in model.model_json_schema(by_alias=True)["examples"]:
            model.model_validate(example)  # an example a client copies must be accepted


def test_ranges_and_upload_guidance_show(openapi: dict[str, Any]) -> None:
    generate = openapi["components"]["schemas"]["GenerateRequest"]["properties"]
    assert (generate["width"]["minimum"], generate["width"]["maximum"], generate["width"]["multipleOf"]) == (
        512,
        4096,
        64,
    )
    steps = next(branch for branch in generate["steps"]["anyOf"] if branch.get("type") == "integer")
    assert (steps["minimum"], steps["maximum"]) == (20, 100)
    assert (generate["batch_size"]["minimum"], generate["batch_size"]["maximum"]) == (1, 8)
    assert "20-100" in generate["steps"]["description"]

    edit = openapi["paths"]["/api/v1/image/edit"]["post"]["requestBody"]["content"]
    assert set(edit) == {"application/json", "multipart/form-data"}
    image = edit["application/json"]["schema"]["properties"]["image_base64"]
    for words in ("PNG", "JPEG", "WebP", "10 MB", "data:image/png;base64,", "multipart"):
        assert words in image["description"], words
    assert edit["multipart/form-data"]["schema"]["properties"]["image"]["format"] == "binary"
    # The example image is a real one: "Try it out" works as shown.
    example = image_routes.EditRequest.model_json_schema()["examples"][0]["image_base64"]
    uploaded = uploads.load_image(base64.b64decode(example))
    assert (uploaded.width, uploaded.height) == (64, 64)
