"""`python -m schemas [DIR]`: write the JSON Schemas of the contract (default: schemas/json/)."""

from __future__ import annotations

import sys
from pathlib import Path

from schemas.export import json_schemas, render


def main(argv: list[str]) -> int:
    target = Path(argv[0]) if argv else Path(__file__).parent / "json"
    target.mkdir(parents=True, exist_ok=True)
    for stem, schema in json_schemas().items():
        (target / f"{stem}.json").write_text(render(schema), encoding="utf-8")
        print(target / f"{stem}.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
