"""Zip exports, opened defensively: a zip bomb is refused by its declared sizes before anything
is inflated and by the bytes actually inflated while reading; members named with ``..`` or an
absolute path are never read."""

from __future__ import annotations

import io
import posixpath
import zipfile
from typing import BinaryIO, Iterator

from .entry import Failure

# The limits of one export (settings-like: the largest real exports are a few hundred MB).
MAX_UNCOMPRESSED_BYTES = 4 * 1024**3  # all members together
MAX_RATIO = 100  # a member's inflated size over its compressed size (HTML and CSV: 3-15)
_RATIO_FLOOR = 1024 * 1024  # members this small are never refused for their ratio


class UnsafeZip(ValueError):
    """The archive as a whole is refused (a zip bomb, or not a zip at all)."""


def safe_name(name: str) -> str | None:
    """The member's path, or None when it points outside the archive."""
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return None
    parts = name.replace("\\", "/").split("/")
    if ".." in parts:
        return None
    return posixpath.normpath(name.replace("\\", "/"))


class SafeZip:
    """The members of a zip export that are safe to read, each read as a stream."""

    def __init__(self, fh: BinaryIO, *, max_bytes: int = MAX_UNCOMPRESSED_BYTES, max_ratio: int = MAX_RATIO) -> None:
        try:
            self.zip = zipfile.ZipFile(fh)
        except (zipfile.BadZipFile, OSError) as exc:
            raise UnsafeZip(f"not a readable zip file: {exc}") from None
        self.max_bytes, self.read_bytes = max_bytes, 0
        self.members: dict[str, zipfile.ZipInfo] = {}
        self.refused: list[str] = []  # names pointing outside the archive
        declared = 0
        for info in self.zip.infolist():
            if info.is_dir():
                continue
            name = safe_name(info.filename)
            if name is None:
                self.refused.append(info.filename)
                continue
            declared += info.file_size
            if info.file_size > _RATIO_FLOOR and info.file_size > max_ratio * max(info.compress_size, 1):
                raise UnsafeZip(f"{info.filename} inflates {info.file_size // max(info.compress_size, 1)} times "
                                f"(more than {max_ratio}): refused as a zip bomb")
            self.members[name] = info
        if declared > max_bytes:
            raise UnsafeZip(f"the zip inflates to {declared:,} bytes (more than {max_bytes:,}): refused")

    def names(self) -> list[str]:
        return list(self.members)

    def refusals(self) -> Iterator[Failure]:
        """A failure for each member named outside the archive (never read)."""
        for name in self.refused:
            yield Failure(where=name, reason="a zip member named outside the archive: never read")

    def open(self, name: str) -> BinaryIO:
        """A member as a stream that stops at the archive's limit, whatever its header says."""
        return io.BufferedReader(_Bounded(self.zip.open(self.members[name]), self))  # type: ignore[return-value]

    def text(self, name: str, limit: int) -> str | None:
        """A small member whole (an article's HTML), or None when there is none; ValueError when
        it is larger than ``limit`` bytes."""
        if name not in self.members:
            return None
        with self.open(name) as fh:
            data = fh.read(limit + 1)
        if len(data) > limit:
            raise ValueError(f"{name} is larger than {limit:,} bytes")
        return data.decode("utf-8", errors="replace")

    def close(self) -> None:
        self.zip.close()


class _Bounded(io.RawIOBase):
    def __init__(self, inner: BinaryIO, owner: SafeZip) -> None:
        self.inner, self.owner = inner, owner

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.inner.read(len(buffer))
        self.owner.read_bytes += len(data)
        if self.owner.read_bytes > self.owner.max_bytes:
            raise UnsafeZip(f"the zip inflated past {self.owner.max_bytes:,} bytes: refused")
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self.inner.close()
        super().close()


def is_zip(head: bytes) -> bool:
    return head.startswith((b"PK\x03\x04", b"PK\x05\x06"))


def members_matching(archive: SafeZip, *patterns: str) -> Iterator[str]:
    """Member names matching any of the glob patterns (fnmatch), in name order."""
    from fnmatch import fnmatch

    for name in sorted(archive.names()):
        if any(fnmatch(name, pattern) for pattern in patterns):
            yield name
