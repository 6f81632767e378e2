"""OPTIONS and Settings are one table: each option is one field of `Settings`, with the option's default
and the type that reading the option gives, and the only other fields are those `resolve` fills itself.
Adding an option without its field, or a field without its option, fails here."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, get_args, get_origin, get_type_hints

from pytest_distill.settings import OPTIONS, Option, Settings

FILLED_BY_RESOLVE = {"rootpath", "model_flag", "configured"}


def read_type(opt: Option) -> Any:
    """The type of the value `resolve` makes of this option: its reader's result, a tuple of them for a
    repeatable or list option (items split, so a reader that gives a tuple gives its items), or None."""
    if opt.action == "store_true":
        return bool
    kind = opt.convert if isinstance(opt.convert, type) else get_type_hints(opt.convert)["return"]
    if isinstance(opt.default, tuple) and opt.each:
        kind = tuple[get_args(kind)[0] if get_origin(kind) is tuple else kind, ...]
    return kind | None if opt.default is None else kind


def admits(hint: Any, value: Any) -> bool:
    """Whether a value is of a field's type (its outer type: the defaults' tuples are empty)."""
    members = get_args(hint) if get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    return isinstance(value, tuple(get_origin(member) or member for member in members))


def test_each_option_is_one_settings_field_and_each_field_but_resolves_own_is_an_option() -> None:
    dests = [opt.dest for opt in OPTIONS]
    fields = {field.name for field in dataclasses.fields(Settings)}
    assert len(set(dests)) == len(dests)
    assert set(dests) <= fields
    assert fields - set(dests) == FILLED_BY_RESOLVE


def test_each_settings_field_has_its_options_default_and_the_type_its_reading_gives() -> None:
    defaults = {field.name: field.default for field in dataclasses.fields(Settings)}
    hints = get_type_hints(Settings)
    for opt in OPTIONS:
        assert defaults[opt.dest] == opt.default, opt.dest
        assert hints[opt.dest] == read_type(opt), opt.dest
        assert admits(hints[opt.dest], opt.default), opt.dest
