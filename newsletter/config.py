"""Settings: the only place that reads TOML or the environment.

``load_settings(path)`` reads the file once into frozen, typed objects; everything else takes
them as arguments. Unknown keys and wrong types are refused with a message that names the
key (``smtp.port: expected an integer, got a string``). Secrets never sit in the file: the SMTP
password is read from the environment variable the file names (``smtp.password_env``).

No string may hold a line break or another control character (only the multi-line texts,
``site.postal_address`` and ``web.consent_text``, may have line breaks and tabs): many values
end up in a header or an SMTP command (``sending.unsubscribe_mailto``, ``sender.*``,
``site.name``, ``smtp.ehlo_name``...), and a CR LF there would add a header of its own.

Every key is documented in ``config.example.toml``; a test keeps the two in step.

The sections are ``msgspec`` structs: checked and converted in one pass from the TOML's
mapping, in a few milliseconds with the import (every command starts by reading the config;
pydantic took ~100 ms here). A struct checks its own rules in ``_check``; a ValueError there
names the field (``"port: ..."``) and ``_describe`` joins it to the section's path.
"""

from __future__ import annotations

import os
import re
import tomllib
import unicodedata
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, get_args, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from msgspec import Meta, field

from .cron import cron_trigger
from .durations import EXAMPLES, duration
from .errors import ConfigError
from .locations import CONFIG_ENV, DEFAULT_CONFIG_PATH


def _check_timezone(name: str) -> None:
    """ValueError naming the ``timezone`` field for a zone the zone database does not have."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"timezone: unknown time zone {name!r} (use an Area/City name)") from None


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


def Range(kind: type, **bounds: float) -> Any:
    """``kind`` with msgspec bounds (ge, gt, le, lt, min_length, max_length)."""
    return Annotated[kind, Meta(**bounds)]


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    # Fields whose text may span lines (the others must be one line, see the module doc).
    _multiline: ClassVar[frozenset[str]] = frozenset()
    # Fields not read from the file, and so not checked.
    _unchecked: ClassVar[frozenset[str]] = frozenset()

    def __post_init__(self) -> None:
        for name in self.__struct_fields__:
            if name in self._unchecked:
                continue
            value = getattr(self, name)
            items = value if isinstance(value, tuple) else (value,)
            for item in items:
                if isinstance(item, str):
                    try:
                        _refuse_controls(item, multiline=name in self._multiline)
                    except ValueError as exc:
                        raise ValueError(f"{name}: {exc}") from None
        self._check()

    def _check(self) -> None:
        """The section's own rules; a ValueError says ``"field: message"``."""


class SiteSettings(_Section, frozen=True):
    _multiline: ClassVar[frozenset[str]] = frozenset({"postal_address"})

    name: str = "My Newsletter"
    base_url: str = "http://localhost:8000"
    postal_address: str = ""


class SenderSettings(_Section, frozen=True):
    from_name: str = "My Newsletter"
    from_address: str = "newsletter@example.com"
    reply_to: str = ""
    list_id: str = ""


class DatabaseSettings(_Section, frozen=True):
    url: str = "sqlite:///newsletter.db"


class SmtpSettings(_Section, frozen=True):
    host: str = "localhost"
    port: Range(int, ge=1, le=65535) = 25
    security: Literal["starttls", "tls", "none"] = "none"
    username: str = ""
    password_env: str = "NEWSLETTER_SMTP_PASSWORD"
    verify_certificates: bool = True
    ca_file: str = ""
    timeout: Range(float, gt=0) = 30.0
    concurrency: Range(int, ge=1, le=256) = 8
    max_messages_per_connection: Range(int, ge=1) = 100
    ehlo_name: str = ""
    # Several relays ([[smtp]] as a list, delivery/transports/pool.py): what the pool needs.
    name: Range(str, max_length=100) = ""
    weight: Range(float, ge=0) = 1.0
    from_domains: tuple[str, ...] = ()
    rate_per_second: Range(float, ge=0) = 0.0
    # Filled by load_settings from the environment variable named by password_env (never
    # shown by repr).
    password: str = ""

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{name}={'***' if name == 'password' and self.password else getattr(self, name)!r}"
            for name in self.__struct_fields__
        )
        return f"SmtpSettings({shown})"

    def _check(self) -> None:
        domains = tuple(d.strip().lower().rstrip(".") for d in self.from_domains)
        for domain in domains:
            if not domain or "@" in domain or any(c.isspace() for c in domain):
                raise ValueError(f"from_domains: {domain!r} is not a domain like example.com")
        msgspec.structs.force_setattr(self, "from_domains", domains)

    @property
    def label(self) -> str:
        """The relay's name in reports and messages: ``name``, else host:port."""
        return self.name or f"{self.host}:{self.port}"

    def carries(self, domain: str) -> bool:
        """True if this relay may send mail From ``domain`` (lower case): it names no
        ``from_domains``, or the domain is one of them or under one."""
        wanted = self.from_domains
        return not wanted or any(domain == d or domain.endswith("." + d) for d in wanted)


