"""The model registry: manifests, package files, project files, downloads from file:// URLs, checksums,
offline mode and the errors a user sees."""
import hashlib
from pathlib import Path

import pytest
import yaml

from opendr_perception.core import registry
from opendr_perception.core.registry import ChecksumMismatchError, ModelError, ModelNotAvailableError, ModelRegistry


def write_manifest(directory: Path, entries: dict) -> Path:
    manifest_dir = directory / "models" / "manifest"
    manifest_dir.mkdir(parents=True, exist_ok=True)
    (manifest_dir / "test.yaml").write_text(yaml.safe_dump(entries))
    return manifest_dir


@pytest.fixture
def weights(tmp_path):
    path = tmp_path / "remote" / "tiny.bin"
    path.parent.mkdir()
    path.write_bytes(b"weights of a tiny model" * 100)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def test_download_from_file_url_into_the_cache_then_offline(tmp_path, weights):
    path, digest = weights
    manifest = write_manifest(tmp_path, {"tiny": {"url": path.as_uri(), "sha256": digest, "license": "MIT"}})
    cache = tmp_path / "cache"
    fetched = ModelRegistry([manifest], cache_dir=cache, offline=False).resolve("tiny")
    assert fetched.is_file() and cache in fetched.parents and fetched.read_bytes() == path.read_bytes()
    assert not any(p.name.startswith(".part-") for p in fetched.parent.iterdir())
    path.unlink()  # the source is gone: the cached copy serves, even offline
    assert ModelRegistry([manifest], cache_dir=cache, offline=True).resolve("tiny") == fetched


def test_offline_mode_says_where_to_put_the_file(tmp_path, weights):
    path, digest = weights
    manifest = write_manifest(tmp_path, {"tiny": {"url": path.as_uri(), "sha256": digest}})
    with pytest.raises(ModelNotAvailableError, match="offline mode is on.*place it at"):
        ModelRegistry([manifest], cache_dir=tmp_path / "cache", offline=True).resolve("tiny")


def test_wrong_checksum_is_refused_and_nothing_is_kept(tmp_path, weights):
    path, _ = weights
    manifest = write_manifest(tmp_path, {"tiny": {"url": path.as_uri(), "sha256": "0" * 64}})
    cache = tmp_path / "cache"
    with pytest.raises(ChecksumMismatchError, match="not kept"):
        ModelRegistry([manifest], cache_dir=cache, offline=False).resolve("tiny")
    assert not [p for p in cache.rglob("*") if p.is_file()]


def test_damaged_cached_file_is_detected(tmp_path, weights):
    path, digest = weights
    manifest = write_manifest(tmp_path, {"tiny": {"url": path.as_uri(), "sha256": digest}})
    reg = ModelRegistry([manifest], cache_dir=tmp_path / "cache", offline=False)
    cached = reg.resolve("tiny")
    cached.write_bytes(b"truncated")
    with pytest.raises(ChecksumMismatchError, match="damaged"):
        ModelRegistry([manifest], cache_dir=tmp_path / "cache", offline=True).resolve("tiny")


def test_unreachable_url_names_the_file(tmp_path):
    manifest = write_manifest(tmp_path, {"gone": {"url": (tmp_path / "nope.bin").as_uri(), "sha256": "1" * 64}})
    with pytest.raises(ModelNotAvailableError, match="download of .*nope.bin failed"):
        ModelRegistry([manifest], cache_dir=tmp_path / "cache", offline=False).resolve("gone")


def test_project_and_package_sources(tmp_path):
    weights_dir = tmp_path / "models" / "weights"
    weights_dir.mkdir(parents=True)
    (weights_dir / "demo.bin").write_bytes(b"demo")
    yaml_module = Path(yaml.__file__)
    manifest = write_manifest(tmp_path, {
        "demo": {"project": "weights/demo.bin", "sha256": hashlib.sha256(b"demo").hexdigest()},
        "from_package": {"package": "yaml", "path": yaml_module.name,
                         "sha256": hashlib.sha256(yaml_module.read_bytes()).hexdigest()},
        "missing_package": {"package": "no_such_package_xyz", "path": "x.bin", "sha256": "2" * 64},
    })
    reg = ModelRegistry([manifest], cache_dir=tmp_path / "cache", offline=True)
    assert reg.resolve("demo").read_bytes() == b"demo"
    assert reg.resolve("from_package") == yaml_module
    with pytest.raises(ModelNotAvailableError, match="'no_such_package_xyz' is not installed"):
        reg.resolve("missing_package")
    (weights_dir / "demo.bin").unlink()
    with pytest.raises(ModelNotAvailableError, match="project file .* is missing"):
        reg.resolve("demo")


def test_unknown_model_lists_the_known_ones(tmp_path):
    manifest = write_manifest(tmp_path, {"a": {"url": "file:///x", "sha256": "3" * 64}})
    with pytest.raises(ModelNotAvailableError, match="unknown model 'b'; known models: a"):
        ModelRegistry([manifest], offline=True).resolve("b")


@pytest.mark.parametrize("entry, message", [
    ({"sha256": "4" * 64}, "exactly one of"),
    ({"url": "file:///x", "project": "y", "sha256": "4" * 64}, "exactly one of"),
    ({"url": "file:///x"}, "no sha256"),
    ({"package": "yaml", "sha256": "4" * 64}, "needs 'path'"),
])
def test_malformed_manifest_entries(tmp_path, entry, message):
    manifest = write_manifest(tmp_path, {"bad": entry})
    with pytest.raises(ModelError, match=message):
        ModelRegistry([manifest])


def test_cache_location_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("OPENDR_MODEL_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert registry.default_cache_dir() == tmp_path / "xdg" / "opendr-ros2" / "models"
    monkeypatch.setenv("OPENDR_MODEL_CACHE", str(tmp_path / "mine"))
    assert registry.default_cache_dir() == tmp_path / "mine"
    monkeypatch.setenv("OPENDR_OFFLINE", "yes")
    assert registry.offline_mode()


def test_the_shipped_manifests_resolve_and_verify():
    """Every model the suite ships or installs is present and has the checksum its manifest states."""
    reg = ModelRegistry(offline=True)
    assert {"blazeface_short_range", "blazepose_detector", "blazepose_landmark_full"} <= set(reg.names())
    for name in reg.names():
        spec = reg.spec(name)
        if spec.source != "url":
            assert reg.resolve(name).is_file()
        assert spec.license and spec.origin, f"{name}: license and origin are required in the manifest"
