"""Option and argument values converted without pydantic.

Typer 0.29 converts every value a command line gives through a pydantic ``TypeAdapter``,
and importing pydantic for that costs about 95 ms of every command's start (more than the
rest of Typer). Our commands take only plain values: text, whole numbers (some with a
minimum or maximum), flags, paths and repeated text options. ``plain_params`` gives each such
parameter a conversion of its own, with Typer's own contract (``typer._coercion.
RuntimeParam``, which keeps the handling of missing and repeated values); any other kind of
parameter keeps Typer's conversion. If a Typer release changes that contract, nothing here
applies and Typer converts as usual (tests/test_startup.py then fails on pydantic being
imported, which says to look here).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError

try:  # Typer's private contract; see the module doc
    from typer._click.core import Context
    from typer._click.exceptions import BadParameter
    from typer._coercion import RuntimeParam
    from typer._param_types import coerce_cli_path
except ImportError:  # pragma: no cover - another Typer: keep its conversion
    RuntimeParam = None  # type: ignore[assignment,misc]

_PLAIN = (str, int, Path, bool)
_TRUE, _FALSE = {"1", "true", "t", "yes", "y", "on"}, {"0", "false", "f", "no", "n", "off"}


def _number(value: Any, info: Any, param: Any, ctx: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        try:
            number = int(str(value).strip())
        except ValueError:
            raise BadParameter(f"{value!r} is not a whole number.", ctx=ctx, param=param) from None
    low, high = info.min, info.max
    if low is not None and number < low:
        if not info.clamp:
            raise BadParameter(f"{number} is less than the minimum {low}.", ctx=ctx, param=param)
        number = low
    if high is not None and number > high:
        if not info.clamp:
            raise BadParameter(f"{number} is more than the maximum {high}.", ctx=ctx, param=param)
        number = high
    return number


def _flag(value: Any, param: Any, ctx: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise BadParameter(f"{value!r} is not a valid boolean.", ctx=ctx, param=param)


def _one(kind: type, value: Any, info: Any, param: Any, ctx: Any) -> Any:
    if kind is bool:
        return _flag(value, param, ctx)
    if kind is int:
        return _number(value, info, param, ctx)
    if kind is Path:  # Typer's own checks (exists, readable, ...), given a Path already
        path = value if isinstance(value, Path) else Path(value)
        return coerce_cli_path(path, info, path_type=Path, param=param, ctx=ctx)
    return value if isinstance(value, str) else str(value)


if RuntimeParam is not None:

    @dataclass(frozen=True)
    class _PlainParam(RuntimeParam):
        kind: type = str
        repeated: bool = False

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            info = self.parameter_info
            if self.repeated:
                return [_one(self.kind, v, info, param, ctx) for v in value]
            return _one(self.kind, value, info, param, ctx)


def _plain_kind(descriptor: Any) -> tuple[type, bool] | None:
    """(type, repeated) for a parameter we convert ourselves, else None."""
    annotation, info = descriptor.annotation, descriptor.parameter_info
    repeated = descriptor.is_list
    if repeated:
        args = getattr(annotation, "__args__", ())
        annotation = args[0] if len(args) == 1 else None
    if annotation not in _PLAIN or descriptor.is_choice or descriptor.file_annotation is not None:
        return None
    if getattr(info, "parser", None) is not None or getattr(info, "click_type", None) is not None:
        return None
    if annotation is Path and getattr(info, "path_type", None) not in (None, Path):
        return None
    if annotation is not int and (info.min is not None or info.max is not None):
        return None
    return annotation, repeated


def plain_params(command: Any) -> None:
    """Give every plain parameter of ``command`` (and of its subcommands) our conversion."""
    if RuntimeParam is None:
        return
    params = list(getattr(command, "params", ()))
    with contextlib.suppress(Exception):  # --help: made once per command, on first use
        params.append(command.get_help_option(Context(command)))
    for param in params:
        descriptor = getattr(param, "type_descriptor", None)
        if descriptor is None or getattr(param, "_runtime_param", "absent") is not None:
            continue
        plain = _plain_kind(descriptor)
        if plain is not None:
            param._runtime_param = _PlainParam(
                parameter_info=descriptor.parameter_info,
                annotation=descriptor.annotation,
                kind=plain[0],
                repeated=plain[1],
            )
    for sub in getattr(command, "commands", {}).values():
        plain_params(sub)


def since_date(value: str | None) -> datetime | None:
    """A ``--since`` value: an ISO 8601 date or time (naive means UTC), or None.
    Raises InvalidInputError naming the option."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInputError(f"--since {value!r} is not an ISO 8601 date") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