class SendingSettings(_Section, frozen=True):
    transport: Literal["smtp", "maildir"] = "smtp"
    maildir_path: str = "outbox"
    rate_per_second: Range(float, ge=0) = 0.0
    rate_per_hour: Range(float, ge=0) = 0.0
    batch_size: Range(int, ge=1, le=100_000) = 500
    max_attempts: Range(int, ge=1) = 5
    retry_backoff_seconds: Range(float, ge=0) = 60.0
    lease_seconds: Range(float, gt=0) = 300.0
    feedback_id: str = ""
    unsubscribe_mailto: str = ""
    # The reputation guard (delivery/reputation.py).
    domain_backoff_seconds: Range(float, gt=0) = 60.0
    domain_backoff_max_seconds: Range(float, gt=0) = 3600.0
    per_domain_concurrency: Range(int, ge=1, le=256) = 2
    pause_bounce_rate: Range(float, ge=0, le=1) = 0.05
    pause_complaint_rate: Range(float, ge=0, le=1) = 0.003
    pause_min_attempts: Range(int, ge=1) = 500
    # Several relays: one that cannot be reached, or keeps answering 421, is left out this
    # long, doubling each time in a row up to 16 times.
    relay_down_seconds: Range(float, gt=0) = 60.0

    def _check(self) -> None:
        # It goes into List-Unsubscribe as <mailto:...>; the address itself is checked when
        # an issue is composed (and by `newsletter check`).
        value = self.unsubscribe_mailto.strip()
        if any(c.isspace() or c in '<>"' for c in value):
            raise ValueError(
                f"unsubscribe_mailto: {value!r} may not contain spaces, quotes or angle "
                "brackets (percent-encode them in the ?subject=)"
            )


class FeedSettings(_Section, frozen=True):
    url: str
    name: str = ""
    list: str = ""
    mode: Literal["draft", "send", "digest"] = "draft"
    interval_minutes: Range(float, gt=0) = 15.0
    announce_backlog: bool = False


class FetchSettings(_Section, frozen=True):
    """[fetch]: how feeds are fetched (`post fetch` and the daemon's feed jobs)."""

    # One feed's fetch: every wait is bounded by this, and the body must be complete within
    # it, so a server that trickles its body or never answers is given up after this (the
    # other feeds go on).
    deadline_seconds: Range(float, gt=0, le=3600) = 30.0
    # Feeds `post fetch` polls at the same time.
    concurrency: Range(int, ge=1, le=64) = 4


class DigestSettings(_Section, frozen=True):
    cron: str = "0 9 * * mon"
    timezone: str = "UTC"
    list: str = ""
    subject: str = "{site} digest: {posts}"

    def _check(self) -> None:
        _check_timezone(self.timezone)
        try:
            cron_trigger(self.cron, self.timezone)
        except ValueError as exc:
            raise ValueError(f"cron: {exc}") from None


# A reader's cadence for a list (newsletter.audiences.cadence): each post of a send-mode feed
# as it comes, or a weekly or monthly digest of them.
CADENCES = ("post", "weekly", "monthly")


class CadenceSettings(_Section, frozen=True):
    """[cadence]: when the weekly and monthly digests of readers who chose one are made
    (cron expressions in ``timezone``)."""

    weekly: str = "0 9 * * mon"
    monthly: str = "0 9 1 * *"
    timezone: str = "UTC"

    def _check(self) -> None:
        _check_timezone(self.timezone)
        for name in ("weekly", "monthly"):
            try:
                cron_trigger(getattr(self, name), self.timezone)
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None


