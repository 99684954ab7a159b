"""Face recognition: face embedders and a gallery-backed recogniser (no ROS).

* :class:`FaceEmbedder` - the interface every face-embedding network implements
  (``name``, ``dim``, ``default_threshold``, ``embed``, ``embed_many``). The
  ``name`` is also the version key of galleries (:mod:`opendr_perception.core.face_gallery`):
  embeddings of two embedders are never compared. The seed's IR-50/ArcFace
  (512-D) can be added later as another subclass with its published checkpoint.
* :class:`DlibResNetEmbedder` - dlib's ResNet face descriptor (128-D, LFW 99.38%,
  L2 threshold 0.6): the face in the given box is aligned with dlib's 5-point
  shape predictor and described by ``face_recognition_model_v1``. Weights come
  from the registry (``dlib_face_descriptor_resnet_v1``, ``dlib_face_landmarks_5``,
  files of the ``face-recognition-models`` package; see ``models/manifest/dlib.yaml``).
* :class:`FaceRecognizer` - embedder + gallery: ``recognize(image, box)``
  returns the identity (``None`` = unknown), the L2 distance to the nearest
  gallery face and the FRC (OpenDR D3.3 eq. 1: ``1 - d/threshold`` if
  ``d < threshold`` else 0).

Images are BGR ``uint8`` arrays of shape (H, W, 3); boxes are
:class:`~opendr_perception.core.types.BoundingBox` in pixels of that image.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from opendr_perception.core.face_gallery import FaceGallery
from opendr_perception.core.types import BoundingBox

DLIB_DESCRIPTOR_MODEL = "dlib_face_descriptor_resnet_v1"
DLIB_LANDMARKS_MODEL = "dlib_face_landmarks_5"


def check_image(image_bgr) -> np.ndarray:
    """``image_bgr`` as a C-contiguous (H, W, 3) uint8 array, or ``ValueError``."""
    image = np.asarray(image_bgr)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be BGR of shape (H, W, 3), got shape {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {image.dtype}")
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise ValueError(f"image is too small: {image.shape[1]}x{image.shape[0]}")
    return np.ascontiguousarray(image)


def check_box(box: BoundingBox, width: int, height: int, min_size: float = 8.0) -> BoundingBox:
    """``box`` if it is a usable face box inside a ``width`` x ``height`` image, else ``ValueError``."""
    if not isinstance(box, BoundingBox):
        raise ValueError(f"box must be a BoundingBox, got {type(box).__name__}")
    values = (box.x_min, box.y_min, box.x_max, box.y_max)
    if not all(np.isfinite(v) for v in values):
        raise ValueError(f"box has non-finite coordinates: {box}")
    if box.width < min_size or box.height < min_size:
        raise ValueError(f"face box is {box.width:.1f}x{box.height:.1f} px, smaller than {min_size} px: {box}")
    inside = box.clipped(width, height)
    if inside.area < 0.25 * box.area:
        raise ValueError(f"face box {box} lies mostly outside the {width}x{height} image")
    return box


class FaceEmbedder(abc.ABC):
    """A network that maps one face (image + box) to an identity embedding.

    Subclasses set ``name`` (unique, stable: galleries are keyed by it),
    ``dim`` (embedding length) and ``default_threshold`` (the L2 distance
    below which two faces are the same person, e.g. the best LFW
    verification threshold) and implement :meth:`embed_many`.
    """

    name: str
    dim: int
    default_threshold: float

    def embed(self, image_bgr: np.ndarray, box: BoundingBox) -> np.ndarray:
        """The (dim,) float64 embedding of the face in ``box``."""
        return self.embed_many(image_bgr, [box])[0]

    @abc.abstractmethod
    def embed_many(self, image_bgr: np.ndarray, boxes: Sequence[BoundingBox]) -> np.ndarray:
        """(len(boxes), dim) float64 embeddings of several faces of one image."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dim={self.dim})"


class DlibResNetEmbedder(FaceEmbedder):
    """dlib's ResNet face descriptor (128-D) with 5-point alignment.

    Args:
        num_jitters: dlib's test-time augmentation: the descriptor is the mean
            over this many randomly jittered chips (0 = the chip itself;
            each jitter costs one more network pass).
        padding: dlib's chip padding around the aligned face (0.25 is dlib's
            default and what the model was trained with).
        registry: a :class:`~opendr_perception.core.registry.ModelRegistry`
            (default: the project's registry).

    The 5-point predictor was designed for dlib's HOG/CNN face boxes; boxes of
    other detectors that frame the face very differently degrade alignment.
    """

    name = DLIB_DESCRIPTOR_MODEL
    dim = 128
    default_threshold = 0.6

    def __init__(self, num_jitters: int = 0, padding: float = 0.25, registry=None):
        import dlib  # local: the rest of the module works without dlib

        if int(num_jitters) != num_jitters or num_jitters < 0:
            raise ValueError(f"num_jitters must be an integer >= 0, got {num_jitters!r}")
        if not 0.0 <= padding <= 1.0:
            raise ValueError(f"padding must be in [0, 1], got {padding!r}")
        if registry is None:
            from opendr_perception.core.registry import default_registry
            registry = default_registry()
        self.num_jitters = int(num_jitters)
        self.padding = float(padding)
        self._dlib = dlib
        self._landmarks = dlib.shape_predictor(str(registry.resolve(DLIB_LANDMARKS_MODEL)))
        self._descriptor = dlib.face_recognition_model_v1(str(registry.resolve(DLIB_DESCRIPTOR_MODEL)))

    def _rectangle(self, box: BoundingBox):
        return self._dlib.rectangle(int(round(box.x_min)), int(round(box.y_min)),
                                    int(round(box.x_max)), int(round(box.y_max)))

    def landmarks(self, image_bgr: np.ndarray, box: BoundingBox) -> np.ndarray:
        """The 5 alignment points, (5, 2) pixels in dlib's order: rows 0-1 the outer and inner
        corners of the eye on the image's right, rows 2-3 those of the other eye, row 4 the
        bottom of the nose."""
        image = check_image(image_bgr)
        check_box(box, image.shape[1], image.shape[0])
        rgb = np.ascontiguousarray(image[:, :, ::-1])
        shape = self._landmarks(rgb, self._rectangle(box))
        return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)

    def embed_many(self, image_bgr: np.ndarray, boxes: Sequence[BoundingBox]) -> np.ndarray:
        image = check_image(image_bgr)
        boxes = list(boxes)
        for box in boxes:
            check_box(box, image.shape[1], image.shape[0])
        if not boxes:
            return np.zeros((0, self.dim), dtype=np.float64)
        rgb = np.ascontiguousarray(image[:, :, ::-1])  # dlib expects RGB
        shapes = self._dlib.full_object_detections()
        for box in boxes:
            shapes.append(self._landmarks(rgb, self._rectangle(box)))
        descriptors = self._descriptor.compute_face_descriptor(rgb, shapes, self.num_jitters, self.padding)
        return np.array([np.asarray(d, dtype=np.float64) for d in descriptors]).reshape(len(boxes), self.dim)


