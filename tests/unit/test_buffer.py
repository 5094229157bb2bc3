"""The collector's disk buffer in one process: order, acknowledgements, reclaiming space, back-pressure, restarts
and the damage a crash leaves at the tail of a segment."""

from __future__ import annotations

import asyncio
import errno
import threading
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord as OtlpLog
from opentelemetry.proto.logs.v1.logs_pb2 import ResourceLogs, ScopeLogs

from adapters.protocols import BackendUnavailable, WriteResult
from collectors.buffer import (
    Batch,
    BatchTooLarge,
    BufferClosed,
    BufferFull,
    BufferLocked,
    DiskBuffer,
)
from collectors.buffer import acklog as acklog_module
from collectors.buffer import disk as disk_module
from collectors.buffer import frames as frames_module
from collectors.codec import encode
from collectors.otlp.receiver import build_otlp_app
from devservers.sample import BASE_NS, identity
from domain.model import LogRecord
from tests.unit.test_buffer_codec import rich_batch

CART = identity("cart")
HEADER = 8  # u32 length, u32 crc


def batch(n: int, lines: int = 3, size: int = 50) -> Batch:
    return Batch(
        f"b{n}", logs=[LogRecord(BASE_NS + n * 1000 + i, f"{n}:{i} ".ljust(size, "."), CART) for i in range(lines)]
    )


def frame_size(b: Batch) -> int:
    return HEADER + len(encode(b))


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.seg"))


def first_seqs(directory: Path) -> list[int]:
    return [int(path.stem) for path in segments(directory)]


async def drain(buffer: DiskBuffer, count: int) -> list[tuple[int, Batch]]:
    return [await asyncio.wait_for(buffer.next(), 10) for _ in range(count)]  # the timeout only guards a hang


async def pending(task: asyncio.Task) -> bool:
    """Whether the task is still waiting after the loop has had every chance to run it."""
    for _ in range(20):
        await asyncio.sleep(0)
    return not task.done()


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    return tmp_path / "buffer"


# ----------------------------------------------------------------------------------------------- order


@pytest.mark.parametrize("memory_bytes", [0, 1 << 20], ids=["from disk", "from memory"])
async def test_a_batch_comes_back_as_it_was_appended(directory: Path, memory_bytes: int) -> None:
    with DiskBuffer(directory, memory_bytes=memory_bytes) as buffer:
        seq = buffer.append(rich_batch())
        ((got_seq, got),) = await drain(buffer, 1)
    assert got_seq == seq
    assert repr(got) == repr(rich_batch())


async def test_batches_are_handed_out_from_memory_up_to_memory_bytes_then_from_disk(directory: Path) -> None:
    """The exporter gets the appended batch itself while the held ones fit in `memory_bytes`: nothing to read or
    decode. The rest comes from disk, equal to what was appended."""
    appended = [batch(n) for n in range(4)]
    with DiskBuffer(directory, memory_bytes=2 * frame_size(appended[0])) as buffer:
        for b in appended:
            buffer.append(b)
        handed = [b for _, b in await drain(buffer, 4)]
        assert [got is sent for got, sent in zip(handed, appended)] == [True, True, False, False]
        assert handed == appended
        buffer.append(appended[0])  # handing out released the memory
        ((_, again),) = await drain(buffer, 1)
        assert again is appended[0]


async def test_batches_are_handed_out_in_order_once_each(directory: Path) -> None:
    with DiskBuffer(directory) as buffer:
        seqs = [buffer.append(batch(n)) for n in range(10)]
        assert seqs == list(range(10))
        handed = await drain(buffer, 10)
        assert [(seq, b.batch_id) for seq, b in handed] == [(n, f"b{n}") for n in range(10)]

        # Nothing was acknowledged, yet nothing is handed out twice in this process: the next call waits.
        waiting = asyncio.ensure_future(buffer.next())
        assert await pending(waiting)
        buffer.append(batch(10))
        seq, got = await asyncio.wait_for(waiting, 10)
        assert (seq, got.batch_id) == (10, "b10")


