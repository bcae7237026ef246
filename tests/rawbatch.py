"""Record batches no client would write, built by hand and produced to a partition byte for byte.

The tests of every reader's undecodable-batch fix (the worker's aiokafka one, the sink's and `audit`'s
kafka-python one) use these: a v2 batch whose codec bits name a codec its payload is not in, an unknown
codec id, a bad CRC, or records garbled under a good CRC. `produce_raw` sends one with a bare
ProduceRequest, so no client re-encodes it; the broker stores it as it is.
"""

from __future__ import annotations

import asyncio
import struct
import time

__all__ = ["SNAPPY", "UNKNOWN_CODEC", "batch", "produce_raw"]

SNAPPY = 2
UNKNOWN_CODEC = 7  # Kafka defines 0-4


def batch(
    base_offset: int,
    values: list[bytes],
    *,
    codec: int = 0,
    payload_codec: int = 0,
    bad_crc: bool = False,
    garble_records: bool = False,
    key: bytes = b"k",
) -> bytes:
    """A v2 record batch; `codec` rewrites its codec bits (the payload stays as `payload_codec` wrote it).

    The CRC is recomputed after the rewrite (brokers check it on produce), unless `bad_crc`.
    """
    from aiokafka.record.default_records import DefaultRecordBatchBuilder
    from aiokafka.record.util import calc_crc32c

    builder = DefaultRecordBatchBuilder(
        magic=2, compression_type=payload_codec, is_transactional=0, producer_id=-1, producer_epoch=-1,
        base_sequence=-1, batch_size=1 << 20,
    )  # fmt: skip
    for i, value in enumerate(values):
        builder.append(i, timestamp=int(time.time() * 1000), key=key, value=value, headers=[])
    raw = bytearray(builder.build())
    struct.pack_into(">q", raw, 0, base_offset)
    if garble_records:
        raw[61:70] = b"\xff" * 9  # the first record's length and attributes: not a record any more
    if codec:
        attributes = struct.unpack_from(">h", raw, 21)[0]
        struct.pack_into(">h", raw, 21, (attributes & ~0x07) | codec)
    struct.pack_into(">I", raw, 17, calc_crc32c(bytes(raw[21:])) ^ (1 if bad_crc else 0))  # covers attributes on
    return bytes(raw)


def produce_raw(bootstrap: str, topic: str, partition: int, raw: bytes) -> int:
    """Write a record batch to one partition as it is (no client re-encodes it); its base offset."""
    from aiokafka.client import AIOKafkaClient
    from aiokafka.protocol.produce import ProduceRequest
    from aiokafka.structs import TopicPartition

    async def send() -> int:
        client = AIOKafkaClient(bootstrap_servers=bootstrap)
        await client.bootstrap()
        try:
            client.add_topic(topic)
            await client.force_metadata_update()
            leader = client.cluster.leader_for_partition(TopicPartition(topic, partition))
            response = await client.send(leader, ProduceRequest(None, -1, 30_000, [(topic, [(partition, raw)])]))
            (_, [(_, error, base_offset, *_)]) = response.topics[0]
            assert error == 0, f"broker refused the batch: error {error}"
            return int(base_offset)
        finally:
            await client.close()

    return asyncio.run(send())
