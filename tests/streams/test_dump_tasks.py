"""SIGUSR1 on a worker logs what each asyncio task waits on: the whole await chain, outermost first."""

from __future__ import annotations

import asyncio

from structlog.testing import capture_logs

from streams.worker.periodic import dump_tasks


async def _inner(event: asyncio.Event) -> None:
    await event.wait()


async def _outer(event: asyncio.Event) -> None:
    await _inner(event)


def test_each_task_is_logged_with_the_chain_of_awaits_it_is_suspended_in() -> None:
    async def go() -> list[dict[str, object]]:
        event = asyncio.Event()
        task = asyncio.create_task(_outer(event), name="stuck-one")
        await asyncio.sleep(0)
        with capture_logs() as logs:
            dump_tasks()
        event.set()
        await task
        return logs

    logs = asyncio.run(go())

    assert ["tasks_dumped"] == [entry["event"] for entry in logs]
    stuck = next(t for t in logs[0]["tasks"] if t["task"] == "stuck-one")  # type: ignore[attr-defined]
    names = [frame.rsplit(" ", 1)[1] for frame in stuck["awaiting"]]
    assert ["_outer", "_inner", "wait"] == names