async def test_appends_from_many_threads_share_fsyncs_and_keep_one_order(directory: Path) -> None:
    with DiskBuffer(directory, segment_bytes=4096) as buffer:
        appended: list[tuple[int, str]] = []
        lock = threading.Lock()

        def producer(worker: int) -> None:
            for n in range(25):
                b = batch(worker * 100 + n)
                seq = buffer.append(b)
                with lock:
                    appended.append((seq, b.batch_id))

        threads = [threading.Thread(target=producer, args=(w,)) for w in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(seq for seq, _ in appended) == list(range(200))
        handed = await drain(buffer, 200)
        assert [(seq, b.batch_id) for seq, b in handed] == sorted(appended)


async def test_append_async_from_many_producers(directory: Path) -> None:
    with DiskBuffer(directory) as buffer:
        # Small batches are written on the loop and share a commit; every tenth is large enough for a thread.
        seqs = await asyncio.gather(
            *(buffer.append_async(batch(n, lines=300 if n % 10 == 0 else 3)) for n in range(30))
        )
        assert sorted(seqs) == list(range(30))
        handed = dict(await drain(buffer, 30))
        assert {seq: b.batch_id for seq, b in handed.items()} == {seq: f"b{n}" for n, seq in enumerate(seqs)}


async def test_close_wakes_a_waiting_reader(directory: Path) -> None:
    buffer = DiskBuffer(directory)
    waiting = asyncio.ensure_future(buffer.next())
    assert await pending(waiting)
    buffer.close()
    with pytest.raises(BufferClosed):
        await asyncio.wait_for(waiting, 10)
    with pytest.raises(BufferClosed):
        buffer.append(batch(0))


def test_a_directory_has_one_owner(directory: Path) -> None:
    with DiskBuffer(directory):
        with pytest.raises(BufferLocked):
            DiskBuffer(directory)
    DiskBuffer(directory).close()  # free again once closed


# ----------------------------------------------------------------------------------------------- acks and space


async def test_acks_reclaim_whole_segments_only(directory: Path) -> None:
    size = frame_size(batch(10))  # batches 10..99 all have frames of this size
    with DiskBuffer(directory, segment_bytes=4 * size) as buffer:  # four frames a segment
        for n in range(12):
            buffer.append(batch(10 + n))
        assert first_seqs(directory) == [0, 4, 8]
        handed = await drain(buffer, 12)

        for seq, _ in handed[:6]:  # the first segment whole, the second half
            buffer.ack(seq)
        assert first_seqs(directory) == [4, 8]
        assert buffer.used_bytes == 6 * size

        for seq, _ in handed[8:]:  # out of order: the active (last) segment is kept even when fully acknowledged
            buffer.ack(seq)
        assert first_seqs(directory) == [4, 8]
        for seq, _ in handed[6:8]:
            buffer.ack(seq)
        assert first_seqs(directory) == [8]
        assert (buffer.used_bytes, buffer.backlog) == (0, 0)

        buffer.append(batch(22))  # rotating away from a fully acknowledged segment deletes it
        buffer.append(batch(23))
        assert first_seqs(directory) == [12]


async def test_acks_are_idempotent_and_checked(directory: Path) -> None:
    with DiskBuffer(directory) as buffer:
        buffer.append(batch(0))
        ((seq, _),) = await drain(buffer, 1)
        buffer.ack(seq)
        buffer.ack(seq)
        with pytest.raises(ValueError):
            buffer.ack(5)


async def test_a_full_buffer_refuses_until_acks_make_room(directory: Path) -> None:
    size = frame_size(batch(0))
    with DiskBuffer(directory, max_bytes=3 * size, segment_bytes=2 * size) as buffer:
        for n in range(3):
            buffer.append(batch(n))
        assert buffer.used_bytes == 3 * size
        with pytest.raises(BufferFull) as refused:
            buffer.append(batch(3))
        assert refused.value.retry_after_s > 0
        assert isinstance(refused.value, BackendUnavailable)  # what the OTLP receiver answers with 503
        assert buffer.backlog == 3  # the refused batch left no trace

        ((seq, _),) = await drain(buffer, 1)
        buffer.ack(seq)
        assert buffer.append(batch(3)) == 3
        with pytest.raises(BufferFull) as refused:
            buffer.append(batch(4))
        assert refused.value.retry_after_s > 0  # now estimated from the ack rate, within its bounds
        assert [b.batch_id for _, b in await drain(buffer, 3)] == ["b1", "b2", "b3"]


def test_a_batch_larger_than_the_whole_buffer_is_refused_for_good(directory: Path) -> None:
    with DiskBuffer(directory, max_bytes=1000) as buffer:
        with pytest.raises(BatchTooLarge):
            buffer.append(batch(0, lines=50))
        assert buffer.used_bytes == 0


class AppendingSink:
    """The least sink in front of a buffer (the collector's own is collectors/pipeline.py)."""

    def __init__(self, buffer: DiskBuffer) -> None:
        self.buffer = buffer

    async def write(self, *, batch_id: str, logs=(), events=(), spans=(), metrics=()) -> WriteResult:  # type: ignore[no-untyped-def]
        await self.buffer.append_async(Batch(batch_id, list(logs), list(events), list(spans), list(metrics)))
        return WriteResult.delivered()


async def test_a_full_buffer_behind_the_otlp_receiver_answers_503_with_retry_after(directory: Path) -> None:
    request = ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                scope_logs=[ScopeLogs(log_records=[OtlpLog(time_unix_nano=BASE_NS, body={"string_value": "hello"})])]
            )
        ]
    ).SerializeToString()
    with DiskBuffer(directory, max_bytes=600) as buffer:
        app = build_otlp_app(AppendingSink(buffer))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://collector") as client:
            headers = {"Content-Type": "application/x-protobuf"}
            accepted = await client.post("/v1/logs", content=request, headers=headers)
            assert accepted.status_code == 200
            ((_, stored),) = await drain(buffer, 1)
            assert [record.body for record in stored.logs] == ["hello"]

            with pytest.raises(BufferFull):  # fill what is left with batches smaller than the export's
                while True:
                    buffer.append(Batch("filler", logs=[LogRecord(BASE_NS, "x", CART)]))
            refused = await client.post("/v1/logs", content=request, headers=headers)
            assert refused.status_code == 503
            assert refused.headers["Retry-After"]


