"""Turning pydantic validation errors into contract `Issue`s that never echo the input values.

Field names are input too: a producer can name a field with a pupil reference. An issue's location
names only fields of the contract; an unknown field is reported at its parent's location with the
length of its name (and the contract field it is probably a typo of), never with the name itself.
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
    """`("actor", "ip")` -> `actor.ip`; list positions as `fields[3]`.

    A name that is not a contract field (it came from the input) is written as `<N chars>`.
    """
    known = contract_field_names()
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            name = part if part in known else f"<{len(part)} chars>"
            out += f".{name}" if out else name
    return out or "$"


def unknown_field_message(name: str) -> str:
    """What to say about an unknown field without repeating its name (it may be personal data)."""
    close = difflib.get_close_matches(name, sorted(contract_field_names()), n=1, cutoff=0.8)
    hint = f"; did you mean '{close[0]}'?" if close else "; check the field name for a typo"
    return f"unknown field (not in the contract), its name {len(name)} characters long{hint}"


def issues_from_validation_error(exc: ValidationError) -> list[Issue]:
    """One Issue per pydantic error, with location, message and type but without the offending input.

    Input values are withheld because they may be pupil references or other personal data, and dead
    letters, decisions and logs must never carry those.
    """
    issues: list[Issue] = []
    for err in exc.errors(include_url=False, include_input=False, include_context=False):
        message = err["msg"]
        loc = tuple(err["loc"])
        if err["type"] == "extra_forbidden" and loc and isinstance(loc[-1], str):
            # Reported at its parent ("$" for the top level), so that the location holds no input.
            message, loc = unknown_field_message(loc[-1]), loc[:-1]
        issues.append(Issue(loc=loc_to_path(loc)[:512], message=message[:4096], type=err["type"]))
    return issues
