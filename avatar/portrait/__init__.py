"""Portrait preparation: decode and validate untrusted image bytes, find the face and its 478 landmarks
(MediaPipe models run by LiteRT), align, matte."""
from .align import CROP_SIZE
from .decode import decode_image, decode_image_with_alpha
from .errors import PerceptionUnavailable, PortraitError, PortraitLimits
from .pipeline import PreparedPortrait, prepare

__all__ = ["CROP_SIZE", "PerceptionUnavailable", "PortraitError", "PortraitLimits", "PreparedPortrait",
           "decode_image", "decode_image_with_alpha", "prepare"]