# ----------------------------------------------------------------------------------------------- restarts


async def test_unacknowledged_batches_are_redelivered_after_a_restart(directory: Path) -> None:
    with DiskBuffer(directory, segment_bytes=3 * frame_size(batch(0))) as buffer:
        for n in range(8):
            buffer.append(batch(n))
        for seq, _ in await drain(buffer, 5):  # handed out 0..4; acknowledged out of order: 0, 2, 4
            if seq % 2 == 0:
                buffer.ack(seq)

    with DiskBuffer(directory) as buffer:
        assert (buffer.recovery.unacked, buffer.recovery.truncated_segments) == (5, 0)
        assert [(seq, b.batch_id) for seq, b in await drain(buffer, 5)] == [
            (1, "b1"),
            (3, "b3"),
            (5, "b5"),
            (6, "b6"),
            (7, "b7"),
        ]
        assert buffer.append(batch(8)) == 8


async def test_sequence_numbers_are_never_reused(directory: Path) -> None:
    """Stale ack records must never acknowledge a new batch, even once every segment is gone."""
    with DiskBuffer(directory) as buffer:
        for n in range(3):
            buffer.append(batch(n))
        for seq, _ in await drain(buffer, 3):
            buffer.ack(seq)
    for path in segments(directory):  # as if every segment had been reclaimed
        path.unlink()
    with DiskBuffer(directory) as buffer:
        assert buffer.backlog == 0
        assert buffer.append(batch(3)) == 3
        assert [(seq, b.batch_id) for seq, b in await drain(buffer, 1)] == [(3, "b3")]


async def test_a_torn_ack_log_only_forgets_its_torn_record(directory: Path) -> None:
    with DiskBuffer(directory) as buffer:
        for n in range(3):
            buffer.append(batch(n))
        for seq, _ in await drain(buffer, 2):
            buffer.ack(seq)
    with open(directory / "acks.export.log", "ab") as acks:
        acks.write(b"A\x02\x00\x00")  # half an ack of seq 2, as a crash mid-write leaves it
    with DiskBuffer(directory) as buffer:
        assert [b.batch_id for _, b in await drain(buffer, 1)] == ["b2"]


