"""Messages for the load clients: a header (length, CRC-32) then the payload.

Pure functions on bytes, no sockets (h11's lesson): the checksum lets a client tell a
corrupted echo from a good one, and the length tells it where each message ends.

>>> frame = pack_message(b"hello")
>>> unpack_header(frame[:HEADER.size]) == (5, checksum(b"hello"))
True
"""

import struct
import zlib

HEADER = struct.Struct("!II")  # network byte order: payload length, CRC-32 of the payload


def checksum(payload: bytes) -> int:
    return zlib.crc32(payload)


def pack_message(payload: bytes) -> bytes:
    return HEADER.pack(len(payload), checksum(payload)) + payload


def unpack_header(header: bytes) -> tuple[int, int]:
    """(length, crc) from the first ``HEADER.size`` bytes of a message."""
    return HEADER.unpack(header)


def is_intact(payload: bytes, crc: int) -> bool:
    return checksum(payload) == crc
