"""Settings: the only place that reads TOML or the environment.

``load_settings(path)`` reads the file once into frozen, typed objects; everything else takes
them as arguments. Unknown keys and wrong types are refused with a message that names the
key (``smtp.port: Input should be a valid integer``). Secrets never sit in the file: the SMTP
password is read from the environment variable the file names (``smtp.password_env``).

No string may hold a line break or another control character (only the multi-line texts,
``site.postal_address`` and ``web.consent_text``, may have line breaks and tabs): many values
end up in a header or an SMTP command (``sending.unsubscribe_mailto``, ``sender.*``,
``site.name``, ``smtp.ehlo_name``...), and a CR LF there would add a header of its own.

Every key is documented in ``config.example.toml``; a test keeps the two in step.
"""

from __future__ import annotations

import os
import tomllib
import unicodedata
from pathlib import Path
from typing import Annotated, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .cron import cron_trigger
from .errors import ConfigError
from .locations import CONFIG_ENV, DEFAULT_CONFIG_PATH


def _check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r} (use an Area/City name)") from exc
    return name


TimeZoneName = Annotated[str, AfterValidator(_check_timezone)]


_MULTILINE_ALLOWED = frozenset("\t\n\r")


def _refuse_controls(value: str, *, multiline: bool) -> None:
    """ValueError if ``value`` holds a control character (Unicode Cc), or a line or paragraph
    separator; line breaks and tabs pass when ``multiline``."""
    for ch in value:
        if multiline and ch in _MULTILINE_ALLOWED:
            continue
        if unicodedata.category(ch) in ("Cc", "Zl", "Zp"):
            if ch in "\r\n\x85\u2028\u2029":
                raise ValueError(f"contains a line break (U+{ord(ch):04X}): write it on one line")
            raise ValueError(f"contains the control character U+{ord(ch):04X}: remove it")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    # Fields whose text may span lines (the others must be one line, see the module doc).
    _multiline: ClassVar[frozenset[str]] = frozenset()
    # Fields not read from the file, and so not checked.
    _unchecked: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*")
    @classmethod
    def _one_line(cls, value: object, info: ValidationInfo) -> object:
        if info.field_name in cls._unchecked:
            return value
        multiline = info.field_name in cls._multiline
        if isinstance(value, str):
            _refuse_controls(value, multiline=multiline)
        elif isinstance(value, tuple):
            for item in value:
                if isinstance(item, str):
                    _refuse_controls(item, multiline=multiline)
        return value


class SiteSettings(_Section):
    _multiline: ClassVar[frozenset[str]] = frozenset({"postal_address"})

    name: str = "My Newsletter"
    base_url: str = "http://localhost:8000"
    postal_address: str = ""


class SenderSettings(_Section):
    from_name: str = "My Newsletter"
    from_address: str = "newsletter@example.com"
    reply_to: str = ""
    list_id: str = ""


class DatabaseSettings(_Section):
    url: str = "sqlite:///newsletter.db"


