"""The model registry: every weight file the suite loads is named here.

Manifests are YAML files in ``models/manifest/`` (one per model family). Each
entry maps a model name to one source and its metadata::

    blazeface_short_range:
      package: mediapipe                 # a file shipped inside an installed Python distribution
      path: modules/face_detection/face_detection_short_range.tflite
      sha256: 3bc182eb...
      license: Apache-2.0
      origin: Google MediaPipe 0.10.14 wheel
      training_data: ...
      scores: ...

Other sources: ``project: weights/x.safetensors`` (a file committed under
``models/``) and ``url: https://...`` (downloaded once into the cache).

Environment:
  OPENDR_MODEL_CACHE      cache directory (default: $XDG_CACHE_HOME/opendr-ros2/models)
  OPENDR_OFFLINE=1        never download; fail with instructions instead
  OPENDR_MODEL_MANIFESTS  extra manifest files or directories, ':'-separated
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import sys
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

import yaml

SOURCE_KEYS = ("package", "project", "url")


class ModelError(RuntimeError):
    """A model file cannot be provided; the message says why and what to do."""


class ModelNotAvailableError(ModelError):
    pass


class ChecksumMismatchError(ModelError):
    pass


@dataclass(frozen=True)
class ModelSpec:
    name: str
    sha256: str
    source: str  # "package", "project" or "url"
    location: str  # package name, project-relative path or URL
    path: str = ""  # path inside the package (source "package")
    license: str = ""
    origin: str = ""
    training_data: str = ""
    scores: object = None
    description: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def filename(self) -> str:
        ref = self.path if self.source == "package" else self.location
        return ref.rstrip("/").rsplit("/", 1)[-1]


def default_manifest_dirs() -> list[Path]:
    """``models/manifest`` of a source checkout, else of the installed share directory."""
    here = Path(__file__).resolve().parents[2] / "models" / "manifest"
    dirs = [here] if here.is_dir() else []
    if not dirs:
        try:
            from ament_index_python.packages import get_package_share_directory
            share = Path(get_package_share_directory("opendr_perception")) / "models" / "manifest"
            if share.is_dir():
                dirs.append(share)
        except Exception:  # noqa: BLE001 - no ament index: nothing more to look at
            pass
    for extra in filter(None, os.environ.get("OPENDR_MODEL_MANIFESTS", "").split(":")):
        dirs.append(Path(extra))
    return dirs


def default_cache_dir() -> Path:
    if os.environ.get("OPENDR_MODEL_CACHE"):
        return Path(os.environ["OPENDR_MODEL_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "opendr-ros2" / "models"


def offline_mode() -> bool:
    return os.environ.get("OPENDR_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _parse_entry(name: str, entry: dict, manifest: Path) -> ModelSpec:
    sources = [k for k in SOURCE_KEYS if k in entry]
    if len(sources) != 1:
        raise ModelError(f"{manifest}: model '{name}' needs exactly one of {SOURCE_KEYS}, has {sources}")
    if "sha256" not in entry:
        raise ModelError(f"{manifest}: model '{name}' has no sha256")
    source = sources[0]
    if source == "package" and "path" not in entry:
        raise ModelError(f"{manifest}: model '{name}' from a package needs 'path'")
    known = {"sha256", "path", "license", "origin", "training_data", "scores", "description", *SOURCE_KEYS}
    project_root = manifest.parent.parent  # models/
    location = str(entry[source])
    if source == "project":
        location = str((project_root / location).resolve())
    return ModelSpec(
        name=name, sha256=str(entry["sha256"]).lower(), source=source, location=location,
        path=str(entry.get("path", "")), license=str(entry.get("license", "")),
        origin=str(entry.get("origin", "")), training_data=str(entry.get("training_data", "")),
        scores=entry.get("scores"), description=str(entry.get("description", "")),
        extra={k: v for k, v in entry.items() if k not in known})


def load_manifests(paths: Iterable[Path]) -> dict[str, ModelSpec]:
    specs: dict[str, ModelSpec] = {}
    for path in paths:
        files = sorted(path.glob("*.yaml")) if path.is_dir() else [path]
        for manifest in files:
            with open(manifest, encoding="utf-8") as f:
                data = yaml.safe_load(f) or {}
            if not isinstance(data, dict):
                raise ModelError(f"{manifest}: a manifest maps model names to entries")
            for name, entry in data.items():
                if name in specs:
                    raise ModelError(f"{manifest}: model '{name}' is defined twice")
                specs[name] = _parse_entry(name, entry, manifest)
    return specs


class ModelRegistry:
    """Finds, downloads and verifies model files named in the manifests."""

    def __init__(self, manifest_paths: Optional[Iterable[Path]] = None,
                 cache_dir: Optional[Path] = None, offline: Optional[bool] = None):
        self.specs = load_manifests(default_manifest_dirs() if manifest_paths is None else manifest_paths)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.offline = offline_mode() if offline is None else offline
        self._verified: dict[Path, tuple[float, int]] = {}

    def names(self) -> list[str]:
        return sorted(self.specs)

    def spec(self, name: str) -> ModelSpec:
        try:
            return self.specs[name]
        except KeyError:
            raise ModelNotAvailableError(
                f"unknown model '{name}'; known models: {', '.join(self.names()) or 'none'}") from None

    def resolve(self, name: str) -> Path:
        """Local path of the model's file, checksum verified (downloading it if needed)."""
        spec = self.spec(name)
        if spec.source == "package":
            path = self._package_file(spec)
        elif spec.source == "project":
            path = Path(spec.location)
            if not path.is_file():
                raise ModelNotAvailableError(
                    f"model '{name}': project file {path} is missing; restore it from the repository "
                    "(git checkout -- models/)")
        else:
            path = self.cache_dir / spec.sha256[:16] / spec.filename
            if not path.is_file():
                self._download(spec, path)
        self._verify(spec, path)
        return path

    def _package_file(self, spec: ModelSpec) -> Path:
        found = importlib.util.find_spec(spec.location)
        roots = list(found.submodule_search_locations or []) if found else []
        for root in roots:
            path = Path(root) / spec.path
            if path.is_file():
                return path
        why = "is not installed" if not roots else f"has no file {spec.path}"
        raise ModelNotAvailableError(
            f"model '{spec.name}': the Python package '{spec.location}' {why}; "
            f"install it (scripts/setup.sh does) to get {spec.filename}")

    def _download(self, spec: ModelSpec, path: Path) -> None:
        if self.offline:
            raise ModelNotAvailableError(
                f"model '{spec.name}': {spec.filename} is not in the cache and offline mode is on "
                f"(OPENDR_OFFLINE). Download {spec.location} and place it at {path}, or unset OPENDR_OFFLINE.")
        path.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(spec.location, timeout=60) as response:
                total = int(response.headers.get("Content-Length") or 0) or None
                from tqdm import tqdm
                with tqdm(total=total, unit="B", unit_scale=True, desc=f"downloading {spec.name}",
                          disable=not sys.stderr.isatty()) as bar:
                    for chunk in iter(lambda: response.read(1 << 20), b""):
                        out.write(chunk)
                        digest.update(chunk)
                        bar.update(len(chunk))
            if digest.hexdigest() != spec.sha256:
                raise ChecksumMismatchError(
                    f"model '{spec.name}': {spec.location} has sha256 {digest.hexdigest()}, "
                    f"the manifest expects {spec.sha256}; the file was not kept")
            shutil.move(tmp_name, path)
        except OSError as e:
            raise ModelNotAvailableError(
                f"model '{spec.name}': download of {spec.location} failed ({e}); "
                f"place the file at {path} by hand or retry") from e
        finally:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)

    def _verify(self, spec: ModelSpec, path: Path) -> None:
        stat = path.stat()
        if self._verified.get(path) == (stat.st_mtime, stat.st_size):
            return
        actual = sha256_of(path)
        if actual != spec.sha256:
            raise ChecksumMismatchError(
                f"model '{spec.name}': {path} has sha256 {actual}, the manifest expects {spec.sha256}; "
                "the file is damaged or another version: delete it (cached files download again)")
        self._verified[path] = (stat.st_mtime, stat.st_size)


_default: Optional[ModelRegistry] = None


def default_registry() -> ModelRegistry:
    global _default
    if _default is None:
        _default = ModelRegistry()
    return _default


def resolve(name: str) -> Path:
    """Verified local path of the named model file (see :class:`ModelRegistry`)."""
    return default_registry().resolve(name)


def load_state_dict(name: str) -> dict:
    """A torch state dict from a registered ``.safetensors`` or ``.pt``/``.pth`` file (no pickled code)."""
    path = resolve(name)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        return load_file(str(path))
    import torch
    return torch.load(path, map_location="cpu", weights_only=True)
