"""One typed settings object, read from the environment (and `.env`) when first asked for."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from worker.errors import ConfigurationError

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


class Settings(BaseSettings):
    """Everything the API, the worker and the tools can be told from outside."""

    # Inputs are hidden from errors: API_KEYS and the URLs may carry secrets.
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", hide_input_in_errors=True)

    # URLs may carry passwords and keys grant access: none of them is shown in a repr.
    mongo_url: str | None = Field(default=None, repr=False)
    mongo_db: str = "audience_worker"
    audiences_collection: str = "audiences"
    passports_collection: str = "passports"
    wallets_collection: str = "wallets"

    redis_url: str | None = Field(default=None, repr=False)
    broker_url: str | None = Field(default=None, repr=False, description="defaults to redis_url")
    queue: str = "audiences"

    api_keys: str = Field(default="", repr=False)

    key_prefix: str = "audience"
    cache_ttl_s: int = Field(default=7 * 24 * 3600, ge=60)
    build_ttl_s: int = Field(default=3600, ge=60)

    batch_size: int = Field(default=5000, ge=1, le=100_000)
    in_chunk_size: int = Field(default=1000, ge=1, le=50_000)
    # A run over more passports than this is split into parts any worker can run; 0: never.
    # Under 1,000 the planning and the tasks would cost more than the parts save. Parts cost
    # unequal amounts (an owner range of one-passport owners reads more profiles than one of
    # collectors), so a million passports go in ten: workers that take the next part when
    # they finish one then end within about a part of each other.
    partition_size: int = Field(default=100_000, ge=0)
    # Which collection a rule with a selective owner rule reads first; "auto" counts to choose.
    # Wallets first finds passports by their owner's address as stored: it needs the passport
    # store's owners in lower case (as the importer writes them), hence opt-in.
    owner_first: Literal["auto", "wallets", "passports"] = "passports"
    # "auto" reads the wallets first when at most (passports to scan) / this ratio match.
    owner_first_ratio: int = Field(default=2, ge=1)
    lease_s: int = Field(default=600, ge=10)
    refresh_every_s: int = Field(default=60, ge=1)
    refresh_batch: int = Field(default=500, ge=1)
    max_age_s: int = Field(default=24 * 3600, ge=60)
    activity_refresh_s: int = Field(default=3600, ge=60)
    requeue_after_s: int = Field(default=120, ge=1)
    fresh_s: int = Field(default=5, ge=0)
    settle_ms: int = Field(default=1000, ge=0, le=60_000)
    debounce_s: int = Field(default=5, ge=0, le=3600)
    max_failures: int = Field(default=5, ge=1)
    retry_base_s: int = Field(default=30, ge=1)
    retry_max_s: int = Field(default=3600, ge=1)

    task_soft_time_limit_s: int = Field(default=1500, ge=10)
    task_time_limit_s: int = Field(default=1800, ge=20)

    log_json: bool = False
    log_level: str = "INFO"

    @field_validator("partition_size")
    @classmethod
    def _worth_splitting(cls, value: int) -> int:
        if 0 < value < 1000:
            raise ValueError("must be 0 (never split) or at least 1000")
        return value

    @field_validator("redis_url", "broker_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        # Checked here so that a mistyped URL is named by its setting, never echoed (it may
        # hold a password), rather than failing deep inside the first connection.
        if value is not None and not value.startswith(REDIS_SCHEMES):
            raise ValueError(f"must start with {', '.join(REDIS_SCHEMES)}")
        return value

    @field_validator("api_keys")
    @classmethod
    def _keys_are_pairs(cls, value: str) -> str:
        parse_api_keys(value)
        return value

    def require_mongo_url(self) -> str:
        if not self.mongo_url:
            raise ConfigurationError("MONGO_URL is not set (the embedded demo sets it for you)")
        return self.mongo_url

    def require_redis_url(self) -> str:
        if not self.redis_url:
            raise ConfigurationError("REDIS_URL is not set (the embedded demo sets it for you)")
        return self.redis_url

    def broker(self) -> str:
        return self.broker_url or self.require_redis_url()

    def brand_by_key(self) -> dict[str, str]:
        return parse_api_keys(self.api_keys)


def parse_api_keys(raw: str) -> dict[str, str]:
    """`key:brandId,key:brandId` to a mapping; a malformed pair is a configuration error."""
    pairs: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        key, sep, brand = item.partition(":")
        if not sep or not key.strip() or not brand.strip():
            raise ValueError("API_KEYS must be comma-separated key:brandId pairs")
        pairs[key.strip()] = brand.strip()
    return pairs


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
