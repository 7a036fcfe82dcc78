"""TensorBoard event files of scalars, written without TensorFlow or TensorBoard installed.

An event file is a TFRecord stream of ``Event`` protocol buffers
(TensorBoard's ``event.proto``): each record is

    uint64 length | uint32 masked_crc32c(length) | data | uint32 masked_crc32c(data)

(little-endian; masked_crc(x) = ((crc >> 15) | (crc << 17)) + 0xa282ead8
mod 2^32, crc32c the Castagnoli CRC).  The first event holds
``file_version = "brain.Event:2"``; each scalar is an ``Event`` with
``wall_time`` (field 1, double), ``step`` (2, int64) and ``summary`` (5), a
``Summary`` whose ``value`` (1) has ``tag`` (1, string) and
``simple_value`` (2, float).  Only these fields are written, in the
protocol-buffer wire format (varint keys ``field << 3 | wire type``).

TensorBoard reads the folder as a run (``tensorboard --logdir DIR``); the
tests read the files back with TensorBoard's own ``EventAccumulator``.
"""
from __future__ import annotations

import os
import socket
import struct
import time
from pathlib import Path


def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """The CRC-32C (Castagnoli) of ``data``; crc32c(b"123456789") = 0xE3069283."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(n: int) -> bytes:
    out = bytearray()
    n &= (1 << 64) - 1  # int64 as protobuf writes it (negative: ten bytes)
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(field: int, wire: int) -> bytes:
    return _varint(field << 3 | wire)


def _bytes_field(field: int, data: bytes) -> bytes:
    return _key(field, 2) + _varint(len(data)) + data


def scalar_event(tag: str, value: float, step: int, wall_time: float) -> bytes:
    """An ``Event`` with one scalar ``Summary.Value`` (tag, simple_value)."""
    value_msg = _bytes_field(1, tag.encode()) + _key(2, 5) + struct.pack("<f", float(value))
    summary = _bytes_field(1, value_msg)
    return (_key(1, 1) + struct.pack("<d", wall_time) + _key(2, 0) + _varint(int(step))
            + _bytes_field(5, summary))


def version_event(wall_time: float) -> bytes:
    return _key(1, 1) + struct.pack("<d", wall_time) + _bytes_field(3, b"brain.Event:2")


def record(data: bytes) -> bytes:
    """One TFRecord around ``data``."""
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", masked_crc(length)) + data + struct.pack("<I", masked_crc(data))


class ScalarWriter:
    """Scalars into a new event file in ``logdir`` (created if needed), flushed after every :meth:`write`."""

    def __init__(self, logdir: str | os.PathLike):
        self.logdir = Path(logdir)
        self.logdir.mkdir(parents=True, exist_ok=True)
        now = time.time()
        self.path = self.logdir / f"events.out.tfevents.{int(now)}.{socket.gethostname()}.{os.getpid()}.eoslab"
        self._file = open(self.path, "ab")
        self._file.write(record(version_event(now)))
        self._file.flush()

    def write(self, step: int, scalars: dict[str, float]) -> None:
        now = time.time()
        self._file.write(b"".join(record(scalar_event(tag, v, step, now)) for tag, v in scalars.items()))
        self._file.flush()

    def close(self) -> None:
        self._file.close()
