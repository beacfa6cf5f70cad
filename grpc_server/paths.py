"""Where avatars live when nobody says otherwise: the one definition every command imports."""
from __future__ import annotations

import os
from pathlib import Path

STORE_ENV = "AVATARFORGE_STORE"


def default_store() -> Path:
    """`$AVATARFORGE_STORE`, else `$XDG_DATA_HOME/avatarforge/avatars`, else `~/.local/share/avatarforge/avatars`.

    A per-user data directory (XDG base directory spec) rather than the working directory, so the
    server, the CLI and batch jobs started from anywhere see the same avatars.
    """
    explicit = os.environ.get(STORE_ENV, "").strip()
    if explicit:
        return Path(explicit).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME", "").strip()
    # The spec says a relative XDG_DATA_HOME is invalid and must be ignored.
    base = Path(data_home) if data_home and os.path.isabs(data_home) else Path.home() / ".local" / "share"
    return base / "avatarforge" / "avatars"
