"""Face detection with MediaPipe's BlazeFace (short and full range), ROS-free.

Pipeline (as MediaPipe's ``face_detection_{short,full}_range`` graphs):

1. letterbox the whole image into the model input (128x128 short range,
   192x192 full range), keeping the aspect ratio, zero padding;
2. RGB in [-1, 1];
3. decode the per-anchor regressions (box + 6 keypoints) and sigmoid scores;
4. weighted NMS (IoU 0.3), blending overlapping candidates;
5. map boxes and keypoints back to input pixels (undo the letterbox).

The short-range model is for faces within ~2 m (selfie / robot at arm's length);
full range for faces up to ~5 m. Boxes are not clipped to the image.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from ..core import registry
from ..core.detection_ops import (BLAZEFACE_FULL_RANGE_ANCHORS, BLAZEFACE_SHORT_RANGE_ANCHORS, check_bgr_image,
                                  decode_boxes, letterbox, sigmoid_scores, ssd_anchors, to_model_input,
                                  weighted_nms)
from ..core.tflite import TFLiteModel
from ..core.types import BoundingBox, Detection

# MediaPipe's FaceKeyPoint order. "right"/"left" are the person's own sides: the
# right eye of a person facing the camera is on the LEFT of the image.
FACE_LANDMARK_NAMES = ("right_eye", "left_eye", "nose_tip", "mouth_center",
                       "right_ear_tragion", "left_ear_tragion")

_MODELS = {
    "short_range": ("blazeface_short_range", BLAZEFACE_SHORT_RANGE_ANCHORS),
    "full_range": ("blazeface_full_range", BLAZEFACE_FULL_RANGE_ANCHORS),
}


class FaceDetector:
    """BlazeFace face detector.

    Args:
        model: ``"short_range"`` (faces within ~2 m) or ``"full_range"`` (~5 m).
        score_threshold: minimum face probability (MediaPipe uses 0.5 short, 0.6 full).
        nms_iou: IoU above which candidates are blended into one face.
        num_threads: CPU threads for the interpreter.
        max_faces: keep at most this many faces (best first); None = all.
    """

    def __init__(self, model: str = "short_range", score_threshold: float = 0.5, nms_iou: float = 0.3,
                 num_threads: int = 1, max_faces: Optional[int] = None):
        if model not in _MODELS:
            raise ValueError(f"unknown face model '{model}'; use one of {sorted(_MODELS)}")
        if not 0.0 <= score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be in [0, 1], got {score_threshold}")
        if not 0.0 <= nms_iou <= 1.0:
            raise ValueError(f"nms_iou must be in [0, 1], got {nms_iou}")
        name, anchor_options = _MODELS[model]
        self.model_name = model
        self.score_threshold = float(score_threshold)
        self.nms_iou = float(nms_iou)
        self.max_faces = max_faces
        self.model = TFLiteModel(registry.resolve(name), num_threads=num_threads)
        self.anchors = ssd_anchors(anchor_options)
        self.input_size = self.model.input_size  # (width, height)
        n_anchors, n_coords = self.model.output_shapes[0][1:]
        if n_anchors != len(self.anchors) or n_coords != 16:
            raise RuntimeError(f"{name}: unexpected output shape {self.model.output_shapes[0]} "
                               f"for {len(self.anchors)} anchors x 16 values")

    def detect(self, image_bgr: np.ndarray) -> list[Detection]:
        """Faces in ``image_bgr`` (HxWx3 uint8), best first, in input pixel coordinates.

        Each :class:`Detection` has ``class_id="face"``, the face probability as
        score, the box, and 6 landmarks (``landmark_names`` = FACE_LANDMARK_NAMES).
        """
        check_bgr_image(image_bgr, "image_bgr")
        tensor_image, lb = letterbox(image_bgr, self.input_size)
        regressors, classificators = self.model.run(to_model_input(tensor_image, (-1.0, 1.0)))
        scores = sigmoid_scores(classificators[0, :, 0])
        keep = scores >= self.score_threshold
        if not keep.any():
            return []
        boxes, keypoints = decode_boxes(regressors[0][keep], self.anchors[keep], num_keypoints=6,
                                        scale=float(self.input_size[0]))
        boxes, scores, keypoints = weighted_nms(boxes, scores[keep], keypoints, self.nms_iou, self.max_faces)
        boxes_px = lb.normalized_to_original(boxes.reshape(-1, 2, 2)).reshape(-1, 4)
        keypoints_px = lb.normalized_to_original(keypoints)
        return [Detection(box=BoundingBox(*map(float, b)), score=float(s), class_id="face",
                          landmarks=k.astype(np.float32), landmark_names=FACE_LANDMARK_NAMES)
                for b, s, k in zip(boxes_px, scores, keypoints_px)]

    __call__ = detect
