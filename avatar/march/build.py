"""`python -m avatar.march.build`: compile the march kernel (what `make march` runs).

Exits 0 either way: without the kernel the renderer runs its pure-torch march and logs so.
"""
from __future__ import annotations

import sys
import time

from avatar import march


def main() -> int:
    t = time.perf_counter()
    try:
        path = march.build(verbose="-v" in sys.argv)
    except Exception as e:  # noqa: BLE001 - a compiler error, no compiler, no ninja: all mean "use the torch path"
        print(f"march kernel: build failed, the renderer will use its pure-torch march ({e})", file=sys.stderr)
        return 0
    print(f"march kernel: built {path} in {time.perf_counter() - t:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
