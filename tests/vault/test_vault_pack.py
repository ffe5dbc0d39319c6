"""Packs: property-based round trip, and every single-bit flip is detected."""

from __future__ import annotations

import os

import blake3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dingvault.vault import IntegrityError
from dingvault.vault.levels import StorageClass
from dingvault.vault.pack import (
    PackBuilder,
    SegmentCodec,
    check_pack,
    pack_object_key,
    parse_pack_key,
)
from dingvault.vault.streams import PartsReader

CLASS_KEY = bytes(range(32))
ID_KEY = bytes(range(32, 64))
KEYS = {StorageClass.INTERNAL: CLASS_KEY}
IDS = {StorageClass.INTERNAL: ID_KEY}


def build(segments: list[list[bytes]]) -> tuple[bytes, bytes]:
    codec = SegmentCodec()
    b = PackBuilder(StorageClass.INTERNAL, CLASS_KEY, codec, os.urandom(32))
    for seg in segments:
        b.add_segment([(blake3.blake3(d, key=ID_KEY).digest(), 0, d) for d in seg])
    return b.finish()


@settings(max_examples=80, deadline=None)
@given(st.lists(st.lists(st.binary(max_size=2000), min_size=1, max_size=8), min_size=1, max_size=6))
def test_pack_round_trip(segments: list[list[bytes]]) -> None:
    pack_id, data = build(segments)
    header, problems = check_pack(data, KEYS, IDS, SegmentCodec(), what="p", expected_id=pack_id)
    assert problems == []
    assert [len(s.blobs) for s in header.segments] == [len(s) for s in segments]
    flat = [d for seg in segments for d in seg]
    entries = list(header.entries())
    assert [e.length for e in entries] == [len(d) for d in flat]
    assert [e.blob_id for e in entries] == [blake3.blake3(d, key=ID_KEY).digest() for d in flat]


def test_every_single_bit_flip_is_detected() -> None:
    pack_id, data = build([["approval form 合同 ".encode() * 8, b"x"], [os.urandom(64)]])
    codec = SegmentCodec()
    assert check_pack(data, KEYS, IDS, codec, what="p")[1] == []
    undetected = []
    for bit in range(len(data) * 8):
        bad = bytearray(data)
        bad[bit // 8] ^= 1 << (bit % 8)
        # Without the name check: the format itself must notice every flip.
        try:
            _, problems = check_pack(
                bytes(bad), KEYS, IDS, codec, what="p", expected_class=StorageClass.INTERNAL
            )
        except IntegrityError:
            continue
        if not problems:
            undetected.append(bit)
    assert undetected == [], f"{len(undetected)} flips went unnoticed, first at bit {undetected[:5]}"
    assert len(data) * 8 > 2000  # the loop really covered prefix, segments, header and trailer


def test_truncated_pack_is_refused() -> None:
    _, data = build([[b"abc"]])
    for cut in (0, 10, 39, 41, len(data) - 1):
        with pytest.raises(IntegrityError):
            check_pack(data[:cut], KEYS, IDS, SegmentCodec(), what="p")


def test_pack_names_round_trip() -> None:
    pid = os.urandom(32)
    key = pack_object_key(StorageClass.CONFIDENTIAL, pid)
    assert key.startswith("data/confidential/" + pid.hex()[:2] + "/")
    assert parse_pack_key(key) == (StorageClass.CONFIDENTIAL, pid)
    assert parse_pack_key("data/confidential/zz/" + pid.hex()) is None
    assert parse_pack_key("data/secret/" + pid.hex()[:2] + "/" + pid.hex()) is None
    assert parse_pack_key("index/" + pid.hex()) is None


def test_incompressible_segment_is_stored_raw() -> None:
    raw = os.urandom(100_000)
    _, data = build([[raw]])
    # prefix + codec byte + data + GCM tag + header + trailer: no zstd growth on random bytes
    assert len(data) < len(raw) + 200


@settings(max_examples=120, deadline=None)
@given(
    st.lists(st.binary(max_size=300), max_size=8),
    st.lists(st.integers(min_value=1, max_value=400), min_size=1, max_size=20),
)
def test_parts_reader_reads_the_parts_as_one_stream(parts: list[bytes], sizes: list[int]) -> None:
    reader = PartsReader(parts)
    got = []
    for size in sizes:  # reads of any size, then whatever is left
        got.append(reader.read(size))
        assert len(got[-1]) <= size
    got.append(reader.read())
    assert b"".join(got) == b"".join(parts)
    assert reader.read(10) == b"" and reader.read() == b""


def test_parts_reader_hands_whole_parts_over_without_copying() -> None:
    parts = [b"a" * 100, b"b" * 5000, b"", b"c" * 10]
    reader = PartsReader(parts)
    assert reader.read(1 << 20) is parts[0]
    assert reader.read(1000) == b"b" * 1000  # a part larger than the read comes in pieces
    buf = bytearray(8000)
    assert reader.readinto(buf) == 4000 and bytes(buf[:4000]) == b"b" * 4000
    assert reader.read(1 << 20) is parts[3]  # the empty part is skipped, not read as the end
    assert reader.read(1 << 20) == b""


def test_pack_parts_are_the_pack() -> None:
    b = PackBuilder(StorageClass.INTERNAL, CLASS_KEY, SegmentCodec(), os.urandom(32))
    for d in (b"x" * 3000, os.urandom(5000)):
        b.add_segment([(blake3.blake3(d, key=ID_KEY).digest(), 0, d)])
    pack_id, parts, size = b.finish_parts()
    data = PartsReader(parts).read()
    assert len(data) == size
    _header, problems = check_pack(data, KEYS, IDS, SegmentCodec(), what="p", expected_id=pack_id)
    assert problems == []
