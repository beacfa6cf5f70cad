"""The benchmarks' demo portrait: the scikit-image astronaut as PNG bytes at a chosen size."""
from __future__ import annotations

import io

from PIL import Image
from skimage import data


def astronaut_png(size: int = 512) -> bytes:
    """The astronaut (512² natively) as PNG bytes, resampled to size x size when asked."""
    image = Image.fromarray(data.astronaut())
    if image.size != (size, size):
        image = image.resize((size, size), Image.LANCZOS)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()
