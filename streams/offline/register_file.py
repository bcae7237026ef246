"""Reading an agreements register file: a YAML or JSON list of Agreement v1 objects."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from schemas import Agreement, issues_from_validation_error
from streams.exceptions import ConfigError

__all__ = ["load_agreements_file", "sample_register_path"]


def sample_register_path() -> Path:
    """The synthetic sample register shipped with the rules package."""
    import rules

    return Path(rules.__file__).parent / "samples" / "agreements.yaml"


def _json_default(value: Any) -> str:
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    raise TypeError(f"cannot represent {type(value).__name__} in an agreement")


def load_agreements_file(path: Path) -> list[Agreement]:
    """Parse and validate every agreement; raise ConfigError listing every invalid entry at once."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read agreements register: {exc.strerror}") from exc
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'}: {exc}") from exc
    if not isinstance(data, list):
        raise ConfigError(f"{path}: an agreements register must be a list of agreements, got {type(data).__name__}")
    agreements: list[Agreement] = []
    problems: list[str] = []
    seen: set[str] = set()
    for index, item in enumerate(data):
        try:
            # Through JSON so that the strict contract applies exactly as it does on the topic.
            agreement = Agreement.model_validate_json(json.dumps(item, default=_json_default))
        except (ValidationError, TypeError) as exc:
            if isinstance(exc, ValidationError):
                problems += [
                    f"{path}: agreement [{index}]: {i.loc}: {i.message}" for i in issues_from_validation_error(exc)
                ]
            else:
                problems.append(f"{path}: agreement [{index}]: {exc}")
            continue
        if agreement.agreement_id in seen:
            problems.append(f"{path}: agreement [{index}]: duplicate agreement_id {agreement.agreement_id!r}")
        seen.add(agreement.agreement_id)
        agreements.append(agreement)
    if problems:
        raise ConfigError("\n".join(problems))
    return agreements
