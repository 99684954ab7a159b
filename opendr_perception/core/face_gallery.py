"""A gallery of known faces: enrolment, nearest-neighbour matching, FRC, storage.

The gallery holds any number of embeddings per person, all made by ONE face
embedder, named by ``embedder_name`` (see
:class:`opendr_perception.models.face_recognition.FaceEmbedder`). A query is
matched to its nearest gallery embedding (Euclidean / L2 distance), as in
OpenDR D3.3 §2.1 ("the nearest image in the database G").

Face recognition confidence (FRC), exactly as the seed (D3.3 eq. 1)::

    FRC = 1 - d / threshold   if d < threshold
    FRC = 0, identity unknown otherwise

where ``d`` is the distance to the nearest gallery embedding and ``threshold``
the embedder's verification threshold (0.6 for the dlib ResNet). "Unknown" is
represented by ``identity=None``; the nearest name is still reported in
``Match.nearest`` for diagnostics.

Storage: one ``.npz`` file (written atomically: a temporary file in the same
directory, fsynced, then renamed over the target) holding

* ``embeddings``: float64 array (N, D), one row per enrolled face;
* ``labels``: unicode array (N,), the person of each row;
* ``sources``: unicode array (N,), where each row came from ('' if unknown);
* ``metadata``: a 0-d unicode array with a JSON object: ``format``
  (``"opendr-face-gallery"``), ``format_version`` (1), ``embedder`` (the
  embedder name), ``dim``, ``threshold``, ``people``.

It is read with ``allow_pickle=False``. :meth:`FaceGallery.load` requires the
name of the embedder the caller will use and raises ``ValueError`` when the
file was made by another one: embeddings of two models are never mixed.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Optional, Sequence, Union

import numpy as np

if TYPE_CHECKING:  # only for type hints: core does not import the models package
    from opendr_perception.core.types import Detection
    from opendr_perception.models.face_recognition import FaceEmbedder

GALLERY_FORMAT = "opendr-face-gallery"
GALLERY_FORMAT_VERSION = 1
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")

PathLike = Union[str, os.PathLike]


def frc_from_distance(distance: float, threshold: float) -> float:
    """Face recognition confidence of a nearest-neighbour distance (D3.3 eq. 1).

    ``1 - distance / threshold`` when ``distance < threshold``, else 0.
    """
    if not threshold > 0:
        raise ValueError(f"threshold must be > 0, got {threshold}")
    if np.isnan(distance) or distance < 0:
        raise ValueError(f"distance must be a non-negative number, got {distance}")
    return float(1.0 - distance / threshold) if distance < threshold else 0.0


@dataclass(frozen=True)
class Match:
    """The result of matching one embedding against a gallery.

    ``identity`` is the matched person, or ``None`` for "unknown" (the gallery
    is empty or the nearest embedding is at ``distance >= threshold``; then
    ``frc`` is 0). ``nearest`` is the nearest person whatever the distance
    (``None`` only for an empty gallery); ``distance`` is ``inf`` for an
    empty gallery.
    """

    identity: Optional[str]
    nearest: Optional[str]
    distance: float
    frc: float

    @property
    def is_known(self) -> bool:
        return self.identity is not None


def _check_threshold(threshold) -> float:
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        raise ValueError(f"threshold must be a number, got {threshold!r}") from None
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"threshold must be a finite number > 0, got {threshold!r}")
    return value


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"person name must be a non-empty string, got {name!r}")
    if name != name.strip():
        raise ValueError(f"person name {name!r} has leading or trailing white space")
    return name


class FaceGallery:
    """Known faces of one embedder, matched by L2 nearest neighbour.

    Args:
        embedder_name: name of the embedder that made (and will make) every
            embedding, e.g. ``"dlib_face_descriptor_resnet_v1"``.
        threshold: L2 distance at and above which a match is "unknown"; also
            the FRC normaliser.
        dim: embedding length; taken from the first enrolled embedding if None.
    """

    def __init__(self, embedder_name: str, threshold: float, dim: Optional[int] = None):
        if not isinstance(embedder_name, str) or not embedder_name:
            raise ValueError(f"embedder_name must be a non-empty string, got {embedder_name!r}")
        self.embedder_name = embedder_name
        self.threshold = _check_threshold(threshold)
        if dim is not None and (isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim <= 0):
            raise ValueError(f"dim must be a positive integer, got {dim!r}")
        self.dim: Optional[int] = None if dim is None else int(dim)
        self._embeddings = np.zeros((0, self.dim or 0), dtype=np.float64)
        self._labels: list[str] = []
        self._sources: list[str] = []

    # ----------------------------------------------------------------- content
    def __len__(self) -> int:
        """Number of enrolled embeddings (all people)."""
        return len(self._labels)

    def people(self) -> list[str]:
        """Enrolled people, sorted by name."""
        return sorted(set(self._labels))

    def count(self, name: str) -> int:
        """Number of embeddings enrolled for ``name`` (0 if none)."""
        return sum(1 for label in self._labels if label == name)

    def embeddings_of(self, name: str) -> np.ndarray:
        """A copy of the (K, D) embeddings of ``name``."""
        rows = [i for i, label in enumerate(self._labels) if label == name]
        if not rows:
            raise ValueError(f"'{name}' is not in the gallery; enrolled: {self.people()}")
        return self._embeddings[rows].copy()

    def _check_embedding(self, embedding) -> np.ndarray:
        vector = np.asarray(embedding, dtype=np.float64)
        if vector.ndim != 1 or vector.size == 0:
            raise ValueError(f"an embedding must be a non-empty 1-D vector, got shape {vector.shape}")
        if self.dim is not None and vector.size != self.dim:
            raise ValueError(
                f"embedding has {vector.size} values, this gallery of '{self.embedder_name}' holds {self.dim}")
        if not np.all(np.isfinite(vector)):
            raise ValueError("embedding contains NaN or infinite values")
        return vector

    def enroll(self, name: str, embedding, source: str = "") -> None:
        """Add one embedding for person ``name`` (a person may have many)."""
        _check_name(name)
        vector = self._check_embedding(embedding)
        if self.dim is None:
            self.dim = vector.size
            self._embeddings = np.zeros((0, self.dim), dtype=np.float64)
        self._embeddings = np.vstack([self._embeddings, vector[None, :]])
        self._labels.append(name)
        self._sources.append(str(source))

    def remove(self, name: str) -> int:
        """Remove every embedding of ``name``; returns how many were removed."""
        keep = [i for i, label in enumerate(self._labels) if label != name]
        removed = len(self._labels) - len(keep)
        if removed == 0:
            raise ValueError(f"cannot remove '{name}': not in the gallery; enrolled: {self.people()}")
        self._embeddings = self._embeddings[keep]
        self._labels = [self._labels[i] for i in keep]
        self._sources = [self._sources[i] for i in keep]
        return removed

    # ---------------------------------------------------------------- matching
    def distances(self, embedding) -> np.ndarray:
        """L2 distances from ``embedding`` to every gallery row (enrolment order)."""
        vector = self._check_embedding(embedding)
        if not self._labels:
            return np.zeros(0)
        return np.linalg.norm(self._embeddings - vector[None, :], axis=1)

    def match(self, embedding) -> Match:
        """Nearest-neighbour identity, distance and FRC of one embedding."""
        d = self.distances(embedding)
        if d.size == 0:
            return Match(identity=None, nearest=None, distance=float("inf"), frc=0.0)
        i = int(np.argmin(d))
        distance = float(d[i])
        frc = frc_from_distance(distance, self.threshold)
        nearest = self._labels[i]
        return Match(identity=nearest if distance < self.threshold else None,
                     nearest=nearest, distance=distance, frc=frc)

    # ----------------------------------------------------------------- storage
    def save(self, path: PathLike) -> Path:
        """Write the gallery to one ``.npz`` file atomically; returns the path."""
        path = Path(path)
        if path.suffix != ".npz":
            raise ValueError(f"gallery file name must end in .npz, got '{path.name}'")
        path.parent.mkdir(parents=True, exist_ok=True)
        metadata = {
            "format": GALLERY_FORMAT, "format_version": GALLERY_FORMAT_VERSION,
            "embedder": self.embedder_name, "dim": self.dim, "threshold": self.threshold,
            "people": self.people(),
        }
        dim = self.dim or 0
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".npz.tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, embeddings=self._embeddings.reshape(len(self), dim),
                         labels=np.array(self._labels, dtype=str),
                         sources=np.array(self._sources, dtype=str),
                         metadata=np.array(json.dumps(metadata)))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp_name, path)
        finally:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
        return path

    @classmethod
    def load(cls, path: PathLike, embedder_name: str, threshold: Optional[float] = None) -> "FaceGallery":
        """Read a gallery saved by :meth:`save`.

        Args:
            embedder_name: the embedder the caller will match with; a gallery
                made by another embedder raises ``ValueError``.
            threshold: overrides the stored threshold if given.
        """
        info, arrays = _read(path)
        if info.get("embedder") != embedder_name:
            raise ValueError(
                f"gallery {Path(path).name} was made with embedder '{info['embedder']}', "
                f"not '{embedder_name}': embeddings of different models cannot be compared; "
                f"re-enrol the people with '{embedder_name}'")
        gallery = cls(embedder_name, info.get("threshold") if threshold is None else threshold, dim=info.get("dim"))
        embeddings, labels, sources = arrays
        if labels:
            if embeddings.shape[1] != gallery.dim or not np.all(np.isfinite(embeddings)):
                raise ValueError(f"{Path(path).name} is inconsistent: embeddings of shape {embeddings.shape}, "
                                 f"metadata dim {gallery.dim}, or non-finite values")
            for label in labels:
                _check_name(label)
            gallery._embeddings = embeddings
            gallery._labels = [str(label) for label in labels]
            gallery._sources = [str(source) for source in sources]
        return gallery


def read_gallery_info(path: PathLike) -> dict:
    """The JSON metadata of a saved gallery (embedder, dim, threshold, people...)."""
    return _read(path)[0]


def _read(path: PathLike):
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"gallery file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            contents = {name: data[name] for name in data.files}
    except Exception as e:  # noqa: BLE001 - not a zip, pickled data, truncated...: a bad file
        raise ValueError(f"{path.name} is not a readable .npz gallery ({type(e).__name__}: {e})") from e
    missing = {"embeddings", "labels", "sources", "metadata"} - set(contents)
    if missing:
        raise ValueError(f"{path.name} is not a face gallery: missing arrays {sorted(missing)}")
    try:
        info = json.loads(str(contents["metadata"]))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path.name} has unreadable gallery metadata ({e})") from e
    if not isinstance(info, dict):
        raise ValueError(f"{path.name} has unreadable gallery metadata (not a JSON object)")
    arrays = (np.asarray(contents["embeddings"], dtype=np.float64), contents["labels"].tolist(),
              contents["sources"].tolist())
    if info.get("format") != GALLERY_FORMAT:
        raise ValueError(f"{path.name} is not a face gallery (format {info.get('format')!r})")
    if info.get("format_version") != GALLERY_FORMAT_VERSION:
        raise ValueError(f"{path.name} has gallery format version {info.get('format_version')}, "
                         f"this code reads version {GALLERY_FORMAT_VERSION}")
    embeddings, labels, sources = arrays
    if embeddings.ndim != 2 or not (len(labels) == len(sources) == embeddings.shape[0]):
        raise ValueError(f"{path.name} is inconsistent: embeddings of shape {embeddings.shape}, "
                         f"{len(labels)} labels, {len(sources)} sources")
    return info, arrays


# -------------------------------------------------------------- folder enrolment
@dataclass
class EnrollmentReport:
    """What :func:`enroll_folder` did: ``enrolled`` (person, file) pairs and
    ``skipped`` (file, reason) pairs; paths relative to the root folder."""

    enrolled: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def people(self) -> list[str]:
        return sorted({person for person, _ in self.enrolled})


def enroll_folder(gallery: FaceGallery, root: PathLike,
                  detect: Callable[[np.ndarray], Sequence["Detection"]],
                  embedder: "FaceEmbedder",
                  extensions: Iterable[str] = IMAGE_EXTENSIONS) -> EnrollmentReport:
    """Enrol every image of a folder tree ``root/<person>/<image>``.

    Each image (read as BGR) must show exactly one face according to
    ``detect(image) -> list[Detection]``; that face is embedded with
    ``embedder`` and enrolled under the folder name. Images with no face or
    several faces, unreadable files, files of other types and files outside a
    person folder are skipped, each with a reason. Sub-folders of a person
    folder are not searched. Embeddings are added to those already enrolled.
    """
    import cv2  # local: only folder enrolment needs image decoding

    if embedder.name != gallery.embedder_name:
        raise ValueError(f"embedder '{embedder.name}' cannot enrol into a gallery of '{gallery.embedder_name}'")
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"enrolment folder {root} does not exist or is not a directory")
    extensions = tuple(e.lower() for e in extensions)
    report = EnrollmentReport()
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if not entry.is_dir():
            report.skipped.append((entry.name, "not inside a person folder"))
            continue
        person = entry.name
        for file in sorted(entry.iterdir()):
            rel = f"{person}/{file.name}"
            if file.name.startswith(".") or file.is_dir():
                continue
            if file.suffix.lower() not in extensions:
                report.skipped.append((rel, f"not an image file (extension '{file.suffix}')"))
                continue
            image = cv2.imread(str(file), cv2.IMREAD_COLOR)
            if image is None:
                report.skipped.append((rel, "unreadable image"))
                continue
            faces = list(detect(image))
            if len(faces) != 1:
                report.skipped.append((rel, "no face found" if not faces else
                                       f"{len(faces)} faces found, enrolment needs exactly 1"))
                continue
            gallery.enroll(person, embedder.embed(image, faces[0].box), source=rel)
            report.enrolled.append((person, rel))
    return report
