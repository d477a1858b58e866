"""Messages for a config key pydantic refused: an unknown key names the closest known one, at any depth
(`timout_s` got only "Extra inputs are not permitted": outside review newuser19 #8)."""

from __future__ import annotations

import difflib
import typing
from typing import Any

from pydantic import BaseModel

from hub.config_models import ServerConfig


def key_error_message(model: type[BaseModel], err: Any) -> str:
    """pydantic's message, but an unknown key names the closest known one (as a top-level key does),
    or lists the known ones: `timout_s` got only "Extra inputs are not permitted" (outside review newuser19)."""
    if err.get("type") != "extra_forbidden" or not err["loc"]:
        return err["msg"]
    known = _known_keys(model, err["loc"][:-1])
    if not known:
        return err["msg"]
    key = str(err["loc"][-1])
    lowered = {k.lower(): k for k in known}
    close = difflib.get_close_matches(key.lower(), lowered, n=1, cutoff=0.6)
    if close:
        return f"unknown key {key!r}: did you mean {lowered[close[0]]!r}? (docs/configuration.md lists every key)"
    return f"unknown key {key!r}: the known keys here are " + ", ".join(sorted(known))


def _known_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The field names of the model at `loc` under `model`, through optional, list and dict fields
    (a list index or a dict key in `loc` is stepped over); empty when the path leads to no model."""
    current, key_next = model, False
    for part in loc:
        if key_next or isinstance(part, int):
            key_next = False
            continue
        field = current.model_fields.get(str(part))
        inner = _inner_model(field.annotation) if field is not None else None
        if field is None or inner is None:
            return []
        current, key_next = inner, _is_mapping(field.annotation)
    return [name for name in current.model_fields if not (current is ServerConfig and name == "name")]


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    """The one pydantic model inside `X | None`, `list[X]` or `dict[str, X]`, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _is_mapping(annotation: Any) -> bool:
    """Whether `annotation` is (or optionally is) a dict, whose keys come before its models' fields."""
    return typing.get_origin(annotation) is dict or any(_is_mapping(arg) for arg in typing.get_args(annotation))
