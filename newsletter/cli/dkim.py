"""`newsletter dkim keygen`: a DKIM key and the DNS record that publishes it."""

from __future__ import annotations

from pathlib import Path

import typer

from ..dkim import keys
from .output import console, err_console

dkim_app = typer.Typer(help="DKIM signing keys.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(dkim_app, name="dkim")


@dkim_app.command("keygen")
def keygen(
    domain: str = typer.Option(..., "--domain", help="The From address's domain."),
    selector: str = typer.Option(..., "--selector", help="The record's name: SELECTOR._domainkey."),
    kind: str = typer.Option("rsa", "--type", help="rsa (2048 bits) or ed25519 (RFC 8463)."),
    out: Path | None = typer.Option(
        None, "--out", help="Where to write the key (default: dkim-SELECTOR.pem), mode 0600."
    ),
) -> None:
    """Write a new private key (never printed) and print the DNS TXT record to publish."""
    if kind not in ("rsa", "ed25519"):
        raise typer.BadParameter("use rsa or ed25519", param_hint="--type")
    path = out or Path(f"dkim-{selector}.pem")
    key = keys.generate(kind)  # type: ignore[arg-type]
    keys.write_private(key, path)
    err_console.print(f"Wrote the private key to {path} (mode 0600). Publish this record:")
    text = keys.record_text(key)  # TXT strings hold 255 characters: a long RSA key takes two
    strings = " ".join(f'"{text[i : i + 255]}"' for i in range(0, len(text), 255))
    console.print(f"{keys.record_name(selector, domain)}. IN TXT {strings}")
    err_console.print("Then in newsletter.toml:")
    err_console.print(f'[dkim]\ndomain = "{domain}"\nselector = "{selector}"\n'
                      f'private_key_file = "{path}"')  # fmt: skip
