"""Video face tracking: clip or webcam frames -> ARKit-52 weights, head pose and gaze per frame.

video:    `Clip` (OpenCV's FFmpeg backend), `ClipLimits`, ClipError / ClipTooLong refusals;
follow:   `MeshFollower`, the face mesh carried from frame to frame;
filters:  `OneEuroFilter`;
face_frame: `FaceFrameFilter`, a face mesh smoothed in the face's own frame (its motion slowly, its shape lightly);
tracker:  `FaceTracker` (live, frame by frame), `track_clip` / `track_frames` (whole clips -> `Track`).
"""
from avatar.track.filters import OneEuroFilter
from avatar.track.follow import MeshFollower, MeshObservation
from avatar.track.tracker import FaceTracker, Track, TrackedFrame, camera_for, square_frame, track_clip, track_frames
from avatar.track.video import VIDEO_SUFFIXES, Clip, ClipError, ClipLimits, ClipTooLong, clip_file, is_video_name

__all__ = ["VIDEO_SUFFIXES", "Clip", "ClipError", "ClipLimits", "ClipTooLong", "FaceTracker", "MeshFollower",
           "MeshObservation", "OneEuroFilter", "Track", "TrackedFrame", "camera_for", "clip_file",
           "is_video_name", "square_frame", "track_clip", "track_frames"]
