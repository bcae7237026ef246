"""`gatewatch worker` whose evaluate agent raises, unhandled, on its $FAIL_AT-th message, after queuing its
outputs (the message not acknowledged, its outputs perhaps half sent).

Run as a script by tests/reliability/test_agent_failure.py. It stands for any bug or outage an agent
does not handle (reading an output topic's tail timing out, a bug in the evaluation's plumbing).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from streams.cli.main import main
from streams.worker import agents

_original = agents.Evaluator._evaluate
_seen: list[int] = []


async def _evaluate(self: agents.Evaluator, msg: Any) -> None:
    _seen.append(msg.offset)
    await _original(self, msg)
    if len(_seen) == int(os.environ["FAIL_AT"]):
        raise RuntimeError("injected: an error the agent does not handle")


agents.Evaluator._evaluate = _evaluate  # type: ignore[method-assign]
sys.exit(main(["worker"]))
