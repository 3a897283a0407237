"""Probabilistic counters for per-route traffic: a HyperLogLog of unique client IPs and a
count-min sketch of the hottest paths (the original Heliox Proxy's two sketches).

Plain Python over bytes, so the same code serves SQLite and PostgreSQL; updated by the
record consumer per batch, never on the request path.
"""

from __future__ import annotations

import hashlib
import heapq
import math
from array import array

HLL_PRECISION = 12  # 4,096 one-byte registers: ~1.6% standard error
CMS_WIDTH = 2048
CMS_DEPTH = 4  # overestimates by at most e/width of the total, with probability 1 - e^-depth
TOP_KEYS = 20


def _hash64(value: str) -> int:
    return int.from_bytes(hashlib.blake2b(value.encode(), digest_size=8, salt=b"\0" * 16).digest(), "big")


class HyperLogLog:
    def __init__(self, registers: bytes | None = None) -> None:
        size = 1 << HLL_PRECISION
        self.registers = bytearray(registers) if registers and len(registers) == size else bytearray(size)

    def add(self, value: str) -> None:
        hashed = _hash64(value)
        index = hashed >> (64 - HLL_PRECISION)
        rest = (hashed << HLL_PRECISION) & ((1 << 64) - 1)
        rank = (64 - HLL_PRECISION + 1) if rest == 0 else (64 - rest.bit_length() + 1)
        if rank > self.registers[index]:
            self.registers[index] = rank

    def count(self) -> int:
        size = len(self.registers)
        alpha = 0.7213 / (1 + 1.079 / size)
        estimate = alpha * size * size / sum(2.0 ** -r for r in self.registers)
        zeros = self.registers.count(0)
        if estimate <= 2.5 * size and zeros:
            return round(size * math.log(size / zeros))  # linear counting for small sets
        return round(estimate)


class CountMinSketch:
    def __init__(self, counters: bytes | None = None) -> None:
        self.table = array("Q")
        if counters and len(counters) == CMS_WIDTH * CMS_DEPTH * 8:
            self.table.frombytes(counters)
        else:
            self.table.extend([0] * (CMS_WIDTH * CMS_DEPTH))

    def _cells(self, value: str) -> list[int]:
        # One 32-byte digest gives each of the four rows an independent 64-bit hash.
        digest = hashlib.blake2b(value.encode(), digest_size=8 * CMS_DEPTH).digest()
        return [row * CMS_WIDTH + int.from_bytes(digest[8 * row:8 * row + 8], "big") % CMS_WIDTH
                for row in range(CMS_DEPTH)]

    def add(self, value: str, count: int = 1) -> int:
        cells = self._cells(value)
        for cell in cells:
            self.table[cell] += count
        return min(self.table[cell] for cell in cells)

    def estimate(self, value: str) -> int:
        return min(self.table[cell] for cell in self._cells(value))

    def to_bytes(self) -> bytes:
        return self.table.tobytes()


def merge_top(current: list[list], sketch: CountMinSketch, estimates: dict[str, int]) -> list[list]:
    """The TOP_KEYS heaviest paths ([path, estimate] pairs): the paths just added (with the
    estimates `add` returned) and the current top ones (estimated again)."""
    candidates = dict(estimates)
    for path, _ in current:
        if path not in candidates:
            candidates[path] = sketch.estimate(path)
    return [[path, count] for count, path in heapq.nlargest(
        TOP_KEYS, ((count, path) for path, count in candidates.items()))]
