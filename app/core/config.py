"""Settings read from the environment (and a `.env` file), with working defaults for SQLite.

`SECRET_KEY` signs the pages' session cookies and CSRF tokens and the members' unsubscribe
links. When none is configured (or the old placeholder `dev-secret-change-me` is), a random key
is generated on first start into `DATA_DIR/secret_key` (mode 0600, the directory 0700 when it is
created) and read from there afterwards, so every process of the instance (web workers, the
scheduler, the command line) signs with the same key and restarts keep links valid. Production
(`ENVIRONMENT=production`) refuses to start without a configured key.
"""
import logging
import os
import secrets
import stat
from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET = "dev-secret-change-me"
"""The placeholder older configurations carry: never used to sign anything."""
SECRET_FILE = "secret_key"

log = logging.getLogger("fitclub.config")


def load_or_create_secret(path: Path) -> str:
    """The key in `path`; created first (random, 0600) when the file does not exist. Two
    processes starting at once agree: the key is written to a private temporary file and
    hard-linked into place, which fails for the second, who then reads the first's key."""
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(48) + "\n")
                out.flush()
                os.fsync(out.fileno())
            try:
                os.link(tmp, path)
                log.warning("SECRET_KEY is not set: generated a random key into %s", path)
            except FileExistsError:
                pass
        finally:
            tmp.unlink(missing_ok=True)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        os.chmod(path, 0o600)
        log.warning("%s was readable by others (%o): made it 0600", path, mode)
    key = path.read_text().strip()
    if len(key) < 32:
        raise ValueError(f"{path} holds no usable key (fewer than 32 characters): delete it to "
                         "have a new one generated, or set SECRET_KEY")
    return key


MIN_SECRET_LENGTH = 32


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    environment: str = "development"
    database_url: str = "sqlite:///var/fitclub.db"
    secret_key: str = ""
    data_dir: Path = Path("var")
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
    """Where people reach this instance: links in emails, the card set-up page's return URLs."""

    member_link_minutes: int = Field(15, ge=1, le=24 * 60)
    """How long a member's emailed sign-in link works (once)."""
    member_code_minutes: int = Field(10, ge=1, le=60)
    """How long a member's SMS sign-in code works (once)."""
    member_session_days: int = Field(30, ge=1, le=400)
    """How long a member stays signed in on a device (the member app's cookie)."""

    stripe_api_base: str = Field(
        "https://api.stripe.com",
        validation_alias=AliasChoices("stripe_api_base", "FITCLUB_STRIPE_API_BASE",
                                      "STRIPE_API_BASE"))
    """Stripe's API (env FITCLUB_STRIPE_API_BASE); tests point it at a local stand-in."""
    stripe_timeout: float = 20.0
    stripe_network_retries: int = Field(
        2, validation_alias=AliasChoices("stripe_network_retries",
                                         "FITCLUB_STRIPE_NETWORK_RETRIES"))
    """The stripe library's own retries of a failed request (same idempotency key)."""

    @field_validator("environment")
    @classmethod
    def _environment_name(cls, value: str) -> str:
        """`Production`, ` prod ` … mean production: the safety checks key on the exact name."""
        value = value.strip().lower()
        return "production" if value in ("prod", "production") else value

    @model_validator(mode="after")
    def _a_real_secret(self) -> "Settings":
        """No key configured (or the placeholder): refused in production, else the instance's
        generated key from DATA_DIR/secret_key. A configured key shorter than 32 characters is
        refused in production (an HMAC key that can be guessed forges sessions)."""
        if self.secret_key.strip() in ("", DEV_SECRET):
            if self.environment == "production":
                raise ValueError("SECRET_KEY must be set to a real secret in production")
            self.secret_key = load_or_create_secret(self.data_dir / SECRET_FILE)
        elif self.environment == "production" and len(self.secret_key.strip()) < MIN_SECRET_LENGTH:
            raise ValueError(f"SECRET_KEY must be at least {MIN_SECRET_LENGTH} characters long in "
                             "production (e.g. python -c 'import secrets; "
                             "print(secrets.token_urlsafe(48))')")
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    return Settings()