class SmtpSettings(_Section):
    host: str = "localhost"
    port: int = Field(default=25, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "none"
    username: str = ""
    password_env: str = "NEWSLETTER_SMTP_PASSWORD"
    verify_certificates: bool = True
    ca_file: str = ""
    timeout: float = Field(default=30.0, gt=0)
    concurrency: int = Field(default=8, ge=1, le=256)
    max_messages_per_connection: int = Field(default=100, ge=1)
    ehlo_name: str = ""
    # Filled by load_settings from the environment variable named by password_env.
    password: str = Field(default="", exclude=True, repr=False)


class SendingSettings(_Section):
    transport: Literal["smtp", "maildir"] = "smtp"
    maildir_path: str = "outbox"
    rate_per_second: float = Field(default=0.0, ge=0)
    rate_per_hour: float = Field(default=0.0, ge=0)
    batch_size: int = Field(default=500, ge=1, le=100_000)
    max_attempts: int = Field(default=5, ge=1)
    retry_backoff_seconds: float = Field(default=60.0, ge=0)
    lease_seconds: float = Field(default=300.0, gt=0)
    feedback_id: str = ""
    unsubscribe_mailto: str = ""
    # The reputation guard (delivery/reputation.py).
    domain_backoff_seconds: float = Field(default=60.0, gt=0)
    domain_backoff_max_seconds: float = Field(default=3600.0, gt=0)
    per_domain_concurrency: int = Field(default=2, ge=1, le=256)
    pause_bounce_rate: float = Field(default=0.05, ge=0, le=1)
    pause_complaint_rate: float = Field(default=0.003, ge=0, le=1)
    pause_min_attempts: int = Field(default=500, ge=1)

    @field_validator("unsubscribe_mailto")
    @classmethod
    def _mailto_fits_in_angle_brackets(cls, value: str) -> str:
        # It goes into List-Unsubscribe as <mailto:...>; the address itself is checked when
        # an issue is composed (and by `newsletter check`).
        if any(c.isspace() or c in '<>"' for c in value.strip()):
            raise ValueError(
                f"{value.strip()!r} may not contain spaces, quotes or angle brackets "
                "(percent-encode them in the ?subject=)"
            )
        return value


class FeedSettings(_Section):
    url: str
    name: str = ""
    list: str = ""
    mode: Literal["draft", "send", "digest"] = "draft"
    interval_minutes: float = Field(default=15.0, gt=0)
    announce_backlog: bool = False


class FetchSettings(_Section):
    """[fetch]: how feeds are fetched (`post fetch` and the daemon's feed jobs)."""

    # One feed's fetch: every wait is bounded by this, and the body must be complete within
    # it, so a server that trickles its body or never answers is given up after this (the
    # other feeds go on).
    deadline_seconds: float = Field(default=30.0, gt=0, le=3600)
    # Feeds `post fetch` polls at the same time.
    concurrency: int = Field(default=4, ge=1, le=64)


class DigestSettings(_Section):
    cron: str = "0 9 * * mon"
    timezone: TimeZoneName = "UTC"
    list: str = ""
    subject: str = "{site} digest: {posts}"

    @model_validator(mode="after")
    def _cron_parses(self) -> DigestSettings:
        try:
            cron_trigger(self.cron, self.timezone)
        except ValueError as exc:
            raise ValueError(f"cron: {exc}") from None
        return self


class WebSettings(_Section):
    _multiline: ClassVar[frozenset[str]] = frozenset({"consent_text"})

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # Lists a visitor may join from the subscribe form and the preferences page.
    lists: tuple[str, ...] = ()
    consent_text: str = (
        "Yes, send me the newsletter by email. I can unsubscribe at any time with the link "
        "in every email."
    )
    consent_version: str = Field(default="1", min_length=1, max_length=40)
    confirm_expiry_hours: float = Field(default=48.0, gt=0)
    confirm_cooldown_seconds: float = Field(default=900.0, ge=0)
    signup_limit_per_ip: int = Field(default=10, ge=1)
    signup_limit_per_address: int = Field(default=5, ge=1)
    signup_limit_window_seconds: float = Field(default=3600.0, gt=0)
    # Per-IP limits count an IPv6 client by its network of this prefix length (a host gets
    # a whole /64); IPv4 clients by their address.
    ipv6_prefix: int = Field(default=64, ge=32, le=128)
    secret_env: str = "NEWSLETTER_WEB_SECRET"
    trusted_proxies: tuple[str, ...] = ("127.0.0.1", "::1")
    cors_origins: tuple[str, ...] = ()


class TemplateSettings(_Section):
    dir: str = ""


class BounceSettings(_Section):
    """[bounces]: where bounces arrive, the VERP return path, and the suppression rules.

    The IMAP password is never in the file: see ``imap_password``.
    """

    source: str = ""
    return_path: str = ""
    hard_bounce_limit: int = Field(default=1, ge=1)
    soft_bounce_limit: int = Field(default=3, ge=1)
    soft_bounce_window_days: int = Field(default=30, ge=1)
    complaint_limit: int = Field(default=1, ge=1)
    interval_minutes: float = Field(default=10.0, ge=0)
    imap_password_env: str = "NEWSLETTER_IMAP_PASSWORD"

    @property
    def imap_password(self) -> str:
        """The IMAP password, from the environment variable ``imap_password_env`` names (read
        when needed, so a password set after the config was loaded is seen)."""
        return os.environ.get(self.imap_password_env, "") if self.imap_password_env else ""

    @field_validator("return_path")
    @classmethod
    def _return_path_is_an_address(cls, value: str) -> str:
        value = value.strip()
        if not value:
            return value
        local, at, domain = value.rpartition("@")
        if (
            not at
            or not local
            or not domain
            or not value.isascii()
            or any(c in value for c in " \t\r\n<>,;\"'()")
        ):
            raise ValueError(f"{value!r} is not an ASCII address like bounces@example.com")
        if "{token}" in domain or value.count("{token}") > 1 or "{" in local.replace("{token}", ""):
            raise ValueError('put "{token}" once in the part before the @, as in bounces+{token}@')
        return value


class SchedulerSettings(_Section):
    timezone: TimeZoneName = "UTC"
    misfire_grace_seconds: int = Field(default=86_400, ge=1)
    dispatch_interval_seconds: float = Field(default=5.0, gt=0)
    standby_poll_seconds: float = Field(default=5.0, gt=0)


class Settings(_Section):
    """All settings; every section has defaults so an empty file is a valid config."""

    _unchecked: ClassVar[frozenset[str]] = frozenset({"base_dir"})  # a directory on disk

    site: SiteSettings = SiteSettings()
    sender: SenderSettings = SenderSettings()
    database: DatabaseSettings = DatabaseSettings()
    smtp: SmtpSettings = SmtpSettings()
    sending: SendingSettings = SendingSettings()
    feeds: tuple[FeedSettings, ...] = ()
    fetch: FetchSettings = FetchSettings()
    digest: DigestSettings = DigestSettings()
    web: WebSettings = WebSettings()
    templates: TemplateSettings = TemplateSettings()
    bounces: BounceSettings = BounceSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    # Directory of the config file: relative paths in it are relative to this.
    base_dir: str = Field(default=".", exclude=True)


def _describe(err: ValidationError, path: Path) -> str:
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "(top level)"
    msg = first["msg"].removeprefix("Value error, ")  # our own validators' messages
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    return f"{path}: {key}: {msg}"


def resolve_config_path(path: str | os.PathLike[str] | None) -> Path:
    """The config file to use: the given path, else $NEWSLETTER_CONFIG, else ./newsletter.toml."""
    return Path(path or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH)


def load_settings(path: str | os.PathLike[str]) -> Settings:
    """Read and validate the TOML file at ``path``. Raises ConfigError with one line."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"config file {path} not found (run `newsletter init` or pass --config)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    except RecursionError:  # tomllib recurses once per nested array or inline table
        raise ConfigError(f"{path}: config file too deeply nested (not a config)") from None
    return settings_from_dict(raw, path)


def settings_from_dict(raw: dict, path: Path = Path(DEFAULT_CONFIG_PATH)) -> Settings:
    """Validate an already-parsed config mapping (used by load_settings and tests)."""
    if "base_dir" in raw:
        raise ConfigError(f"{path}: base_dir: unknown key")
    try:
        settings = Settings.model_validate({**raw, "base_dir": str(path.parent.resolve())})
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path)) from None
    # A missing password is reported by the SMTP transport, when one is needed, so that
    # commands that do not send (imports, lists) work without the secret.
    password = os.environ.get(settings.smtp.password_env, "") if settings.smtp.password_env else ""
    smtp = settings.smtp.model_copy(update={"password": password})
    return settings.model_copy(update={"smtp": smtp})


def database_url(settings: Settings) -> str:
    """The database URL with a relative SQLite path made relative to the config file."""
    url = settings.database.url
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/"):
        rest = url[len(prefix) :]
        if rest and not rest.startswith(":memory:"):
            return prefix + str(Path(settings.base_dir) / rest)
    return url
