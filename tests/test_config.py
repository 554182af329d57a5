"""Settings: defaults, errors that name the key, secrets from the environment, the example."""

from __future__ import annotations

import tomllib
from pathlib import Path

import msgspec
import pytest

from newsletter.config import Settings, SmtpSettings, database_url, load_settings
from newsletter.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "newsletter.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, ""))
    assert settings.smtp.port == 25
    assert settings.database.url == "sqlite:///newsletter.db"
    assert database_url(settings) == f"sqlite:///{tmp_path.resolve() / 'newsletter.db'}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[smtp]\nport = 'abc'\n", "smtp.port: expected an integer, got a string"),
        ("[smtp]\nport = 0\n", "smtp.port: expected int >= 1"),
        ("[smtp]\npassword = 'x'\n", "smtp.password: unknown key"),
        ("[smtp]\nprot = 25\n", "smtp.prot: unknown key"),
        ("[bogus]\nx = 1\n", "bogus: unknown key"),
        ("[smtp]\nsecurity = 'ssl'\n", "smtp.security: must be 'starttls', 'tls' or 'none'"),
        ("smtp = 3\n", "smtp: expected a table, got an integer"),
        ("[sending]\npause_bounce_rate = 2\n", "sending.pause_bounce_rate: expected float <= 1.0"),
        ("[digest]\ncron = '0 9 * *'\n", "digest.cron: '0 9 * *' needs 5 fields"),
        ("[[feeds]]\nmode = 'draft'\n", "feeds.0.url: required"),
        ("[scheduler]\ntimezone = 'Mars/Olympus'\n", "scheduler.timezone:"),
        ("[smtp\n", "not valid TOML"),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml")


def test_password_comes_from_the_named_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from newsletter.delivery.transports import make_transport

    path = write(
        tmp_path,
        "[smtp]\nhost = '127.0.0.1'\nusername = 'mailer'\npassword_env = 'MY_SMTP_SECRET'\n",
    )
    monkeypatch.delenv("MY_SMTP_SECRET", raising=False)
    unset = load_settings(path)  # commands that do not send need no password
    with pytest.raises(ConfigError, match="MY_SMTP_SECRET"):
        make_transport(unset.smtp, unset.sending, base_dir=tmp_path)
    monkeypatch.setenv("MY_SMTP_SECRET", "s3cret")
    settings = load_settings(path)
    assert settings.smtp.password == "s3cret"
    assert "s3cret" not in repr(settings)


def _keys(model: type, prefix: str = "") -> set[str]:
    keys = set()
    for f in msgspec.structs.fields(model):
        if f.name in model._unchecked or (  # not read from the file
            model is SmtpSettings and f.name == "password"
        ):
            continue
        annotation = f.type
        inner = getattr(annotation, "__args__", (None,))[0]
        if getattr(annotation, "__origin__", None) is dict:  # dict[str, ListSettings]
            keys |= _keys(annotation.__args__[1], f"{prefix}{f.name}.NAME.")
            continue
        if isinstance(annotation, type) and issubclass(annotation, msgspec.Struct):
            keys |= _keys(annotation, f"{prefix}{f.name}.")
        elif isinstance(inner, type) and issubclass(inner, msgspec.Struct):  # tuple[Feed, ...]
            keys |= _keys(inner, f"{prefix}{f.name}.")
        else:
            keys.add(prefix + f.name)
    return keys


def _documented_keys(text: str) -> set[str]:
    """Keys set in the example, including the ones shown commented out (`# key = ...`)."""
    keys, section = set(), ""
    for line in text.splitlines():
        stripped = line.lstrip("# ").strip()
        if stripped.startswith("[") and stripped.endswith("]") and " " not in stripped:
            section = stripped.strip("[]")
        elif ("=" in stripped and not line.startswith("# ")) or (
            line.startswith("# ") and " = " in stripped and stripped.split(" = ")[0].isidentifier()
        ):
            key = stripped.split("=")[0].strip()
            if key.isidentifier():
                keys.add(f"{section}.{key}")
    return keys


def test_example_config_documents_every_key_and_matches_the_defaults() -> None:
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    assert _documented_keys(text) == _keys(Settings)
    example = load_settings(ROOT / "config.example.toml")
    defaults = Settings()
    for section in Settings.__struct_fields__:
        if section in ("base_dir", "feeds"):
            continue
        assert getattr(example, section) == getattr(defaults, section), section
    assert tomllib.loads(text)  # and it is valid TOML