class SequenceSettings(_Section, frozen=True):
    """[sequences]: welcome and drip series (newsletter.sequences). ``max_late``: a step due
    longer ago than this when it can go (the sequence was paused, the daemon was down) is
    skipped, not sent late."""

    max_late: str = "1d"

    def max_late_span(self) -> timedelta:
        return duration(self.max_late) or timedelta(days=1)

    def _check(self) -> None:
        if duration(self.max_late) is None:
            raise ValueError(f"max_late: {self.max_late!r} is not a duration ({EXAMPLES})")


class ProviderSettings(_Section, frozen=True):
    """[providers]: bounce and complaint events from sending providers, received by
    `newsletter serve` under /providers/... (newsletter.bounces.providers; docs/bounces.md).
    A provider's endpoint answers only when it is configured here. Secrets come from the
    environment variables named; ``sendgrid_public_key`` (the verification key, base64) and
    ``ses_certificate_file`` (a certificate to trust instead of downloading SNS's signing
    certificate from amazonaws.com) are not secret. Signed events older than
    ``max_age_seconds`` are refused as replays."""

    max_age_seconds: Range(int, ge=10) = 300
    ses_topic_arns: tuple[str, ...] = ()
    ses_certificate_file: str = ""
    postmark_username: str = ""
    postmark_password_env: str = "NEWSLETTER_POSTMARK_PASSWORD"
    postmark_path_secret_env: str = "NEWSLETTER_POSTMARK_PATH_SECRET"
    mailgun_signing_key_env: str = "NEWSLETTER_MAILGUN_SIGNING_KEY"
    sendgrid_public_key: str = ""

    def env(self, name: str) -> str:
        variable = getattr(self, name)
        return os.environ.get(variable, "") if variable else ""


class DkimKey(_Section, frozen=True):
    """One more key of [[dkim.keys]] (for RSA + Ed25519 dual signing); ``domain`` defaults to
    [dkim] domain."""

    selector: str = ""
    private_key_file: str = ""
    domain: str = ""


class DkimSettings(_Section, frozen=True):
    """[dkim]: sign every message (newsletter.dkim). ``domain`` should be the From address's
    domain (alignment, DMARC); ``selector`` names the DNS record
    (SELECTOR._domainkey.DOMAIN); ``private_key_file`` from `newsletter dkim keygen`."""

    domain: str = ""
    selector: str = ""
    private_key_file: str = ""
    keys: tuple[DkimKey, ...] = ()

    def all_keys(self) -> list[tuple[str, str, str]]:
        """(domain, selector, key file) of each key configured."""
        found = (
            [(self.domain, self.selector, self.private_key_file)]
            if (self.selector or self.private_key_file)
            else []
        )
        found += [(k.domain or self.domain, k.selector, k.private_key_file) for k in self.keys]
        return found


class ApiSettings(_Section, frozen=True):
    """[api]: the HTTP API under /api/v1 of `newsletter serve` (newsletter.tokens).
    ``requests_per_minute``: each token's limit (429 with Retry-After beyond)."""

    requests_per_minute: Range(int, ge=1) = 600


class WebhookSettings(_Section, frozen=True):
    """[webhooks]: outgoing webhooks (newsletter.webhooks). ``allow_private``: targets on
    loopback or private networks are refused unless true (the API must not be turned against
    the server's own network). ``retry_hours``: how long a failing message is retried before
    its webhook is disabled. ``interval_seconds``: how often `serve` and `run` look for
    messages to deliver."""

    allow_private: bool = False
    timeout_seconds: Range(float, gt=0, le=60) = 10.0
    retry_hours: Range(float, gt=0) = 24.0
    interval_seconds: Range(float, gt=0) = 1.0


class ListSettings(_Section, frozen=True):
    """[lists.NAME]: one list's defaults. ``cadence``: for readers who did not choose one
    ("post", "weekly" or "monthly"). ``timezone``: the hour of readers with no zone of their
    own (`issue schedule --local`); "" is [scheduler] timezone."""

    cadence: Literal["post", "weekly", "monthly"] = "post"
    timezone: str = ""

    def _check(self) -> None:
        if self.timezone:
            _check_timezone(self.timezone)


