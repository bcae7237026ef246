"""Turning pydantic validation errors into contract `Issue`s that never echo the input values.

Field names are input too: a producer can name a field with a pupil reference. The only name in a
location that comes from the input is an unknown field's (the contract has no free-form mappings), so
an unknown field is reported at its parent's location with the length of its name (and the contract
field it is probably a typo of), never with the name itself.
"""

from __future__ import annotations

import difflib
import functools

from pydantic import BaseModel, ValidationError

from schemas.decision import Issue

__all__ = ["issues_from_validation_error", "loc_to_path"]


@functools.cache
def contract_field_names() -> frozenset[str]:
    """Every field name (and alias) of every contract model, nested models included."""
    from schemas.export import MODELS

    names: set[str] = set()
    seen: set[type[BaseModel]] = set()
    todo: list[type[BaseModel]] = list(MODELS.values())
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, info in model.model_fields.items():
            names.add(name)
            if info.alias:
                names.add(info.alias)
            todo.extend(_models_in(info.annotation))
    return frozenset(names)


def _models_in(annotation: object) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in getattr(annotation, "__args__", ()) for m in _models_in(arg)]


def loc_to_path(loc: tuple[int | str, ...]) -> str:
    """`("actor", "ip")` -> `actor.ip`; list positions as `fields[3]`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "$"


def unknown_field_message(name: str) -> str:
    """What to say about an unknown field without repeating its name (it may be personal data)."""
    close = difflib.get_close_matches(name, sorted(contract_field_names()), n=1, cutoff=0.8)
    hint = f"; did you mean '{close[0]}'?" if close else "; check the field name for a typo"
    return f"unknown field (not in the contract), its name {len(name)} characters long{hint}"


def _without_input(message: str, value: object) -> str:
    """The message, unless it quotes the offending value (a validator may): then a message without it.

    The contract's own validators never quote input (tests/schemas/test_no_echo.py holds each to it);
    this catches a validator of a library, or one added later, that does.
    """
    # Strings only, of some length: numbers and short codes turn up in messages as limits ("less than
    # or equal to 100000000") and allowed values, which say nothing about the input.
    if isinstance(value, str) and len(value) >= 6 and value in message:
        return "invalid value (withheld: the message quoted it)"
    return message


def issues_from_validation_error(exc: ValidationError) -> list[Issue]:
    """One Issue per pydantic error, with location, message and type but without the offending input.

    Input values are withheld because they may be pupil references or other personal data, and dead
    letters, decisions and logs must never carry those.
    """
    issues: list[Issue] = []
    for err in exc.errors(include_url=False, include_context=False):
        message = _without_input(err["msg"], err.get("input"))
        loc = tuple(err["loc"])
        if err["type"] == "extra_forbidden" and loc and isinstance(loc[-1], str):
            # Reported at its parent ("$" for the top level), so that the location holds no input.
            message, loc = unknown_field_message(loc[-1]), loc[:-1]
        issues.append(Issue(loc=loc_to_path(loc)[:512], message=message[:4096], type=err["type"]))
    return issues
