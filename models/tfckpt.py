"""A numpy-only reader of TensorFlow's checkpoint format (the "tensor bundle": ``NAME.index``
+ ``NAME.data-00000-of-00001``), enough to load musicnn's weights without TensorFlow.
Offline (training only), no threads.

``.index`` is a LevelDB-style sorted table (uncompressed blocks, a 48-byte footer) whose
keys are tensor names and whose values are ``BundleEntryProto`` messages (dtype, shape,
shard, offset, size, crc32c); the first key, "", holds the ``BundleHeaderProto``. The
tensors' bytes lie in the data shard at ``offset``, little-endian, row-major.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_BYTES = 48
BLOCK_TRAILER = 5  # compression type (1 byte) + crc32c (4 bytes)
DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 5: np.int16, 6: np.int8, 9: np.int64,
          10: np.bool_, 19: np.float16}


class CheckpointError(ValueError):
    """The files are not a readable TensorFlow checkpoint."""


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    out = shift = 0
    while True:
        if pos >= len(buf):
            raise CheckpointError("truncated varint")
        b = buf[pos]
        pos += 1
        out |= (b & 0x7F) << shift
        if b < 0x80:
            return out, pos
        shift += 7


def _block_entries(block: bytes) -> list[tuple[bytes, bytes]]:
    """The (key, value) pairs of one table block (keys are prefix-compressed)."""
    n_restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    end = len(block) - 4 - 4 * n_restarts
    out, pos, key = [], 0, b""
    while pos < end:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        vlen, pos = _varint(block, pos)
        key = key[:shared] + block[pos:pos + unshared]
        pos += unshared
        out.append((key, block[pos:pos + vlen]))
        pos += vlen
    return out


def _read_block(data: bytes, handle: bytes) -> bytes:
    off, p = _varint(handle, 0)
    size, _ = _varint(handle, p)
    if data[off + size] != 0:
        raise CheckpointError(f"compressed table block (type {data[off + size]}); only uncompressed is supported")
    return data[off:off + size]


def _fields(msg: bytes) -> list[tuple[int, int | bytes]]:
    """Protobuf wire format -> [(field number, int or bytes)]."""
    out, pos = [], 0
    while pos < len(msg):
        tag, pos = _varint(msg, pos)
        num, wire = tag >> 3, tag & 7
        if wire == 0:
            v, pos = _varint(msg, pos)
        elif wire == 1:
            v, pos = struct.unpack_from("<Q", msg, pos)[0], pos + 8
        elif wire == 2:
            n, pos = _varint(msg, pos)
            v, pos = msg[pos:pos + n], pos + n
        elif wire == 5:
            v, pos = struct.unpack_from("<I", msg, pos)[0], pos + 4
        else:
            raise CheckpointError(f"unsupported protobuf wire type {wire}")
        out.append((num, v))
    return out


def _entry(value: bytes) -> dict:
    e = {"dtype": 0, "shape": [], "shard": 0, "offset": 0, "size": 0, "sliced": False}
    for num, v in _fields(value):
        if num == 1:
            e["dtype"] = v
        elif num == 2:
            for dnum, dim in _fields(v):
                if dnum == 2:  # TensorShapeProto.dim
                    e["shape"].append(next((s for n, s in _fields(dim) if n == 1), 0))
        elif num == 3:
            e["shard"] = v
        elif num == 4:
            e["offset"] = v
        elif num == 5:
            e["size"] = v
        elif num == 7:
            e["sliced"] = True
    return e


def read_checkpoint(prefix: str | Path) -> dict[str, np.ndarray]:
    """Every tensor of the checkpoint ``prefix`` (``prefix.index`` and its data shard).

    musicnn's checkpoints are named by a bare folder (``MTT_musicnn/.index``): pass the
    folder with a trailing separator, or the folder itself.
    """
    prefix = str(prefix)
    if Path(prefix).is_dir():
        prefix = str(Path(prefix)) + "/"
    index = Path(prefix + ".index")
    try:
        data = index.read_bytes()
    except OSError as e:
        raise CheckpointError(f"{index}: cannot read ({e.strerror or e})") from e
    if len(data) < FOOTER_BYTES or struct.unpack_from("<Q", data, len(data) - 8)[0] != TABLE_MAGIC:
        raise CheckpointError(f"{index}: not a TensorFlow checkpoint index (bad table magic)")
    footer = data[-FOOTER_BYTES:]
    _, p = _varint(footer, 0)  # metaindex handle: offset, size (unused)
    _, p = _varint(footer, p)
    index_block = _read_block(data, footer[p:])
    entries: dict[str, dict] = {}
    n_shards = 1
    for _, handle in _block_entries(index_block):
        for key, value in _block_entries(_read_block(data, handle)):
            if key == b"":
                n_shards = next((v for n, v in _fields(value) if n == 1), 1)
            else:
                entries[key.decode()] = _entry(value)
    shards: dict[int, bytes] = {}
    out = {}
    for name, e in entries.items():
        if e["sliced"]:
            raise CheckpointError(f"{name}: partitioned (sliced) variables are not supported")
        if e["dtype"] not in DTYPES:
            raise CheckpointError(f"{name}: unsupported dtype enum {e['dtype']}")
        if e["shard"] not in shards:
            path = Path(f"{prefix}.data-{e['shard']:05d}-of-{n_shards:05d}")
            try:
                shards[e["shard"]] = path.read_bytes()
            except OSError as err:
                raise CheckpointError(f"{path}: cannot read ({err.strerror or err})") from err
        raw = shards[e["shard"]][e["offset"]:e["offset"] + e["size"]]
        dt = np.dtype(DTYPES[e["dtype"]]).newbyteorder("<")
        count = int(np.prod(e["shape"])) if e["shape"] else 1
        if len(raw) != count * dt.itemsize:
            raise CheckpointError(f"{name}: {len(raw)} bytes for shape {e['shape']} of {dt}")
        out[name] = np.frombuffer(raw, dt).reshape(e["shape"]).astype(dt.newbyteorder("="))
    return out
