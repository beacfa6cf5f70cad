"""The avatar store: content-addressed avatar directories on a filesystem, and nothing else.

It writes atomically, lists, loads and deletes; what is done with a loaded avatar (renderers, their
cache) belongs to the application layer (grpc_server.app). Everything it relies on is a directory
rename, so a shared directory (NFS, a mounted bucket) serves several replicas as it is.

Layout: `<root>/<avatar_id>/` as written by `avatar.asset.save_avatar`. Anything else in the root is
invisible here: `.tmp-*` directories (`save_avatar`'s, an interrupted create; `scratch_dir`'s, an
export's working files) and our `.trash-*` directories (an interrupted delete) are never listed or
loaded, and `sweep()` removes them.

Every state change is one `rename`, so a crash at any moment leaves either the old or the new state:
create renames a complete temporary directory into place (the loser of a concurrent create of the
same id discards its copy — ids are content hashes, both copies are the same avatar); delete renames
the avatar to a trash name first, so it disappears at once, and removes the files afterwards.
"""
from __future__ import annotations

import base64
import binascii
import errno
import hashlib
import logging
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from avatar.asset import (
    META_FILE,
    THUMBNAIL_FILE,
    AssetError,
    Avatar,
    is_valid_avatar_id,
    load_avatar,
    read_manifest,
    save_avatar,
)
from grpc_server.limits import LimitExceeded

log = logging.getLogger(__name__)

TEMP_PREFIX = ".tmp-"     # save_avatar's temporary directories
TRASH_PREFIX = ".trash-"  # deleted avatars waiting to be removed
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
# A temporary directory younger than this may belong to a create still running in another process
# sharing the store (replicas on shared storage), so the sweep leaves it alone.
DEFAULT_STALE_AFTER_S = 600.0


class StoreError(Exception):
    """Base of the store's errors; the message is a sentence for the caller."""

    status = "INTERNAL"


class AvatarNotFound(StoreError):
    status = "NOT_FOUND"


class InvalidPageToken(StoreError):
    status = "INVALID_ARGUMENT"


class DamagedAvatar(StoreError):
    """An avatar directory that exists but cannot be read (disk corruption, hand edits)."""

    status = "DATA_LOSS"


class StoreFull(StoreError, LimitExceeded):
    """The store's filesystem has no room (full, quota, file size limit); retry later."""

    status = "RESOURCE_EXHAUSTED"


class StoreUnwritable(StoreError, OSError):
    """The store directory cannot be written (read-only mount, permissions); raised at start-up."""


_NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def is_out_of_space(exc: BaseException) -> bool:
    """True for the OSErrors a full filesystem (or quota, or RLIMIT_FSIZE) raises."""
    return isinstance(exc, OSError) and exc.errno in _NO_SPACE


def out_of_space(exc: OSError, doing: str) -> StoreFull:
    return StoreFull(f"no space left to {doing} ({exc.strerror or exc}); free some space and retry")


@dataclass(frozen=True)
class AvatarRecord:
    """What the API shows about a stored avatar; read from avatar.json alone (cheap: no tensors)."""

    avatar_id: str
    generator: str
    generator_version: str
    source_sha256: str
    head_model_id: str
    display_name: str
    created_unix: float
    portrait_camera: tuple[float, ...]
    schema_version: int
    thumbnail_png: bytes | None = None


def check_id(avatar_id: str) -> str:
    """The id itself when it is well-formed; anything else (path separators, '..', case) is not found."""
    if not is_valid_avatar_id(avatar_id):
        given: object = avatar_id  # from a request: any type at all
        shown = given if isinstance(given, str) and len(given) <= 80 else f"{str(given)[:80]}..."
        raise AvatarNotFound(f"avatar id {shown!r} is not a valid avatar id (64 lowercase hex digits)")
    return avatar_id


def _encode_token(last_id: str) -> str:
    return base64.urlsafe_b64encode(f"after:{last_id}".encode()).decode().rstrip("=")