class WebSettings(_Section, frozen=True):
    _multiline: ClassVar[frozenset[str]] = frozenset({"consent_text"})

    host: str = "127.0.0.1"
    port: Range(int, ge=1, le=65535) = 8000
    # Lists a visitor may join from the subscribe form and the preferences page.
    lists: tuple[str, ...] = ()
    consent_text: str = (
        "Yes, send me the newsletter by email. I can unsubscribe at any time with the link "
        "in every email."
    )
    consent_version: Range(str, min_length=1, max_length=40) = "1"
    confirm_expiry_hours: Range(float, gt=0) = 48.0
    confirm_cooldown_seconds: Range(float, ge=0) = 900.0
    signup_limit_per_ip: Range(int, ge=1) = 10
    signup_limit_per_address: Range(int, ge=1) = 5
    signup_limit_window_seconds: Range(float, gt=0) = 3600.0
    # Per-IP limits count an IPv6 client by its network of this prefix length (a host gets
    # a whole /64); IPv4 clients by their address.
    ipv6_prefix: Range(int, ge=32, le=128) = 64
    secret_env: str = "NEWSLETTER_WEB_SECRET"
    trusted_proxies: tuple[str, ...] = ("127.0.0.1", "::1")
    cors_origins: tuple[str, ...] = ()

    @property
    def secret(self) -> str:
        """The secret that signs form tokens, from the environment variable ``secret_env``
        names ("" if unset; read when needed, like ``BounceSettings.imap_password``)."""
        return os.environ.get(self.secret_env, "") if self.secret_env else ""


class TemplateSettings(_Section, frozen=True):
    dir: str = ""


class BounceSettings(_Section, frozen=True):
    """[bounces]: where bounces arrive, the VERP return path, and the suppression rules.

    The IMAP password is never in the file: see ``imap_password``.
    """

    source: str = ""
    return_path: str = ""
    hard_bounce_limit: Range(int, ge=1) = 1
    soft_bounce_limit: Range(int, ge=1) = 3
    soft_bounce_window_days: Range(int, ge=1) = 30
    complaint_limit: Range(int, ge=1) = 1
    interval_minutes: Range(float, ge=0) = 10.0
    imap_password_env: str = "NEWSLETTER_IMAP_PASSWORD"

    @property
    def imap_password(self) -> str:
        """The IMAP password, from the environment variable ``imap_password_env`` names (read
        when needed, so a password set after the config was loaded is seen)."""
        return os.environ.get(self.imap_password_env, "") if self.imap_password_env else ""

    def _check(self) -> None:
        value = self.return_path.strip()
        if value != self.return_path:
            msgspec.structs.force_setattr(self, "return_path", value)
        if not value:
            return
        local, at, domain = value.rpartition("@")
        if (
            not at
            or not local
            or not domain
            or not value.isascii()
            or any(c in value for c in " \t\r\n<>,;\"'()")
        ):
            raise ValueError(
                f"return_path: {value!r} is not an ASCII address like bounces@example.com"
            )
        if "{token}" in domain or value.count("{token}") > 1 or "{" in local.replace("{token}", ""):
            raise ValueError(
                'return_path: put "{token}" once in the part before the @, as in bounces+{token}@'
            )


class SchedulerSettings(_Section, frozen=True):
    timezone: str = "UTC"
    misfire_grace_seconds: Range(int, ge=1) = 86_400
    dispatch_interval_seconds: Range(float, gt=0) = 5.0
    standby_poll_seconds: Range(float, gt=0) = 5.0

    def _check(self) -> None:
        _check_timezone(self.timezone)


class TrackingSettings(_Section, frozen=True):
    """[tracking]: what engagement is counted (docs/privacy.md says what is kept and why).

    ``clicks``: links in sent issues go through the redirector and are counted per issue and
    link. ``opens``: a 1x1 pixel counts opens (off by default: machines load it, and many
    readers object). ``per_subscriber``: events are tied to the subscriber (segments, the data
    export); off, counts are anonymous. ``retention_days``: after that, an event keeps only its
    issue, link, time and class (who and which message are cleared). A subscriber who chose
    "don't track my clicks" gets plain links whatever is set here.
    """

    clicks: bool = True
    opens: bool = False
    per_subscriber: bool = False
    retention_days: Range(int, ge=1, le=36_500) = 180