@dataclass(frozen=True, eq=False)  # eq=False: it holds an array
class Recognition:
    """The identity of one face.

    ``identity`` is the gallery person whose nearest embedding is at
    ``distance < threshold``, or ``None`` for "unknown" (no gallery face that
    close, or an empty gallery); then ``frc`` is 0. ``nearest`` is the
    closest person regardless of the threshold (diagnostics only; ``None``
    for an empty gallery, when ``distance`` is ``inf``). ``frc`` is the face
    recognition confidence in [0, 1] (D3.3 eq. 1). ``embedding`` is the
    query's embedding (for enrolment or tracking).
    """

    identity: Optional[str]
    distance: float
    frc: float
    embedding: np.ndarray
    nearest: Optional[str] = None

    @property
    def is_known(self) -> bool:
        return self.identity is not None


class FaceRecognizer:
    """Recognise faces by L2 nearest neighbour in a gallery of one embedder."""

    def __init__(self, embedder: FaceEmbedder, gallery: FaceGallery):
        if gallery.embedder_name != embedder.name:
            raise ValueError(f"gallery was made with embedder '{gallery.embedder_name}', "
                             f"the recogniser uses '{embedder.name}': re-enrol with '{embedder.name}'")
        if gallery.dim is not None and gallery.dim != embedder.dim:
            raise ValueError(f"gallery holds {gallery.dim}-D embeddings, '{embedder.name}' makes {embedder.dim}-D")
        self.embedder = embedder
        self.gallery = gallery

    def _recognition(self, embedding: np.ndarray) -> Recognition:
        match = self.gallery.match(embedding)
        return Recognition(identity=match.identity, distance=match.distance, frc=match.frc,
                           embedding=embedding, nearest=match.nearest)

    def recognize(self, image_bgr: np.ndarray, box: BoundingBox) -> Recognition:
        """Identity, distance, FRC and embedding of the face in ``box``."""
        return self._recognition(self.embedder.embed(image_bgr, box))

    def recognize_many(self, image_bgr: np.ndarray, boxes: Sequence[BoundingBox]) -> list[Recognition]:
        """:meth:`recognize` for several faces of one image (one batched embedder call)."""
        return [self._recognition(e) for e in self.embedder.embed_many(image_bgr, boxes)]

    def enroll(self, name: str, image_bgr: np.ndarray, box: BoundingBox, source: str = "") -> np.ndarray:
        """Embed the face in ``box`` and add it to the gallery as ``name``; returns the embedding."""
        embedding = self.embedder.embed(image_bgr, box)
        self.gallery.enroll(name, embedding, source=source)
        return embedding


def build_recognizer(gallery_path, threshold: float = 0.0, enroll_dir: str = "", detect=None,
                     embedder: Optional[FaceEmbedder] = None, log=print) -> FaceRecognizer:
    """A recogniser whose gallery is read from ``gallery_path`` (an empty one if the file does not exist),
    with the images of ``enroll_dir`` (``<person>/<images>``, faces found by ``detect``) added and saved.

    ``threshold`` 0 takes the embedder's own. ``log`` receives one line per skipped image and a summary.
    """
    from pathlib import Path

    from opendr_perception.core.face_gallery import FaceGallery, enroll_folder
    embedder = embedder or DlibResNetEmbedder()
    threshold = threshold or embedder.default_threshold
    gallery_path = Path(gallery_path)
    if gallery_path.is_file():
        gallery = FaceGallery.load(gallery_path, embedder.name, threshold)
        log(f"gallery {gallery_path}: {', '.join(gallery.people()) or 'empty'}")
    else:
        gallery = FaceGallery(embedder.name, threshold, dim=embedder.dim)
    if enroll_dir:
        if detect is None:
            raise ValueError("enrolling a folder needs a face detector")
        report = enroll_folder(gallery, enroll_dir, detect, embedder)
        for file, reason in report.skipped:
            log(f"enrolment skipped {file}: {reason}")
        log(f"enrolled {len(report.enrolled)} images of {', '.join(report.people) or 'nobody'}")
        gallery.save(gallery_path)
    return FaceRecognizer(embedder, gallery)
