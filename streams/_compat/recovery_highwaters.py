"""Faust's table recovery reads changelogs up to their true end on brokers that report batch ends.

Faust builds the highwater it recovers to from the broker's end offsets. The embedded Tansu broker
reports a partition's end as the last *batch's* base offset + 1 (tests/streams/test_broker.py pins
this), so recovery would end inside the last batch of a changelog and lose table updates across a
restart. The patch corrects those highwaters with an end-offset probe (streams/transport/endoffsets.py) before
recovery starts, on apps that carry one (`use_end_probe`); other apps recover as Faust does.

Upstream: none filed; the wrong end offset is the broker's (Tansu, tansu-io/tansu), and Faust trusts
it. faust-streaming/faust#597 (highwaters of empty changelog partitions) touches the same code.
"""

# ruff: noqa: SLF001 - the patch has to reach into Faust's recovery service
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from streams._compat._patch import Patch, require_installed

__all__ = ["PATCHES", "EndProbe", "use_end_probe"]

#: Given reported end offsets by topic partition, the true ones.
EndProbe = Callable[[Mapping[Any, int]], Awaitable[dict[Any, int]]]


def use_end_probe(app: Any, probe: EndProbe) -> None:
    """Make Faust's table recovery of `app` correct its highwaters with `probe` (needs the patch)."""
    require_installed(PATCHES)
    app._gatewatch_end_probe = probe


def _probe_the_highwaters(original: Any) -> Any:
    async def _build_highwaters(self: Any, consumer: Any, tps: Any, destination: Any, title: str) -> None:
        await original(self, consumer, tps, destination, title)
        end_probe: EndProbe | None = getattr(self.app, "_gatewatch_end_probe", None)
        if end_probe is None:
            return
        # Faust keeps highwater - 1 (the last offset); -1 means an empty partition.
        reported = {tp: last + 1 for tp, last in destination.items() if last >= 0}
        try:
            true_ends = await asyncio.wait_for(end_probe(reported), timeout=30.0)
        except Exception:
            self.log.exception("End-offset probe failed; recovering to the reported highwaters")
            return
        for tp, end in true_ends.items():
            if end - 1 != destination[tp]:
                self.log.info(
                    "Highwater of %r corrected from %r to %r (broker reports batch ends)", tp, destination[tp], end - 1
                )
                destination[tp] = end - 1

    return _build_highwaters


PATCHES = (
    Patch(
        owner="faust.tables.recovery:Recovery",
        attribute="_build_highwaters",
        build=_probe_the_highwaters,
        upstream="none filed: Tansu reports a batch's base offset + 1 as the end; see faust-streaming/faust#597",
        original_sha256="91b4cc0d3724ae7bfc398e873684fc6f667ef8feb61a3b3314346ef11f2823de",
    ),
)