class Settings(_Section, frozen=True):
    """All settings; every section has defaults so an empty file is a valid config."""

    # base_dir: a directory on disk; relays: read from [[smtp]], each checked as a relay.
    _unchecked: ClassVar[frozenset[str]] = frozenset({"base_dir", "relays"})

    site: SiteSettings = field(default_factory=SiteSettings)
    sender: SenderSettings = field(default_factory=SenderSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    sending: SendingSettings = field(default_factory=SendingSettings)
    feeds: tuple[FeedSettings, ...] = ()
    fetch: FetchSettings = field(default_factory=FetchSettings)
    digest: DigestSettings = field(default_factory=DigestSettings)
    web: WebSettings = field(default_factory=WebSettings)
    templates: TemplateSettings = field(default_factory=TemplateSettings)
    bounces: BounceSettings = field(default_factory=BounceSettings)
    scheduler: SchedulerSettings = field(default_factory=SchedulerSettings)
    tracking: TrackingSettings = field(default_factory=TrackingSettings)
    cadence: CadenceSettings = field(default_factory=CadenceSettings)
    sequences: SequenceSettings = field(default_factory=SequenceSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    dkim: DkimSettings = field(default_factory=DkimSettings)
    providers: ProviderSettings = field(default_factory=ProviderSettings)
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    lists: dict[str, ListSettings] = field(default_factory=dict)
    # [[smtp]] as a list of relays (two or more); ``smtp`` is then the first. Empty: one relay.
    relays: tuple[SmtpSettings, ...] = ()
    # Directory of the config file: relative paths in it are relative to this.
    base_dir: str = "."

    def _check(self) -> None:
        names = [relay.label for relay in self.relays]
        if dup := next((n for n in names if names.count(n) > 1), None):
            raise ValueError(
                f"smtp: two relays are called {dup!r}: give each [[smtp]] its own name"
            )
        if self.relays and not any(relay.weight > 0 for relay in self.relays):
            raise ValueError("smtp: every relay has weight 0: give at least one a weight")
        domain = self.sender.from_address.rpartition("@")[2].strip().lower()
        if domain and not any(relay.carries(domain) for relay in self.smtp_relays()):
            raise ValueError(
                f"smtp: no relay may send mail from {domain} (sender.from_address): add it "
                "to the from_domains of one, or give one no from_domains"
            )

    def smtp_relays(self) -> tuple[SmtpSettings, ...]:
        """Every relay: the [[smtp]] list, or the one [smtp] table."""
        return self.relays or (self.smtp,)

    def smtp_connections(self) -> int:
        """SMTP connections of one sender in all: every relay's ``concurrency``."""
        return sum(relay.concurrency for relay in self.smtp_relays())

    def list_settings(self, name: str | None) -> ListSettings:
        """A list's [lists.NAME] table, or the defaults when it has none."""
        return self.lists.get(name or "", _DEFAULT_LIST)

    def list_timezone(self, name: str | None) -> str:
        """The zone of a list's readers who have none: its own, else [scheduler] timezone."""
        return self.list_settings(name).timezone or self.scheduler.timezone


_DEFAULT_LIST = ListSettings()
_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_FIELD = re.compile(r"^`?(?P<name>[A-Za-z_][A-Za-z0-9_]*)`?: (?P<rest>.*)$", re.DOTALL)
_WRONG_TYPE = re.compile(r"^Expected `(?P<want>[^`]+)`, got `(?P<got>[^`]+)`$")
# msgspec's type names, as a TOML user reads them.
_KINDS = {
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "bool": "true or false",
    "array": "an array",
    "object": "a table",
    "datetime": "a date-time",
    "date": "a date",
    "time": "a time",
}


def _choices(keys: list[str]) -> tuple[object, ...]:
    """The Literal choices of the field at ``keys`` (``["smtp", "security"]``), else ()."""
    kind: object = Settings
    for key in keys:
        if get_origin(kind) is tuple:  # tuple[FeedSettings, ...]: key is an index
            kind = get_args(kind)[0]
        elif isinstance(kind, type) and issubclass(kind, msgspec.Struct):
            kind = {f.name: f.type for f in msgspec.structs.fields(kind)}.get(key)
        else:
            return ()
    return get_args(kind) if get_origin(kind) is Literal else ()


def _plain(msg: str, keys: list[str]) -> str:
    """msgspec's own message, in a TOML user's words for types and choices (bounds stay as
    msgspec says them: ``expected int >= 1``)."""
    if wrong := _WRONG_TYPE.match(msg):
        want = _KINDS.get(wrong["want"], wrong["want"])
        got = "a float" if wrong["got"] == "float" else _KINDS.get(wrong["got"], wrong["got"])
        return f"expected {want}, got {got}"
    if msg.startswith("Invalid enum value ") and (choices := _choices(keys)):
        given = msg.removeprefix("Invalid enum value ")
        *rest, last = (repr(c) for c in choices)
        return f"must be {', '.join(rest)} or {last}, not {given}"
    msg = msg.replace("`", "")
    return msg[:1].lower() + msg[1:]


def _describe(err: msgspec.ValidationError, path: Path) -> str:
    """``path: dotted.key: message`` for msgspec's error (``... - at `$.smtp.port```)."""
    match = _AT.match(str(err))
    assert match is not None  # the pattern matches any text
    msg, where = match["msg"], match["path"] or ""
    keys = [k for k in re.split(r"[.\[\]]+", where) if k]
    if unknown := re.match(r"Object contains unknown field `(.+)`$", msg):
        keys, msg = [*keys, unknown[1]], "unknown key"
    elif missing := re.match(r"Object missing required field `(.+)`$", msg):
        keys, msg = [*keys, missing[1]], "required"
    elif own := _FIELD.match(msg):  # our _check: "field: message"
        keys, msg = [*keys, own["name"]], own["rest"]
    else:  # "Expected `int`, got `str`", "Expected `float` >= 0", "Invalid enum value 'x'"
        msg = _plain(msg, keys)
    key = ".".join(keys) or "(top level)"
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
    for key in ("base_dir", "relays"):  # set by this function, not by the file
        if key in raw:
            raise ConfigError(f"{path}: {key}: unknown key")
    raw = _relays(raw, path)
    for i, smtp in enumerate(raw.get("relays") or [raw.get("smtp")]):
        if isinstance(smtp, dict) and "password" in smtp:
            where = f"smtp[{i}]" if "relays" in raw else "smtp"
            raise ConfigError(f"{path}: {where}.password: unknown key (name an environment "
                              "variable with smtp.password_env)")  # fmt: skip
    try:
        settings = msgspec.convert(
            {**raw, "base_dir": str(path.parent.resolve())}, Settings, strict=True
        )
    except msgspec.ValidationError as exc:
        message = re.sub(r": relays\.(\d+)\.", r": smtp[\1].", _describe(exc, path), count=1)
        raise ConfigError(message.replace(": relays: ", ": smtp: ", 1)) from None
    # A missing password is reported by the SMTP transport, when one is needed, so that
    # commands that do not send (imports, lists) work without the secret.
    relays = tuple(_with_password(relay) for relay in settings.relays)
    smtp = relays[0] if relays else _with_password(settings.smtp)
    return msgspec.structs.replace(settings, smtp=smtp, relays=relays)


def _relays(raw: dict, path: Path) -> dict:
    """``[[smtp]]`` (a list of relays) as ``relays``, with ``smtp`` its first; one [[smtp]]
    is the same as one [smtp] table."""
    smtp = raw.get("smtp")
    if not isinstance(smtp, list):
        return raw
    if not smtp:
        raise ConfigError(f"{path}: smtp: an empty list: give one [smtp] table or [[smtp]] relays")
    if len(smtp) == 1:
        return {**raw, "smtp": smtp[0]}
    rest = {key: value for key, value in raw.items() if key != "smtp"}
    return {**rest, "relays": smtp}  # ``smtp`` becomes the first once they are checked


def _with_password(smtp: SmtpSettings) -> SmtpSettings:
    """``smtp`` with its password read from the variable its ``password_env`` names."""
    password = os.environ.get(smtp.password_env, "") if smtp.password_env else ""
    return msgspec.structs.replace(smtp, password=password)


def database_url(settings: Settings) -> str:
    """The database URL with a relative SQLite path made relative to the config file."""
    url = settings.database.url
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/"):
        rest = url[len(prefix) :]
        if rest and not rest.startswith(":memory:"):
            return prefix + str(Path(settings.base_dir) / rest)
    return url
