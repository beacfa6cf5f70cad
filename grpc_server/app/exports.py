"""Exports as files to hand over: the exporter writes into a scratch directory inside the store, the
caller reads the files back as checksummed chunks, and whichever lets go last removes the directory."""
from __future__ import annotations

import hashlib
import shutil
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

MAX_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class Chunk:
    """Part of an exported file; the last part of each file carries the file's sha256 and size."""

    path: str      # relative, '/'-separated
    offset: int
    data: bytes
    last: bool
    sha256: str = ""
    size: int = 0


class SharedScratch:
    """An export's scratch directory, used by two threads: the job writes it, the caller reads it.

    Whichever lets go last removes it, so a call cancelled while the job is still writing leaves
    nothing behind. It lives inside the store (same filesystem: a full disk is StoreFull; a `.tmp-`
    name: swept at start-up if the process dies mid-export)."""

    def __init__(self, make: Callable[[], Path]):
        self._make = make
        self._holders = 2
        self._lock = threading.Lock()
        self.path: Path | None = None

    def create(self) -> Path:
        self.path = self._make()
        return self.path

    def release(self) -> None:
        with self._lock:
            self._holders -= 1
            last = self._holders == 0
        if last and self.path is not None:
            shutil.rmtree(self.path, ignore_errors=True)


@dataclass
class ExportedFiles:
    """Files an export wrote under `root` (relative paths, in the exporter's order); closing them
    (`release`, or leaving a `with` block) lets the scratch directory go."""

    root: Path
    paths: list[str]
    release: Callable[[], None]

    def chunks(self, chunk_bytes: int = MAX_CHUNK_BYTES) -> Iterator[Chunk]:
        for rel in self.paths:
            yield from file_chunks(self.root, rel, chunk_bytes)

    def __enter__(self) -> ExportedFiles:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def checked_paths(out_dir: Path, written: Iterable[str]) -> list[str]:
    """The exporter's relative paths, each confirmed to be a file inside out_dir."""
    root = out_dir.resolve()
    paths = []
    for rel in written:
        rel = str(rel)
        full = (root / rel).resolve()
        if root not in full.parents or not full.is_file():
            raise RuntimeError(f"the exporter reported {rel!r}, which is not a file inside its output directory")
        paths.append(full.relative_to(root).as_posix())
    return paths


def file_chunks(out_dir: Path, rel_path: str, chunk_bytes: int) -> Iterator[Chunk]:
    """A file as Chunks of at most `chunk_bytes`; an empty file is one chunk."""
    digest = hashlib.sha256()
    offset = 0
    with open(out_dir / rel_path, "rb") as f:
        block = f.read(chunk_bytes)
        while True:
            nxt = f.read(chunk_bytes) if block else b""
            digest.update(block)
            last = not nxt
            yield Chunk(path=rel_path, offset=offset, data=block, last=last,
                        sha256=digest.hexdigest() if last else "", size=offset + len(block) if last else 0)
            offset += len(block)
            if last:
                return
            block = nxt
