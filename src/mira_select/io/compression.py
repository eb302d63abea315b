"""Decompressing readers that notice truncation.

zstandard's ``stream_reader`` returns a clean EOF when a .zst file is cut mid-frame, which would silently drop the
tail of a corpus file. This reader drives a ``decompressobj`` itself and raises :class:`TruncatedInput` when the
input ends inside a frame. gzip, bz2 and xz readers from the standard library already raise ``EOFError``.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
from typing import BinaryIO

import zstandard


class TruncatedInput(IOError):
    """The compressed stream ended before its frame did: the file was cut (interrupted copy or download)."""


class _ZstdRaw(io.RawIOBase):
    def __init__(self, fh: BinaryIO, chunk: int = 1 << 20):
        self._fh = fh
        self._chunk = chunk
        self._dctx = zstandard.ZstdDecompressor()
        self._dobj = self._dctx.decompressobj()
        self._pending = b""
        self._in_frame = False
        self._eof = False

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:  # type: ignore[override]
        while not self._pending and not self._eof:
            data = self._fh.read(self._chunk)
            if not data:
                self._eof = True
                if self._in_frame:
                    raise TruncatedInput("compressed stream ends inside a zstd frame (file truncated?)")
                break
            self._feed(data)
        n = min(len(buf), len(self._pending))
        buf[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def _feed(self, data: bytes) -> None:
        out = []
        while data:
            self._in_frame = True
            try:
                out.append(self._dobj.decompress(data))
            except zstandard.ZstdError as exc:
                raise TruncatedInput(f"corrupt zstd data: {exc}") from None
            if self._dobj.eof:  # frame finished; the rest (if any) starts a new frame
                self._in_frame = False
                data = self._dobj.unused_data
                self._dobj = self._dctx.decompressobj()
            else:
                data = b""
        self._pending += b"".join(out)


def codec_of(name: str) -> str | None:
    """The compression a file name's extension says (zst | gz | bz2 | xz), None for a plain file."""
    lower = name.lower()
    for codec, suffixes in (("zst", (".zst", ".zstd")), ("gz", (".gz",)), ("bz2", (".bz2",)), ("xz", (".xz",))):
        if lower.endswith(suffixes):
            return codec
    return None


def open_decompressed(fh: BinaryIO, name: str) -> BinaryIO:
    """Wrap a binary file handle with the decompressor its extension names; plain files pass through."""
    codec = codec_of(name)
    if codec == "zst":
        return io.BufferedReader(_ZstdRaw(fh), buffer_size=1 << 20)
    if codec == "gz":
        return gzip.GzipFile(fileobj=fh, mode="rb")  # type: ignore[return-value]
    if codec == "bz2":
        return bz2.BZ2File(fh, mode="rb")  # type: ignore[return-value]
    if codec == "xz":
        return lzma.LZMAFile(fh, mode="rb")  # type: ignore[return-value]
    return fh if hasattr(fh, "peek") else io.BufferedReader(fh, buffer_size=1 << 20)  # type: ignore[arg-type]


def decompression_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean 'the rest of this file is unreadable' rather than a bug."""
    return (TruncatedInput, EOFError, gzip.BadGzipFile, OSError, lzma.LZMAError)
