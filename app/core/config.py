"""Settings read from the environment (and a `.env` file), with working defaults for SQLite."""
from functools import lru_cache

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET = "dev-secret-change-me"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    environment: str = "development"
    database_url: str = "sqlite:///var/fitclub.db"
    secret_key: str = DEV_SECRET
    token_ttl_minutes: int = 12 * 60
    session_cookie_secure: bool = False
    db_pool_size: int = 10
    db_max_overflow: int = 20
    sql_echo: bool = False

    scheduler_enabled: bool = False

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    smtp_ssl: bool = False
    smtp_from: str = "fitclub <no-reply@fitclub.local>"
    smtp_timeout: float = 10.0

    sms_gateway_url: str | None = None
    sms_gateway_token: str | None = None
    sms_timeout: float = 10.0

    public_base_url: str = "http://127.0.0.1:8000"

    @model_validator(mode="after")
    def _no_placeholder_secret_in_production(self) -> "Settings":
        if self.environment == "production" and self.secret_key == DEV_SECRET:
            raise ValueError("SECRET_KEY must be set to a real secret in production")
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    return Settings()
