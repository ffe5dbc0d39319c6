"""Packs: property-based round trip, and every single-bit flip is detected."""

from __future__ import annotations

import os

import blake3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dingvault.vault import IntegrityError
from dingvault.vault.levels import StorageClass
from dingvault.vault.pack import PackBuilder, SegmentCodec, check_pack, pack_object_key, parse_pack_key

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
