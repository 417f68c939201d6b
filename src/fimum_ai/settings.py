"""The one settings object: defaults < config/models.yaml < IMAGE_* env < FIMUM_* env < arguments.

`config/models.yaml` carries the spec's section 5.1 block; the spec's section 5.2 IMAGE_* variables
override single keys of it; every other setting is a FIMUM_* variable (nested keys with `__`, e.g.
FIMUM_IMAGE_GENERATION__HARDWARE__UPSCALE_TILE). `explain()` reports where each value came from.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

DEFAULT_CONFIG_FILE = Path("config/models.yaml")
SCHEDULERS = ("DPMSolverMultistep", "Euler", "EulerAncestral", "LMS", "DDIM", "UniPC")
SchedulerName = Literal["DPMSolverMultistep", "Euler", "EulerAncestral", "LMS", "DDIM", "UniPC"]
Precision = Literal["fp16", "bf16", "fp32"]

# Spec section 5.2 (plus a few of the same family): variable -> key under `image_generation`.
IMAGE_ENV_VARS: dict[str, tuple[str, str]] = {
    "IMAGE_MODEL_BASE_PATH": ("model", "base_path"),
    "IMAGE_MODEL_REFINER_PATH": ("model", "refiner_path"),
    "IMAGE_MODEL_UPSCALER_PATH": ("model", "upscaler_path"),
    "IMAGE_ENABLE_SAFETY_CHECKER": ("model", "safety_checker"),
    "IMAGE_DEVICE": ("hardware", "device"),
    "IMAGE_PRECISION": ("generation", "precision"),
    "IMAGE_MAX_BATCH_SIZE": ("generation", "batch_size"),
    "IMAGE_ENABLE_TORCH_COMPILE": ("generation", "enable_torch_compile"),
    "IMAGE_CPU_OFFLOAD": ("hardware", "offload_to_cpu"),
    "IMAGE_SEQUENTIAL_CPU_OFFLOAD": ("hardware", "sequential_cpu_offload"),
    "IMAGE_ATTENTION": ("hardware", "attention"),
}

_DEVICE_RE = re.compile(r"^(cpu|mps|cuda(:\d+)?)$")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelPaths(_Section):
    base_path: Path = Path("./models/stable-diffusion-xl-base-1.0")
    refiner_path: Path = Path("./models/stable-diffusion-xl-refiner-1.0")
    upscaler_path: Path = Path("./models/stable-diffusion-x4-upscaler")
    safety_checker: bool = True


class GenerationConfig(_Section):
    default_scheduler: SchedulerName = "DPMSolverMultistep"
    default_steps: int = Field(50, ge=20, le=100)
    default_guidance_scale: float = Field(7.5, ge=1.0, le=15.0)
    max_resolution: int = Field(4096, ge=512, le=4096, multiple_of=64)
    batch_size: int = Field(4, ge=1, le=8)
    precision: Precision = "fp16"
    enable_torch_compile: bool = True
    refiner_fraction: float = Field(0.8, gt=0.0, lt=1.0)
    preview_every: int = Field(5, ge=1)
    native_pixels: int = Field(1024 * 1024, ge=256 * 256)


class HardwareConfig(_Section):
    device: str = "cuda"
    offload_to_cpu: bool = True
    sequential_cpu_offload: bool = False
    enable_vae_slicing: bool = True
    enable_vae_tiling: bool = True
    attention: Literal["sdpa", "xformers"] = "sdpa"
    compile_on_cpu: bool = False
    upscale_tile: int = Field(256, ge=64, le=1024, multiple_of=8)
    upscale_tile_overlap: int = Field(32, ge=0, le=256, multiple_of=8)

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if not _DEVICE_RE.match(value):
            raise ValueError("must be one of cpu, cuda, cuda:N, mps")
        return value

    @model_validator(mode="after")
    def _overlap_below_tile(self) -> HardwareConfig:
        if self.upscale_tile_overlap * 2 >= self.upscale_tile:
            raise ValueError("upscale_tile_overlap must be less than half of upscale_tile")
        return self


class CachingConfig(_Section):
    enabled: bool = True
    redis_ttl: int = Field(86400, ge=0)
    filesystem_ttl: int = Field(604800, ge=0)


class SafetyConfig(_Section):
    nsfw_filter: bool = True
    block_threshold: float = Field(0.23, ge=0.0, le=1.0)


class RateLimits(_Section):
    free: int = Field(5, ge=-1)
    pro: int = Field(100, ge=-1)
    enterprise: int = Field(-1, ge=-1)


class StylePreset(_Section):
    description: str = ""
    prompt: str = "{prompt}"
    negative: str = ""
    steps: int | None = Field(None, ge=20, le=100)
    guidance_scale: float | None = Field(None, ge=1.0, le=15.0)
    scheduler: SchedulerName | None = None

    @field_validator("prompt")
    @classmethod
    def _has_placeholder(cls, value: str) -> str:
        if "{prompt}" not in value:
            raise ValueError("must contain the placeholder {prompt}")
        return value


class ImageGenerationConfig(_Section):
    model: ModelPaths = ModelPaths()
    generation: GenerationConfig = GenerationConfig()
    hardware: HardwareConfig = HardwareConfig()
    caching: CachingConfig = CachingConfig()
    safety: SafetyConfig = SafetyConfig()
    rate_limits: RateLimits = RateLimits()
    style_presets: dict[str, StylePreset] = {}


class TierLimits(_Section):
    """One subscription tier. -1 means unlimited (the spec's convention). Images per day of the
    spec's three tiers come from `image_generation.rate_limits` (spec section 5.1); a tier added in
    the config sets `images_per_day` itself."""

    requests_per_minute: int = Field(100, ge=-1)
    research_per_day: int = Field(10, ge=-1)
    images_per_day: int | None = Field(None, ge=-1)


def _default_tiers() -> dict[str, TierLimits]:
    return {
        "free": TierLimits(requests_per_minute=100, research_per_day=10),
        "pro": TierLimits(requests_per_minute=1000, research_per_day=-1),
        "enterprise": TierLimits(requests_per_minute=-1, research_per_day=-1),
    }


class AuthConfig(_Section):
    """One-time codes, tokens and sign-in limits (FIMUM_AUTH__*)."""

    otp_ttl_s: int = Field(600, ge=60, le=3600)
    otp_max_attempts: int = Field(5, ge=1, le=20)
    otp_requests_per_identifier: str = "3/15 minutes"
    otp_requests_per_ip: str = "30/15 minutes"
    access_ttl_s: int = Field(3600, ge=60)
    refresh_ttl_s: int = Field(7 * 86400, ge=300)
    anonymous_requests_per_minute: int = Field(120, ge=-1)
    # The user row (tier, disabled flag) is cached this long per API process.
    user_cache_ttl_s: float = Field(2.0, ge=0.0, le=60.0)
    delivery_attempts: int = Field(4, ge=1, le=10)
    delivery_backoff_s: float = Field(1.0, ge=0.0)

    @field_validator("otp_requests_per_identifier", "otp_requests_per_ip")
    @classmethod
    def _is_rate(cls, value: str) -> str:
        from limits import parse

        try:
            parse(value)
        except ValueError:
            raise ValueError("must be a rate like '3/15 minutes'") from None
        return value


class WebConfig(_Section):
    """The web app (FIMUM_WEB__*)."""

    # Where the built app is served from; None: the package's static/ folder (`make web` builds it).
    static_dir: Path | None = None


OPENROUTER_BASE_URL = "https://openrouter.ai/api/v1"
TextRole = Literal["coding", "vision", "research", "general"]


class TextModel(_Section):
    """One chat model of the catalogue (`text_models:` in config/models.yaml).

    Routing tries a role's models by `priority` (LOWER first: 0 before 1 before 2), then spreads
    requests among equal priorities in proportion to `weight` (smooth weighted round robin)."""

    id: str = Field(min_length=1, description="The upstream (OpenRouter) model id.")
    name: str = ""
    roles: tuple[TextRole, ...] = Field(min_length=1)
    priority: int = Field(1, ge=0)
    weight: float = Field(1.0, gt=0.0)
    context_length: int = Field(ge=1024)
    vision: bool = False
    tools: bool = False
    # The upstream's own limit for this model, kept client-side (OpenRouter's free models: 20/min).
    requests_per_minute: int = Field(20, ge=-1)
    description: str = ""


def _default_text_models() -> list[TextModel]:
    return []


class ChatConfig(_Section):
    """Chat client, router and conversations (FIMUM_CHAT__*). The endpoint itself is
    FIMUM_OPENROUTER_BASE_URL and OPENROUTER_API_KEY (top-level settings)."""

    app_url: str = "https://github.com/fimum-ai/fimum"  # OpenRouter attribution (HTTP-Referer)
    app_title: str = "Fimum AI"  # OpenRouter attribution (X-Title)
    connect_timeout_s: float = Field(10.0, gt=0)
    # No first token (or tool call) within this: the model counts as timed out, the next one is tried.
    first_token_timeout_s: float = Field(30.0, gt=0)
    # Silence between two chunks of a started answer this long ends it with an error.
    read_timeout_s: float = Field(60.0, gt=0)
    max_attempts: int = Field(4, ge=1, le=20)  # models tried for one request
    breaker_failures: int = Field(3, ge=1)  # consecutive failures that open a model's breaker
    breaker_reset_s: float = Field(30.0, gt=0)  # open this long, then one half-open probe
    # Pass OpenRouter's `models` fallback list upstream: None = only when the endpoint is OpenRouter.
    upstream_fallbacks: bool | None = None
    max_document_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    max_attachments: int = Field(8, ge=1, le=32)
    max_message_chars: int = Field(100_000, ge=100)
    # Room kept for the answer when a document is truncated to the model's context.
    answer_reserve_tokens: int = Field(4096, ge=256)


class ResearchConfig(_Section):
    """Deep research (FR-RES-001; FIMUM_RESEARCH__*): the research models run in parallel, then one
    synthesis. `models` empty: the catalogue's `research` role, in the router's order."""

    models: list[str] = []
    max_models: int = Field(4, ge=1, le=8)
    model_timeout_s: float = Field(120.0, gt=0.0)  # each research model on its own
    synthesis_timeout_s: float = Field(180.0, gt=0.0)
    synthesis_model: str | None = None  # None: the router picks among the research models
    max_sources: int = Field(8, ge=0, le=50)  # web search results given to the models
    max_answer_chars: int = Field(12_000, ge=500)  # of each model's answer in the synthesis prompt


class AgentConfig(_Section):
    """The coding agent (FR-CODE-002; FIMUM_AGENT__*): tool-calling rounds and generated images."""

    max_steps: int = Field(6, ge=1, le=20)  # model calls per request (tool rounds + the answer)
    image_width: int = Field(1024, ge=512, le=4096, multiple_of=64)
    image_height: int = Field(1024, ge=512, le=4096, multiple_of=64)
    image_steps: int | None = Field(None, ge=20, le=100)  # None: the style preset's / the default
    image_timeout_s: float = Field(600.0, gt=0.0)
    max_tool_output_chars: int = Field(8_000, ge=500)  # of a tool's result given back to the model
    max_tool_calls: int = Field(12, ge=1, le=100)  # per answer; more are refused (a runaway model)
    max_images: int = Field(4, ge=0, le=16)  # generate_image calls per answer


class SandboxConfig(_Section):
    """The code sandbox (FR-CODE-004; FIMUM_SANDBOX__*): backend, languages and limits per run."""

    backend: Literal["bubblewrap", "docker"] = "bubblewrap"
    bwrap_path: str = "bwrap"
    docker_path: str = "docker"
    docker_image: str = "fimum/sandbox:latest"  # built from infra/docker/sandbox.Dockerfile
    docker_languages: list[str] = ["python", "javascript", "bash", "c", "cpp", "java"]
    docker_cpus: float = Field(1.0, gt=0.0, le=64.0)
    languages: list[str] | None = None  # only these (by id); None: every runtime found
    host_uid: int = Field(65534, ge=1)  # when the server runs as root, bwrap runs as this uid
    seccomp: bool = True  # bubblewrap: deny risky syscalls (chat/sandbox/seccomp.py; needs libseccomp)
    timeout_s: float = Field(10.0, gt=0.0, le=300.0)  # default wall clock per run
    max_timeout_s: float = Field(30.0, gt=0.0, le=600.0)  # the most a request may ask for
    cpu_s: int = Field(10, ge=1, le=600)
    memory_bytes: int = Field(256 << 20, ge=16 << 20)
    address_space_bytes: int = Field(1 << 30, ge=64 << 20)
    big_address_space_bytes: int = Field(8 << 30, ge=256 << 20)
    max_processes: int = Field(64, ge=4, le=4096)
    max_output_bytes: int = Field(64 << 10, ge=1024)
    max_file_bytes: int = Field(16 << 20, ge=1024)
    work_dir_bytes: int = Field(64 << 20, ge=1 << 20)
    max_code_bytes: int = Field(256 << 10, ge=1024, le=1 << 20)
    max_stdin_bytes: int = Field(64 << 10, ge=0, le=1 << 20)
    max_concurrent: int = Field(4, ge=1, le=256)
    max_concurrent_per_user: int = Field(2, ge=1, le=256)  # more at once: 429 sandbox_busy


def config_file_path() -> Path:
    return Path(os.environ.get("FIMUM_CONFIG", str(DEFAULT_CONFIG_FILE)))


def read_config_file(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return data


class _YamlSource(PydanticBaseSettingsSource):
    """config/models.yaml (or FIMUM_CONFIG)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return read_config_file(config_file_path())


class _ImageEnvSource(PydanticBaseSettingsSource):
    """The spec's IMAGE_* variables, each overriding one key of `image_generation`."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        section: dict[str, dict[str, str]] = {}
        for var, (group, key) in IMAGE_ENV_VARS.items():
            if var in os.environ:
                section.setdefault(group, {})[key] = os.environ[var]
        return {"image_generation": section} if section else {}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="FIMUM_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    mode: Literal["embedded", "distributed"] = "embedded"
    data_dir: Path = Path("./data")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    database_url: str | None = None
    redis_url: str | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"
    strict_models: bool = False
    demo_model_path: Path = Path("./models/tiny-sdxl")
    image_generation: ImageGenerationConfig = ImageGenerationConfig()

    # Accounts (issue 4). PostgreSQL tables go to this schema when set (tests isolate runs this way).
    database_schema: str | None = Field(None, pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    redis_prefix: str = "fimum:"
    signup: Literal["open", "invite", "closed"] | None = None  # None: open embedded, invite distributed
    jwt_secret: SecretStr | None = None
    public_url: str | None = None  # shown in e-mails; the login page
    smtp_host: str | None = None
    smtp_port: int | None = Field(None, ge=1, le=65535)  # None: 587 starttls, 465 tls, 25 none
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = "Fimum AI <no-reply@localhost>"
    smtp_tls: Literal["none", "starttls", "tls"] = "starttls"
    smtp_timeout_s: float = Field(10.0, gt=0)
    smpp_host: str | None = None
    smpp_port: int = Field(2775, ge=1, le=65535)
    smpp_system_id: str = ""
    smpp_password: SecretStr | None = None
    smpp_system_type: str = ""
    smpp_source_addr: str = "Fimum"
    smpp_enquire_link_s: float = Field(30.0, gt=0)
    smpp_timeout_s: float = Field(10.0, gt=0)
    modem_device: str | None = None
    modem_baud: int = Field(115200, gt=0)
    modem_timeout_s: float = Field(10.0, gt=0)
    # A running image job whose worker sent no heartbeat for this long is taken as dead and retried.
    worker_lease_s: float = Field(120.0, ge=1.0)
    # How often the retention clean-up (images and prompts older than
    # image_generation.caching.filesystem_ttl) runs: in the embedded server, and in distributed
    # mode's workers (one of them per interval). 0 = never on its own; run `fimum cleanup` instead.
    cleanup_interval_s: float = Field(3600.0, ge=0.0)
    auth: AuthConfig = AuthConfig()
    tiers: dict[str, TierLimits] = Field(default_factory=_default_tiers)
    web: WebConfig = WebConfig()
    sandbox: SandboxConfig = SandboxConfig()
    research: ResearchConfig = ResearchConfig()
    agent: AgentConfig = AgentConfig()
    # Chat (issue 7): the OpenAI-compatible endpoint (OpenRouter, or a local llama.cpp/Ollama/vLLM)
    # and the model catalogue (`text_models:` in config/models.yaml).
    openrouter_base_url: str = OPENROUTER_BASE_URL
    openrouter_api_key: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("openrouter_api_key", "OPENROUTER_API_KEY", "FIMUM_OPENROUTER_API_KEY"),
    )
    chat: ChatConfig = ChatConfig()
    text_models: list[TextModel] = Field(default_factory=_default_text_models)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            _ImageEnvSource(settings_cls),
            _YamlSource(settings_cls),
            file_secret_settings,
        )

    @field_validator("cleanup_interval_s")
    @classmethod
    def _cleanup_interval_is_off_or_sane(cls, value: float) -> float:
        if 0 < value < 1:
            raise ValueError("must be 0 (no scheduled clean-up) or at least 1 second")
        return value

    @field_validator("text_models")
    @classmethod
    def _unique_text_models(cls, value: list[TextModel]) -> list[TextModel]:
        seen: set[str] = set()
        for model in value:
            if model.id in seen:
                raise ValueError(f"the model {model.id!r} is listed twice")
            seen.add(model.id)
        return value

    @property
    def chat_endpoint_configured(self) -> bool:
        """An API key, or a base URL other than OpenRouter's (a local server needs no key)."""
        has_key = self.openrouter_api_key is not None and bool(self.openrouter_api_key.get_secret_value())
        return has_key or self.openrouter_base_url.rstrip("/") != OPENROUTER_BASE_URL

    @property
    def signup_policy(self) -> Literal["open", "invite", "closed"]:
        if self.signup is not None:
            return self.signup
        return "open" if self.mode == "embedded" else "invite"

    @property
    def sqlalchemy_url(self) -> str:
        """FIMUM_DATABASE_URL (postgresql:// gets the psycopg 3 driver), else SQLite under data_dir."""
        url = self.database_url or f"sqlite:///{(self.data_dir / 'fimum.db').as_posix()}"
        for plain in ("postgresql://", "postgres://"):
            if url.startswith(plain):
                return "postgresql+psycopg://" + url[len(plain) :]
        return url

    @model_validator(mode="after")
    def _accounts_config_is_consistent(self) -> Settings:
        if self.mode == "distributed":
            if not self.redis_url:
                raise ValueError("redis_url: distributed mode needs FIMUM_REDIS_URL")
            secret = self.jwt_secret.get_secret_value() if self.jwt_secret else ""
            if len(secret.encode()) < 32:
                raise ValueError(
                    "jwt_secret: distributed mode needs FIMUM_JWT_SECRET of at least 32 bytes "
                    "(every API replica must share it)"
                )
        if self.smtp_user and self.smtp_password is None:
            raise ValueError("smtp_password: FIMUM_SMTP_USER is set, so FIMUM_SMTP_PASSWORD is needed too")
        if "@" not in self.smtp_from:
            raise ValueError(f"smtp_from: {self.smtp_from!r} has no e-mail address")
        for name in ("free", "pro", "enterprise"):
            if name not in self.tiers:
                raise ValueError(f"tiers: the tier {name!r} is missing")
        return self

    @model_validator(mode="after")
    def _models_exist_when_strict(self) -> Settings:
        if self.strict_models:
            paths = self.image_generation.model
            for key in ("base_path", "refiner_path", "upscaler_path"):
                path: Path = getattr(paths, key)
                if not (path / "model_index.json").is_file():
                    raise ValueError(
                        f"image_generation.model.{key}: no diffusers model at {path} "
                        "(FIMUM_STRICT_MODELS is on; install one with `fimum models download`)"
                    )
        return self


class ConfigError(Exception):
    """The configuration is invalid; the message is one line naming the key."""


def load_settings(**overrides: Any) -> Settings:
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError) -> str:
    err = exc.errors(include_url=False)[0]
    loc = ".".join(str(part) for part in err["loc"])
    where = _env_var_for(loc)
    origin = f" (from {where})" if where else ""
    message = str(err["msg"]).removeprefix("Value error, ")
    if loc:
        return f"invalid configuration: {loc}{origin} = {err.get('input')!r}: {message}"
    return f"invalid configuration: {message}"


def _env_var_for(dotted: str) -> str | None:
    for var, (group, key) in IMAGE_ENV_VARS.items():
        if dotted == f"image_generation.{group}.{key}" and var in os.environ:
            return var
    var = "FIMUM_" + dotted.upper().replace(".", "__")
    if var in os.environ:
        return var
    if dotted.startswith("image_generation"):
        return str(config_file_path())
    return None


def explain(settings: Settings) -> list[tuple[str, Any, str]]:
    """Every effective value as (dotted key, value, source) for `fimum config show`."""
    file_path = config_file_path()
    from_file = _flatten(read_config_file(file_path))
    rows = []
    for key, value in _flatten(settings.model_dump(mode="json")).items():
        source = "default"
        image_var = next(
            (
                var
                for var, (group, name) in IMAGE_ENV_VARS.items()
                if key == f"image_generation.{group}.{name}" and var in os.environ
            ),
            None,
        )
        fimum_var = "FIMUM_" + key.upper().replace(".", "__")
        if fimum_var in os.environ:
            source = f"env {fimum_var}"
        elif image_var:
            source = f"env {image_var}"
        elif key in from_file:
            source = str(file_path)
        rows.append((key, value, source))
    return rows


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat
