"""Safelight's configuration: one settings class, loaded on demand.

Nothing here runs at import time. Processes call `load_settings()` in their
lifespan / `on_startup` and pass the result down, so a worker never keeps a
stale ComfyUI URL that was cached when some module was imported.

`DATABASE_URL`, `REDIS_URL` and `COMFYUI_URLS` are read without a prefix (they
are the names every deployment tool already uses); everything else is
`SAFELIGHT_*`. Unset URLs mean "embedded": `safelight dev` starts PostgreSQL,
a Redis-compatible server and the fake ComfyUI and fills them in.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["DEFAULT_NAMESPACE", "ConfigError", "Settings", "load_settings", "redact_userinfo"]

DEFAULT_NAMESPACE = "safelight"

_SECRET_FIELDS = frozenset({"database_url", "redis_url", "dev_token", "s3_secret_key", "metrics_token"})


class ConfigError(Exception):
    """Invalid configuration; the message names each offending variable."""


def _env_name(field: str) -> str:
    alias = Settings.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return f"SAFELIGHT_{field.upper()}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SAFELIGHT_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        populate_by_name=True,
    )

    # Services. None means "embedded" (only `safelight dev` and the tests fill these in).
    database_url: str | None = Field(default=None, validation_alias=AliasChoices("DATABASE_URL"))
    redis_url: str | None = Field(default=None, validation_alias=AliasChoices("REDIS_URL"))
    comfyui_urls: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(), validation_alias=AliasChoices("COMFYUI_URLS")
    )

    # Prefix of every Redis key and channel (arq queue, event bus, heartbeats), so
    # several deployments or test sessions can share one Redis; generations record theirs, so they
    # can share one database too (recovery takes over only its own namespace's).
    namespace: str = Field(default=DEFAULT_NAMESPACE, pattern=r"^[A-Za-z0-9_.-]{1,64}$")

    # Where local state lives: embedded databases, images, the dev lock.
    state_dir: Path = Path(".safelight")
    storage_dir: Path | None = None  # defaults to <state_dir>/images
    template_dirs: Annotated[tuple[Path, ...], NoDecode] = ()

    # HTTP.
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    public_url: str | None = None  # absolute base for image URLs; defaults to http://host:port
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ()

    # Local development: create a default user and hand its token to the browser.
    dev_mode: bool = False
    dev_token: SecretStr | None = None

    # Worker.
    worker_concurrency: int = Field(default=4, ge=1, le=256)
    job_timeout_s: float = Field(default=4 * 3600, gt=0)
    max_attempts: int = Field(default=5, ge=1, le=100)
    retry_base_delay_s: float = Field(default=1.0, ge=0)
    retry_max_delay_s: float = Field(default=60.0, ge=0)
    worker_heartbeat_s: float = Field(default=5.0, gt=0)
    # arq's poll of its queue: how soon a freed slot takes the next queued job (a new job is started
    # on its wake-up at once); each poll is one ZRANGEBYSCORE per worker.
    worker_poll_delay_s: float = Field(default=0.02, ge=0.001, le=5.0)
    comfy_timeout_s: float = Field(default=30.0, gt=0)
    # No ComfyUI backend reachable: a job waits this long (phase BACKEND_WAIT, not an attempt), then FAILED.
    backend_wait_s: float = Field(default=600.0, ge=0)
    # Silence while a prompt executes before the worker asks /queue and /history where it is.
    comfy_watchdog_s: float = Field(default=10.0, gt=0)
    catalog_ttl_s: float = Field(default=30.0, ge=0)

    # Per-user limits and input bounds.
    max_active_per_user: int = Field(default=20, ge=1)
    rate_limit_per_minute: int = Field(default=120, ge=1)
    max_batch_size: int = Field(default=8, ge=1, le=64)
    max_pixels: int = Field(default=2048 * 2048, ge=64 * 64)
    max_steps: int = Field(default=150, ge=1)
    max_prompt_length: int = Field(default=4000, ge=1)
    # Uploaded inputs (POST /inputs): bytes per upload, pixels per image (at most Pillow's own
    # decompression-bomb threshold, 89 M, which would answer first), uploads per owner per hour.
    max_input_bytes: int = Field(default=25 * 1024 * 1024, ge=1024)
    max_input_pixels: int = Field(default=4096 * 4096, ge=64 * 64, le=8192 * 8192)
    max_input_uploads_per_hour: int = Field(default=200, ge=1)
    # One output file fetched from ComfyUI (an image, a video, ...): larger ones fail the generation, unstored.
    max_output_bytes: int = Field(default=512 * 1024 * 1024, ge=1024)
    graphql_max_depth: int = Field(default=12, ge=2)

    # What one request may cost the API (graph/guards.py, graph/request_json.py, graph/documents.py).
    max_body_bytes: int = Field(default=1_000_000, ge=1024)
    max_json_depth: int = Field(default=32, ge=4, le=500)
    graphql_max_query_chars: int = Field(default=50_000, ge=1000)
    graphql_max_tokens: int = Field(default=5_000, ge=100)
    graphql_max_aliases: int = Field(default=30, ge=0)
    graphql_max_cost: int = Field(default=10_000, ge=100)
    graphql_cache_chars: int = Field(default=1_000_000, ge=0)  # query text kept parsed, all entries together
    graphql_introspection: bool = True
    graphiql: bool = True
    # Websockets per API process: all, not yet authenticated, and from one client address.
    ws_init_timeout_s: float = Field(default=10.0, gt=0)
    ws_max_connections: int = Field(default=10_000, ge=1)
    ws_max_unauthenticated: int = Field(default=1_000, ge=1)
    ws_max_per_client: int = Field(default=1_000, ge=1)
    ws_max_unauthenticated_per_client: int = Field(default=50, ge=1)
    ws_max_message_bytes: int = Field(default=1_000_000, ge=1024)
    # Proxies whose X-Forwarded-For is believed (uvicorn's forwarded_allow_ips): per-address caps then see
    # the real client, not the proxy. "*" trusts any peer: only where nothing else can reach the API.
    forwarded_allow_ips: str = "127.0.0.1"
    token_cache_size: int = Field(default=10_000, ge=0)
    # /metrics: with a token, it asks for `Authorization: Bearer <token>`; without, it answers loopback only.
    metrics_token: SecretStr | None = None

    # Node classes an admin's raw workflow may use (SPEC §4); templates are not limited by this.
    raw_node_classes: Annotated[tuple[str, ...], NoDecode] = (
        "CheckpointLoaderSimple",
        "LoraLoader",
        "CLIPTextEncode",
        "EmptyLatentImage",
        "KSampler",
        "VAEDecode",
        "VAEEncode",
        "SaveImage",
        "PreviewImage",
        "EmptyImage",
        "ImageBlur",
        "ImageInvert",
        "ImageScale",
        "LatentUpscale",
    )

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = False
    # uvicorn's line per HTTP request (every preview and thumbnail too); on as well at log level DEBUG.
    access_log: bool = False

    @field_validator("comfyui_urls", "cors_origins", "raw_node_classes", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip().rstrip("/") for part in value.split(",") if part.strip())
        return value

    @field_validator("template_dirs", mode="before")
    @classmethod
    def _split_paths(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(Path(part.strip()) for part in value.split(",") if part.strip())
        return value

    @field_validator("comfyui_urls", "cors_origins")
    @classmethod
    def _check_http_urls(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for url in value:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{url!r} is not an http(s) URL")
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("postgresql://", "postgresql+asyncpg://", "postgres://")):
            raise ValueError("must be a postgresql:// URL")
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis:// URL")
        return value

    @property
    def images_dir(self) -> Path:
        return self.storage_dir or self.state_dir / "images"

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def async_database_url(self) -> str:
        """The DSN for SQLAlchemy's asyncpg dialect."""
        if self.database_url is None:
            raise ConfigError("DATABASE_URL is not set (run `safelight dev` for an embedded database)")
        _, _, rest = self.database_url.partition("://")
        return f"postgresql+asyncpg://{rest}"

    @property
    def required_redis_url(self) -> str:
        if self.redis_url is None:
            raise ConfigError("REDIS_URL is not set (run `safelight dev` for an embedded Redis)")
        return self.redis_url

    def redacted(self) -> dict[str, Any]:
        """The effective settings with secrets masked, for `safelight config` and status."""
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if name in _SECRET_FIELDS and value is not None:
                value = _redact(value)
            elif isinstance(value, Path):
                value = str(value)
            elif isinstance(value, tuple):
                value = [str(v) for v in value]
            out[_env_name(name)] = value
        return out

    def fingerprint(self) -> str:
        """A short hash of what must agree between API and workers.

        A worker whose fingerprint differs from the API's is flagged in system
        status instead of silently serving jobs with different settings.
        """
        shared = {
            "comfyui_urls": sorted(self.comfyui_urls),
            "database": _redact(self.database_url) if self.database_url else None,
            "redis": _redact(self.redis_url) if self.redis_url else None,
            "template_dirs": [str(p) for p in self.template_dirs],
            "storage_dir": str(self.images_dir),
            "namespace": self.namespace,
            "max_attempts": self.max_attempts,
            "job_timeout_s": self.job_timeout_s,
        }
        return hashlib.sha256(json.dumps(shared, sort_keys=True).encode()).hexdigest()[:12]


def _redact(value: Any) -> str:
    if isinstance(value, SecretStr):
        return "**********"
    text = str(value)
    scheme, sep, rest = text.partition("://")
    if not sep:
        return "**********"
    creds, at, host = rest.rpartition("@")
    if not at:
        return text
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if user else f"{scheme}://***@{host}"


_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@'\"<>]+@")


def redact_userinfo(text: str) -> str:
    """`text` with every URL's `user:password@` replaced by `***@` (for logs and messages)."""
    return _USERINFO.sub(r"\1***@", text) if "@" in text else text


def load_settings(**overrides: Any) -> Settings:
    """Read the environment (and `.env`); raise ConfigError naming each bad variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "?"
            name = _env_name(field) if field in Settings.model_fields else field
            lines.append(f"{name}: {error['msg']}")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines)) from None
