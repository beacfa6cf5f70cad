"""Portrait preparation: decode and validate untrusted image bytes, find the face, align, matte."""
from .align import CROP_SIZE
from .decode import decode_image, decode_image_with_alpha
from .detect import detect_face_box
from .errors import PortraitError, PortraitLimits
from .pipeline import PreparedPortrait, prepare

__all__ = ["CROP_SIZE", "PortraitError", "PortraitLimits", "PreparedPortrait", "decode_image",
           "decode_image_with_alpha", "detect_face_box", "prepare"]
