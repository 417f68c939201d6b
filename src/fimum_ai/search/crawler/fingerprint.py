"""Near-duplicate pages: a 64-bit SimHash of the text and a store that finds earlier copies.

Two texts whose SimHashes differ in at most `k` bits are copies. Split into k + 1 bands, two such
hashes share at least one whole band (pigeonhole), so candidates are looked up by band and only
those are compared. Stores: in memory with a SQLite file behind it (one crawler process, embedded
mode), or Redis (crawler processes sharing a frontier; the check-and-claim is one Lua script, so
two workers never both keep two copies).

trafilatura has a SimHash too, but at ~2.6 ms per page (a Python loop over 64-slot lists) it cost a
fifth of the per-page budget; this one hashes word 3-shingles with blake2b and counts bits with numpy.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections import defaultdict
from hashlib import blake2b
from pathlib import Path
from typing import Any, Protocol

import numpy as np

_MASK64 = (1 << 64) - 1
_WORD = re.compile(r"\w+", re.UNICODE)
_SHINGLE = 3


def simhash64(text: str) -> int:
    """64-bit SimHash of word 3-shingles (character 4-grams for scripts without spaces), as a
    signed 64-bit int (fits a BIGINT column). 0 for an empty text."""
    words = _WORD.findall(text.lower())
    if words and len(words) * 12 < len(text):  # long runs without spaces: CJK, Thai...
        joined = "".join(words)
        grams = [joined[i : i + 4] for i in range(max(1, len(joined) - 3))]
    else:
        grams = [" ".join(words[i : i + _SHINGLE]) for i in range(max(1, len(words) - _SHINGLE + 1))]
    grams = [g for g in grams if g]
    if not grams:
        return 0
    digests = b"".join(blake2b(g.encode(), digest_size=8).digest() for g in grams)
    bits = np.unpackbits(np.frombuffer(digests, dtype=np.uint8).reshape(-1, 8), axis=1)
    majority = bits.sum(axis=0, dtype=np.int64) * 2 > len(grams)
    value = int.from_bytes(np.packbits(majority).tobytes(), "big")
    return value - (1 << 64) if value >= 1 << 63 else value


def hamming(a: int, b: int) -> int:
    return ((a ^ b) & _MASK64).bit_count()


def bands(fingerprint: int, max_bits: int) -> list[tuple[int, int]]:
    """(band number, band value) for the max_bits + 1 bands of a fingerprint."""
    count = max_bits + 1
    value = fingerprint & _MASK64
    edges = [round(i * 64 / count) for i in range(count + 1)]
    return [(i, (value >> edges[i]) & ((1 << (edges[i + 1] - edges[i])) - 1)) for i in range(count)]


class NearDuplicates(Protocol):
    def claim(self, url: str, fingerprint: int) -> str | None:
        """The URL of an earlier page whose text is a near-copy of this one (this page is then not
        recorded), or None: the page is new and now recorded under `url`."""
        ...

    def close(self) -> None: ...


class MemoryNearDuplicates:
    """Band tables in memory; with `path`, every claimed fingerprint is also kept in SQLite so a
    later crawl still knows what earlier crawls collapsed."""

    def __init__(self, max_bits: int, path: Path | None = None) -> None:
        self.max_bits = max_bits
        self._by_url: dict[str, int] = {}
        self._bands: dict[tuple[int, int], set[str]] = defaultdict(set)
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS fingerprints (url TEXT PRIMARY KEY, fp INTEGER)")
            for url, fp in self._db.execute("SELECT url, fp FROM fingerprints"):
                self._add(url, int(fp))

    def claim(self, url: str, fingerprint: int) -> str | None:
        if fingerprint == 0:
            return None
        with self._lock:
            for key in bands(fingerprint, self.max_bits):
                for other in self._bands.get(key, ()):
                    if other != url and hamming(self._by_url[other], fingerprint) <= self.max_bits:
                        return other
            self._add(url, fingerprint)
            if self._db is not None:
                self._db.execute("INSERT OR REPLACE INTO fingerprints VALUES (?, ?)", (url, fingerprint))
        return None

    def _add(self, url: str, fingerprint: int) -> None:
        old = self._by_url.get(url)
        if old is not None:
            for key in bands(old, self.max_bits):
                self._bands[key].discard(url)
        self._by_url[url] = fingerprint
        for key in bands(fingerprint, self.max_bits):
            self._bands[key].add(url)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


# Members are "<fingerprint>|<url>"; Redis' Lua has 32-bit bit operations, so the two halves
# are compared separately.
_CLAIM_SCRIPT = """
local function popcount(x)
  local c = 0
  while x ~= 0 do x = bit.band(x, x - 1); c = c + 1 end
  return c
end
local hi, lo, url, maxbits = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
for _, key in ipairs(KEYS) do
  for _, member in ipairs(redis.call('SMEMBERS', key)) do
    local sep1 = string.find(member, '|', 1, true)
    local sep2 = string.find(member, '|', sep1 + 1, true)
    local other = string.sub(member, sep2 + 1)
    if other ~= url then
      local ohi = tonumber(string.sub(member, 1, sep1 - 1))
      local olo = tonumber(string.sub(member, sep1 + 1, sep2 - 1))
      local d = popcount(bit.bxor(bit.tobit(ohi), bit.tobit(hi)))
      d = d + popcount(bit.bxor(bit.tobit(olo), bit.tobit(lo)))
      if d <= maxbits then return other end
    end
  end
end
local member = ARGV[1] .. '|' .. ARGV[2] .. '|' .. url
for _, key in ipairs(KEYS) do redis.call('SADD', key, member) end
return false
"""


class RedisNearDuplicates:
    """The band tables in Redis, shared by every crawler process (`{prefix}crawler:simhash:*`)."""

    def __init__(self, client: Any, prefix: str, max_bits: int) -> None:
        self.client = client
        self.prefix = f"{prefix}crawler:simhash:{max_bits}:"
        self.max_bits = max_bits
        self._claim = client.register_script(_CLAIM_SCRIPT)

    def claim(self, url: str, fingerprint: int) -> str | None:
        if fingerprint == 0:
            return None
        value = fingerprint & _MASK64
        keys = [f"{self.prefix}{i}:{v}" for i, v in bands(fingerprint, self.max_bits)]
        other = self._claim(keys=keys, args=[value >> 32, value & 0xFFFFFFFF, url, self.max_bits])
        if other is None:
            return None
        return other.decode() if isinstance(other, bytes) else str(other)

    def close(self) -> None:
        self.client.close()
