"""A dead letter always fits the broker's limit: a poison message cannot stall its partition.

Kafka refuses a record over the topic's max.message.bytes (1 MiB by default); the worker's failed send
then blocks the offset commit, so one oversized dead letter would stop its partition for good.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json

import pytest

from rules import load_engine
from schemas import DeadLetter, DeadLetterReason, MessageRef
from streams.worker.processing import DEAD_LETTER_MAX_BYTES, Processor, make_dead_letter

REF = MessageRef(topic="npd.access.v1", partition=1, offset=7)
NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def processor() -> Processor:
    # The production defaults: 1 MiB events at most, dead letters bounded like the producer's batches.
    return Processor(load_engine(), lambda _id: None, max_message_bytes=MIB, clock=lambda: NOW)


def _check_truncated(dead: DeadLetter, raw: bytes, bound: int) -> None:
    kept = base64.b64decode(dead.value_b64)
    assert len(dead.model_dump_json()) <= bound
    assert dead.truncated is True
    assert raw[: len(kept)] == kept
    assert len(kept) > bound // 2, "as much of the original as fits is kept"
    assert len(raw) == dead.value_length
    assert hashlib.sha256(raw).hexdigest() == dead.value_sha256


def test_a_2_mb_message_gives_a_too_large_dead_letter_within_the_bound(processor: Processor) -> None:
    raw = json.dumps({"schema_version": "1", "event_id": "big", "pad": "x" * (2 * MIB)}).encode()
    outcome = processor.process(raw, b"recipient-7", REF)
    assert outcome.dead_letter is not None
    assert DeadLetterReason.TOO_LARGE == outcome.dead_letter.reason
    _check_truncated(outcome.dead_letter, raw, DEAD_LETTER_MAX_BYTES)
    assert base64.b64encode(b"recipient-7").decode() == outcome.dead_letter.key_b64


def test_a_message_under_the_input_limit_whose_dead_letter_would_not_fit_is_cut_too(processor: Processor) -> None:
    raw = b"{not json " + b"y" * 900_000  # 0.9 MB passes the 1 MiB input limit; base64 makes it 1.2 MB
    outcome = processor.process(raw, None, REF)
    assert outcome.dead_letter is not None
    assert DeadLetterReason.NOT_JSON == outcome.dead_letter.reason
    _check_truncated(outcome.dead_letter, raw, DEAD_LETTER_MAX_BYTES)


def test_a_dead_letter_that_fits_is_kept_whole_and_unmarked() -> None:
    raw = b"{not json"
    dead = make_dead_letter(raw, None, REF, DeadLetterReason.NOT_JSON, [], NOW)
    assert raw == base64.b64decode(dead.value_b64)
    assert (False, None, None) == (dead.truncated, dead.value_length, dead.value_sha256)
    assert "truncated" not in dead.model_dump_json(exclude_defaults=True)


@pytest.mark.parametrize("bound", [4096, 65_536, 300_000])
def test_the_bound_holds_whatever_it_is_set_to(bound: int) -> None:
    raw = bytes(range(256)) * 8192  # 2 MiB of every byte value
    dead = make_dead_letter(raw, b"k" * 100, REF, DeadLetterReason.TOO_LARGE, [], NOW, max_bytes=bound)
    _check_truncated(dead, raw, bound)
