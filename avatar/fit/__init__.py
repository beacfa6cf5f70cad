"""Dense fit of the head model to MediaPipe's face mesh: identity, expression, pose, camera and gaze.

correspondence: which point of a head model each of MediaPipe's 478 points is (the one place for it):
                `avatar.fit.correspondence.correspondence(head)` (not re-exported here: the name is the module's).
landmark_fit:   `fit_landmarks(head, landmarks, image_size)` -> FaceFit (also the per-frame tracker step);
landmark_model: the fit's model points (`model_points`): the mean face moved by the head's deltas.
offsets:        `shape_offsets`, a smooth per-vertex identity correction from what the fit leaves over;
                `neutral_offsets`, the per-clip point correction the tracker passes as fit_landmarks(neutral=).
"""
from avatar.fit.checks import LandmarkFitError
from avatar.fit.correspondence import Correspondence, CorrespondenceError, mean_face
from avatar.fit.landmark_fit import FaceFit, fit_landmarks
from avatar.fit.landmark_model import model_points
from avatar.fit.offsets import neutral_offsets, shape_offsets

__all__ = ["Correspondence", "CorrespondenceError", "FaceFit", "LandmarkFitError", "fit_landmarks",
           "mean_face", "model_points", "neutral_offsets", "shape_offsets"]
