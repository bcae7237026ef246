"""`gatewatch worker` whose first record batch for $FAIL_TOPIC after one for $AFTER_TOPIC is never acknowledged.

Run as a script by tests/reliability/test_send_failure.py. The injected failure is what the producer
reports for a batch the broker refused for good (too large, not authorised): the batch's future fails.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from streams.cli.main import main
from streams.worker import outbox

_original = outbox.Outbox._submit
_failed: list[str] = []
_after: list[str] = []


async def _submit(self: outbox.Outbox, producer: Any, batch: tuple[str, int, Any]) -> asyncio.Future[Any]:
    if batch[0] == os.environ["AFTER_TOPIC"]:
        _after.append(batch[0])  # the events' outputs are flowing (the register's own come first)
    elif batch[0] == os.environ["FAIL_TOPIC"] and _after and not _failed:
        _failed.append(batch[0])  # never sent: the records are lost, as the producer reports
        refused: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        refused.set_exception(RuntimeError("injected: the broker did not acknowledge this batch"))
        if self._on_delivered is not None:
            refused.add_done_callback(self._on_delivered)
        return refused
    return await _original(self, producer, batch)


outbox.Outbox._submit = _submit  # type: ignore[method-assign]
sys.exit(main(["worker"]))