def damage(kind: str, path: Path, last_frame: int) -> None:
    """What a crash (or a bad disk) can leave at the end of the segment whose last frame is `last_frame` bytes."""
    data = path.read_bytes()
    if kind == "garbage":
        data += b"\xde\xad\xbe\xef" * 10
    elif kind == "zeros":  # a filesystem may show a crashed file's unwritten tail as zeros
        data += bytes(4096)
    elif kind == "cut_payload":
        data = data[: len(data) - last_frame // 2]
    elif kind == "cut_header":
        data = data[: len(data) - last_frame + 5]
    elif kind == "flipped_byte":
        data = data[:-10] + bytes([data[-10] ^ 0x40]) + data[-9:]
    elif kind == "huge_length":
        data = data[: len(data) - last_frame] + b"\xff\xff\xff\x7f" + data[len(data) - last_frame + 4 :]
    path.write_bytes(data)


@pytest.mark.parametrize("kind", ["garbage", "zeros", "cut_payload", "cut_header", "flipped_byte", "huge_length"])
async def test_a_damaged_tail_is_cut_and_counted_and_earlier_batches_survive(directory: Path, kind: str) -> None:
    with DiskBuffer(directory) as buffer:
        for n in range(5):
            buffer.append(batch(n))
        buffer.ack((await drain(buffer, 1))[0][0])
    (path,) = segments(directory)
    damage(kind, path, frame_size(batch(4)))
    damaged_size = path.stat().st_size
    survivors = ["b1", "b2", "b3", "b4"] if kind in ("garbage", "zeros") else ["b1", "b2", "b3"]

    with DiskBuffer(directory) as buffer:
        assert buffer.recovery.truncated_segments == 1
        assert buffer.recovery.truncated_bytes == damaged_size - path.stat().st_size > 0
        assert [b.batch_id for _, b in await drain(buffer, len(survivors))] == survivors
        assert buffer.backlog == len(survivors)
        seq = buffer.append(batch(5))
        assert seq == len(survivors) + 1  # numbering continues after the last whole frame

    with DiskBuffer(directory) as buffer:  # repaired for good: nothing more to cut, nothing lost
        assert buffer.recovery.truncated_segments == 0
        assert [b.batch_id for _, b in await drain(buffer, buffer.backlog)] == [*survivors, "b5"]


async def test_damage_inside_an_older_segment_costs_only_the_rest_of_that_segment(directory: Path) -> None:
    size = frame_size(batch(0))
    with DiskBuffer(directory, segment_bytes=3 * size) as buffer:
        for n in range(6):
            buffer.append(batch(n))
    first = segments(directory)[0]
    data = bytearray(first.read_bytes())
    data[size + HEADER + 3] ^= 0xFF  # corrupt the payload of seq 1
    first.write_bytes(bytes(data))

    with DiskBuffer(directory) as buffer:
        assert buffer.recovery.truncated_segments == 1
        assert [(seq, b.batch_id) for seq, b in await drain(buffer, buffer.backlog)] == [
            (0, "b0"),
            (3, "b3"),
            (4, "b4"),
            (5, "b5"),
        ]
        assert buffer.append(batch(6)) == 6


# ----------------------------------------------------------------------------------------------- marks


async def test_a_producers_mark_travels_with_its_batch_and_outlives_the_deleted_segment(directory: Path) -> None:
    with DiskBuffer(directory, segment_bytes=1) as buffer:  # a segment per batch
        assert buffer.mark("tail") is None
        buffer.append(batch(0), ("tail", b"after b0"))
        buffer.append(batch(1), ("tail", b"after b1"))
        buffer.append(batch(2))
        buffer.append(batch(3), ("otlp", b"other"))
        assert (buffer.mark("tail"), buffer.mark("otlp")) == (b"after b1", b"other")
        for seq, _ in await drain(buffer, 4):
            buffer.ack(seq)
        assert len(segments(directory)) == 1  # the active one, which holds b3
    with DiskBuffer(directory) as buffer:
        assert buffer.backlog == 0
        assert (buffer.mark("tail"), buffer.mark("otlp"), buffer.mark("nobody")) == (b"after b1", b"other", None)
        buffer.append(batch(4), ("tail", b"after b4"))
    with DiskBuffer(directory) as buffer:
        assert buffer.mark("tail") == b"after b4"


async def test_a_mark_is_lost_with_its_torn_batch_and_only_then(directory: Path) -> None:
    """Both are in one frame: a crash keeps both or neither, so the producer resumes where the buffer ends."""
    with DiskBuffer(directory) as buffer:
        buffer.append(batch(0), ("tail", b"after b0"))
        buffer.append(batch(1), ("tail", b"after b1"))
    (path,) = segments(directory)
    damage("cut_payload", path, HEADER + len(encode(batch(1), ("tail", b"after b1"))))
    with DiskBuffer(directory) as buffer:
        assert buffer.recovery.truncated_segments == 1
        assert [b.batch_id for _, b in await drain(buffer, buffer.backlog)] == ["b0"]
        assert buffer.mark("tail") == b"after b0"


async def test_a_damaged_marks_file_is_ignored(directory: Path) -> None:
    with DiskBuffer(directory, segment_bytes=1) as buffer:
        buffer.append(batch(0), ("tail", b"after b0"))
        buffer.append(batch(1))
        for seq, _ in await drain(buffer, 2):
            buffer.ack(seq)
    marks = directory / "marks"
    marks.write_bytes(marks.read_bytes()[:-1])
    with DiskBuffer(directory) as buffer:  # the producer falls back on its own checkpoint
        assert buffer.mark("tail") is None
        assert buffer.append(batch(2)) == 2


# ----------------------------------------------------------------------------------------------- failures


async def test_a_write_that_fails_half_way_leaves_no_trace(directory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk refuses like a full buffer, and the half frame it left is cut back: the next frame follows
    the last whole one with no hole, so nothing after it is lost on reopen."""
    real = disk_module.pwrite_all

    def half_then_enospc(fd: int, data: bytes, offset: int) -> None:
        real(fd, data[: len(data) // 2], offset)
        raise OSError(errno.ENOSPC, "No space left on device")

    with DiskBuffer(directory) as buffer:
        buffer.append(batch(0))
        monkeypatch.setattr(disk_module, "pwrite_all", half_then_enospc)
        with pytest.raises(BufferFull, match="disk is full"):
            buffer.append(batch(1))
        monkeypatch.setattr(disk_module, "pwrite_all", real)
        assert buffer.append(batch(2)) == 1
    with DiskBuffer(directory) as buffer:
        assert buffer.recovery.truncated_segments == 0
        assert [(seq, b.batch_id) for seq, b in await drain(buffer, buffer.backlog)] == [(0, "b0"), (1, "b2")]


def test_after_a_failed_fsync_nothing_more_is_accepted(directory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After fsync fails the kernel may have dropped the pages, and a second fsync can falsely succeed."""

    def eio(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    with DiskBuffer(directory) as buffer:
        monkeypatch.setattr(frames_module, "fdatasync", eio)
        with pytest.raises(OSError):
            buffer.append(batch(0))
        monkeypatch.undo()
        with pytest.raises(BufferClosed, match="fsync"):
            buffer.append(batch(1))


async def test_the_ack_log_stays_small_and_keeps_out_of_order_acks(
    directory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(acklog_module, "COMPACT_BYTES", 13 * 20)
    with DiskBuffer(directory) as buffer:
        for n in range(200):  # as an exporter keeping up would
            buffer.append(batch(n))
            ((seq, _),) = await drain(buffer, 1)
            if seq != 7 and seq % 50 != 1:  # a few never acknowledged: the log must not grow with the acks after them
                buffer.ack(seq)
        assert (
            directory / "acks.export.log"
        ).stat().st_size <= 13 * 21  # the threshold plus the record that crossed it
    with DiskBuffer(directory) as buffer:
        assert [seq for seq, _ in await drain(buffer, buffer.backlog)] == [1, 7, 51, 101, 151]


@pytest.mark.parametrize("fsync", [True, False])
async def test_without_fsync_the_same_survives_a_restart_of_the_process(directory: Path, fsync: bool) -> None:
    """fsync=False gives up only power-loss durability: the page cache still outlives the process."""
    with DiskBuffer(directory, fsync=fsync) as buffer:
        for n in range(4):
            buffer.append(batch(n))
        buffer.ack((await drain(buffer, 1))[0][0])
    with DiskBuffer(directory, fsync=fsync) as buffer:
        assert [b.batch_id for _, b in await drain(buffer, buffer.backlog)] == ["b1", "b2", "b3"]