def _decode_token(token: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raw = ""
    if not raw.startswith("after:") or not is_valid_avatar_id(raw[6:]):
        raise InvalidPageToken("page_token is not a token this server returned")
    return raw[6:]


class AvatarStore:
    """Avatars under `root` (created when missing); safe to share between threads and processes."""

    def __init__(self, root: str | os.PathLike[str], *, stale_after_s: float = DEFAULT_STALE_AFTER_S):
        self.root = Path(root).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._stale_after_s = stale_after_s

    # -- disk ---------------------------------------------------------------------------------

    def check_writable(self) -> None:
        """StoreUnwritable (an OSError with a sentence) when the store cannot be written: the server
        calls this at start-up so a read-only store fails there, not at the first create. Read-only
        uses (the CLI's local render) do not."""
        try:
            probe = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}probe-", dir=self.root))
            probe.rmdir()
        except OSError as e:
            raise StoreUnwritable(e.errno, f"the store {self.root} is not writable ({e.strerror or e}); "
                                           f"point --store at a writable directory") from None

    def scratch_dir(self, purpose: str) -> Path:
        """A fresh temporary directory inside the store (same filesystem, so a full disk shows as
        StoreFull; named so `sweep()` removes it if the process dies before it does)."""
        try:
            return Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{purpose}-", dir=self.root))
        except OSError as e:
            if is_out_of_space(e):
                raise out_of_space(e, f"start the {purpose}") from None
            raise

    def _dir(self, avatar_id: str) -> Path:
        return self.root / check_id(avatar_id)

    def exists(self, avatar_id: str) -> bool:
        return is_valid_avatar_id(avatar_id) and (self.root / avatar_id / META_FILE).is_file()

    def create(self, avatar: Avatar) -> AvatarRecord:
        """Save an avatar; creating an id that exists keeps the existing one (same content by construction)."""
        check_id(avatar.avatar_id)
        try:
            save_avatar(avatar, self.root)
        except OSError as e:
            if is_out_of_space(e):
                raise out_of_space(e, f"save avatar {avatar.avatar_id}") from None
            raise StoreError(f"could not write avatar {avatar.avatar_id} to the store ({e.strerror or e})") from None
        return self.info(avatar.avatar_id)

    def info(self, avatar_id: str, include_thumbnail: bool = False) -> AvatarRecord:
        """The avatar's record, from its manifest alone (cheap: no tensors are read)."""
        d = self._dir(avatar_id)
        if not (d / META_FILE).is_file():
            raise AvatarNotFound(f"avatar {avatar_id} does not exist")
        try:
            meta = read_manifest(d)
            record = AvatarRecord(
                avatar_id=str(meta["avatar_id"]),
                generator=str(meta["generator"]),
                generator_version=str(meta["generator_version"]),
                source_sha256=str(meta["source_sha256"]),
                head_model_id=str(meta["head_model_id"]),
                display_name=str(meta.get("display_name", "")),
                created_unix=float(meta.get("created_unix", 0.0)),
                portrait_camera=tuple(float(x) for x in meta["portrait_camera"]),
                schema_version=int(meta["schema_version"]),
            )
        except (AssetError, ValueError, TypeError) as e:
            self._raise_unless_gone(avatar_id)
            raise DamagedAvatar(f"avatar {avatar_id} is damaged: {META_FILE} is unreadable ({e})") from None
        if record.avatar_id != avatar_id:
            raise DamagedAvatar(f"avatar {avatar_id} is damaged: {META_FILE} names another id")
        if include_thumbnail:
            record = self._with_thumbnail(record, d, meta)
        return record

    def _with_thumbnail(self, record: AvatarRecord, d: Path, meta: dict[str, Any]) -> AvatarRecord:
        expected = (meta.get("files") or {}).get(THUMBNAIL_FILE)
        if not expected:
            return record
        try:
            data = (d / THUMBNAIL_FILE).read_bytes()
        except FileNotFoundError:
            raise AvatarNotFound(f"avatar {record.avatar_id} does not exist") from None
        if hashlib.sha256(data).hexdigest() != expected:
            raise DamagedAvatar(f"avatar {record.avatar_id} is damaged: {THUMBNAIL_FILE} fails its sha256 check")
        return replace(record, thumbnail_png=data)

    def ids(self) -> list[str]:
        """Ids of complete avatars, sorted. Temporary and trash directories never qualify."""
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return []
        return sorted(e.name for e in entries
                      if is_valid_avatar_id(e.name) and os.path.isfile(os.path.join(e.path, META_FILE)))

    def list(self, page_size: int = 0, page_token: str = "") -> tuple[list[AvatarRecord], str]:
        """One page of avatars in id order; the token resumes after the last id shown, so pages stay
        consistent while avatars are added or deleted between calls."""
        size = DEFAULT_PAGE_SIZE if page_size <= 0 else min(int(page_size), MAX_PAGE_SIZE)
        after = _decode_token(page_token) if page_token else ""
        records: list[AvatarRecord] = []
        remaining = [i for i in self.ids() if i > after]
        for index, avatar_id in enumerate(remaining):
            try:
                records.append(self.info(avatar_id))
            except AvatarNotFound:
                continue  # deleted while we were listing
            except DamagedAvatar as e:
                log.warning("skipping damaged avatar in listing: %s", e)
                continue
            if len(records) == size:
                more = index + 1 < len(remaining)
                return records, (_encode_token(avatar_id) if more else "")
        return records, ""

    def delete(self, avatar_id: str) -> bool:
        """True when this call removed the avatar, False when it did not exist."""
        d = self._dir(avatar_id)
        if not (d / META_FILE).exists():
            return False
        trash = self.root / f"{TRASH_PREFIX}{avatar_id[:12]}-{uuid.uuid4().hex}"
        try:
            os.rename(d, trash)
        except FileNotFoundError:
            return False  # a concurrent delete won
        shutil.rmtree(trash, ignore_errors=True)
        return True

    def sweep(self, min_age_s: float | None = None) -> int:
        """Remove leftovers of interrupted creates and deletes older than `min_age_s`; returns how many."""
        min_age = self._stale_after_s if min_age_s is None else min_age_s
        now = time.time()
        removed = 0
        for entry in os.scandir(self.root):
            if not entry.name.startswith((TEMP_PREFIX, TRASH_PREFIX)):
                continue
            try:
                age = now - entry.stat(follow_symlinks=False).st_mtime
            except FileNotFoundError:
                continue
            if age < min_age:
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                try:
                    os.unlink(entry.path)
                except FileNotFoundError:
                    pass
            removed += 1
            log.info("removed leftover %s from the store", entry.name)
        return removed

    def load(self, avatar_id: str) -> Avatar:
        """The whole avatar, every file verified against the manifest's sha256."""
        d = self._dir(avatar_id)
        if not (d / META_FILE).is_file():
            raise AvatarNotFound(f"avatar {avatar_id} does not exist")
        try:
            return load_avatar(d)
        except AssetError as e:
            self._raise_unless_gone(avatar_id)
            raise DamagedAvatar(f"avatar {avatar_id} is damaged: {e}") from None

    def _raise_unless_gone(self, avatar_id: str) -> None:
        """AvatarNotFound when the avatar was deleted while it was being read: that is why it failed."""
        if not (self.root / avatar_id / META_FILE).is_file():
            raise AvatarNotFound(f"avatar {avatar_id} does not exist") from None
