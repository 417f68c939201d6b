"""Where the image models live, which set to load, their versions, and `fimum models download`.

No torch or diffusers here: the API process imports this module to report model status.
`huggingface_hub` is imported lazily, only by `download`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from fimum_ai.errors import ModelDownloadFailed
from fimum_ai.settings import Settings

ModelKind = Literal["base", "refiner", "upscaler"]
KINDS: tuple[ModelKind, ...] = ("base", "refiner", "upscaler")

HUB_REPOS: dict[ModelKind, str] = {
    "base": "stabilityai/stable-diffusion-xl-base-1.0",
    "refiner": "stabilityai/stable-diffusion-xl-refiner-1.0",
    "upscaler": "stabilityai/stable-diffusion-x4-upscaler",
}
DEFAULT_ENDPOINT = "https://huggingface.co"

VERSION_CACHE_NAME = ".fimum-version-cache.json"
_VERSION_CACHE_FORMAT = 1
# What decides a model's outputs: configs, weight indices, tokenizer files, weights.
_VERSIONED_SUFFIXES = frozenset({".json", ".txt", ".model", ".safetensors", ".bin"})
_CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ModelSet:
    base: Path
    refiner: Path | None
    upscaler: Path | None
    demo: bool  # True when these are the random-weight tiny demo models


@dataclass(frozen=True, slots=True)
class InstalledModel:
    name: str
    kind: ModelKind
    path: Path
    size_bytes: int
    version: str
    demo: bool


def is_model_dir(path: Path) -> bool:
    """A diffusers pipeline folder: it has model_index.json."""
    return (path / "model_index.json").is_file()


def configured_paths(settings: Settings) -> dict[ModelKind, Path]:
    paths = settings.image_generation.model
    return {"base": paths.base_path, "refiner": paths.refiner_path, "upscaler": paths.upscaler_path}


def demo_paths(settings: Settings) -> dict[ModelKind, Path]:
    return {kind: settings.demo_model_path / kind for kind in KINDS}


def find_models(settings: Settings) -> ModelSet | None:
    """Real SDXL when its base is installed, else the tiny demo set, else None."""
    for paths, demo in ((configured_paths(settings), False), (demo_paths(settings), True)):
        if is_model_dir(paths["base"]):
            return ModelSet(
                base=paths["base"],
                refiner=paths["refiner"] if is_model_dir(paths["refiner"]) else None,
                upscaler=paths["upscaler"] if is_model_dir(paths["upscaler"]) else None,
                demo=demo,
            )
    return None


def list_models(settings: Settings) -> list[InstalledModel]:
    """Every installed model folder: the configured real ones first, then the demo set."""
    found: list[InstalledModel] = []
    for paths, demo in ((configured_paths(settings), False), (demo_paths(settings), True)):
        for kind, path in paths.items():
            if not is_model_dir(path):
                continue
            name = f"{settings.demo_model_path.name}/{kind}" if demo else path.name
            found.append(
                InstalledModel(
                    name=name,
                    kind=kind,
                    path=path,
                    size_bytes=folder_size(path),
                    version=model_version(path),
                    demo=demo,
                )
            )
    return found


def folder_size(path: Path) -> int:
    return sum(file.stat().st_size for file in _visible_files(path))


# --------------------------------------------------------------------------------------------------
# Versions


def model_version(path: Path) -> str:
    """Content hash of configs, weight indices, tokenizer files and weights: "sha256:<16 hex>".

    Per-file digests are cached in VERSION_CACHE_NAME inside the folder, keyed by (relative path,
    size, mtime_ns), so a multi-GB model is hashed once, not at every start. A read-only folder
    just goes without the cache.
    """
    cache_file = path / VERSION_CACHE_NAME
    cached = _read_version_cache(cache_file)
    fresh: dict[str, dict[str, Any]] = {}
    outer = hashlib.sha256()
    for file in sorted(_versioned_files(path), key=lambda f: f.relative_to(path).as_posix()):
        rel = file.relative_to(path).as_posix()
        stat = file.stat()
        entry = cached.get(rel)
        if entry is None or entry.get("size") != stat.st_size or entry.get("mtime_ns") != stat.st_mtime_ns:
            entry = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": _file_sha256(file)}
        fresh[rel] = entry
        outer.update(f"{rel}\0{entry['sha256']}\n".encode())
    if fresh != cached:
        _write_version_cache(cache_file, fresh)
    return "sha256:" + outer.hexdigest()[:16]


def _visible_files(path: Path) -> Iterator[Path]:
    """Regular files below `path`, skipping hidden files and folders (caches, download metadata)."""
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                yield Path(root) / name


def _versioned_files(path: Path) -> Iterator[Path]:
    return (file for file in _visible_files(path) if file.suffix in _VERSIONED_SUFFIXES)


def _file_sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with file.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _read_version_cache(cache_file: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(cache_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("format") != _VERSION_CACHE_FORMAT:
        return {}
    files = data.get("files")
    if not isinstance(files, dict):
        return {}
    return {key: value for key, value in files.items() if isinstance(value, dict) and "sha256" in value}


def _write_version_cache(cache_file: Path, files: dict[str, dict[str, Any]]) -> None:
    # Write-then-rename so a concurrent reader never sees half a file; any OSError (read-only
    # folder, full disk) just means no cache.
    tmp = cache_file.with_name(f"{cache_file.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps({"format": _VERSION_CACHE_FORMAT, "files": files}, sort_keys=True))
        os.replace(tmp, cache_file)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()


# --------------------------------------------------------------------------------------------------
# Download (users' machines; this project's machines have no hub)


def download(
    which: Literal["base", "refiner", "upscaler", "all"],
    settings: Settings,
    *,
    progress: bool = True,
    timeout_s: float = 10.0,
) -> list[Path]:
    """Fetch the fp16 safetensors of the named model(s) into their configured paths.

    Files go to `<path>.partial` first (an interrupted run resumes there) and the folder is
    renamed to `<path>` only once every file is present, so `<path>` is never half a model.
    Already installed models are left alone. Honours HF_ENDPOINT, HF_TOKEN and HF_HUB_OFFLINE.
    Raises ModelDownloadFailed with a one-line message.
    """
    kinds: tuple[ModelKind, ...] = KINDS if which == "all" else (which,)
    targets = configured_paths(settings)
    return [_download_one(HUB_REPOS[kind], targets[kind], progress, timeout_s) for kind in kinds]


def staging_path(target: Path) -> Path:
    return target.with_name(target.name + ".partial")


def _hub_endpoint() -> str:
    # Read at call time (huggingface_hub reads HF_ENDPOINT once, at import).
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def _download_one(repo_id: str, target: Path, progress: bool, timeout_s: float) -> Path:
    if is_model_dir(target):
        return target
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ModelDownloadFailed(
            f"{target} exists but is not a diffusers model folder (no model_index.json); "
            "move it away and run the download again",
            details={"path": str(target)},
        )
    staging = staging_path(target)
    endpoint = _hub_endpoint()
    try:
        with _progress_bars(progress):
            expected = _fetch(repo_id, staging, endpoint, timeout_s)
    except ModelDownloadFailed:
        raise
    except Exception as exc:  # every hub/network/disk failure becomes one clear line
        raise ModelDownloadFailed(
            _describe_failure(exc, repo_id, endpoint, target),
            details={"repo": repo_id, "path": str(target), "endpoint": endpoint},
        ) from exc
    _verify(staging, expected, repo_id)
    _drop_variant_suffixes(staging, list(expected))
    shutil.rmtree(staging / ".cache", ignore_errors=True)
    if target.exists():
        target.rmdir()  # empty, checked above
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staging, target)
    return target


def _fetch(repo_id: str, staging: Path, endpoint: str, timeout_s: float) -> dict[str, int]:
    """Download the selected files of `repo_id` into `staging`; returns {repo path: size}."""
    from huggingface_hub import HfApi, hf_hub_download, snapshot_download
    from huggingface_hub.hf_api import RepoFile

    api = HfApi(endpoint=endpoint)
    # One short request first: offline, this fails in seconds instead of after retries.
    commit = api.repo_info(repo_id, timeout=timeout_s).sha
    staging.mkdir(parents=True, exist_ok=True)
    sizes = {
        entry.path: int(entry.size)
        for entry in api.list_repo_tree(repo_id, recursive=True, revision=commit)
        if isinstance(entry, RepoFile)
    }
    index_file = hf_hub_download(
        repo_id,
        "model_index.json",
        revision=commit,
        local_dir=staging,
        endpoint=endpoint,
        etag_timeout=timeout_s,
    )
    wanted = select_files(list(sizes), pipeline_components(Path(index_file)))
    snapshot_download(
        repo_id,
        revision=commit,
        local_dir=staging,
        allow_patterns=wanted,
        endpoint=endpoint,
        etag_timeout=timeout_s,
    )
    return {path: sizes[path] for path in wanted}


def _verify(staging: Path, expected: dict[str, int], repo_id: str) -> None:
    # snapshot_download may return a partial folder when the connection drops mid-way.
    missing = [
        rel
        for rel, size in expected.items()
        if not (staging / rel).is_file() or (staging / rel).stat().st_size != size
    ]
    if missing:
        raise ModelDownloadFailed(
            f"download of {repo_id} is incomplete ({len(missing)} of {len(expected)} files missing, "
            f"e.g. {missing[0]}); run the download again to resume from {staging}",
            details={"repo": repo_id, "missing": missing},
        )


@contextlib.contextmanager
def _progress_bars(enabled: bool) -> Iterator[None]:
    from huggingface_hub.utils import (
        are_progress_bars_disabled,
        disable_progress_bars,
        enable_progress_bars,
    )

    was_disabled = bool(are_progress_bars_disabled())
    if not enabled:
        disable_progress_bars()
    try:
        yield
    finally:
        if not enabled and not was_disabled:
            enable_progress_bars()


def _describe_failure(exc: Exception, repo_id: str, endpoint: str, target: Path) -> str:
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
    )

    reason = _short(exc)
    if isinstance(exc, OfflineModeIsEnabled):
        return (
            f"HF_HUB_OFFLINE is set, so {repo_id} cannot be downloaded; "
            f"copy the model folder to {target} instead"
        )
    if isinstance(exc, GatedRepoError):
        return f"{repo_id} is gated: accept its licence on {endpoint} and set HF_TOKEN ({reason})"
    if isinstance(exc, RepositoryNotFoundError):
        return f"{repo_id} not found on {endpoint} (or HF_TOKEN lacks access)"
    if isinstance(exc, HfHubHTTPError):
        status = getattr(getattr(exc, "response", None), "status_code", "?")
        return (
            f"the Hugging Face hub ({endpoint}) answered HTTP {status} for {repo_id} ({reason}); "
            f"run the download again to resume from {staging_path(target)}"
        )
    if _is_network_error(exc):
        return (
            f"cannot reach the Hugging Face hub ({endpoint}): {reason}; "
            f"copy the model folder to {target} instead"
        )
    return f"download of {repo_id} failed: {reason}; run it again to resume from {staging_path(target)}"


def _is_network_error(exc: BaseException) -> bool:
    # httpx2 (huggingface_hub's client) errors, and plain socket errors.
    chain: BaseException | None = exc
    while chain is not None:
        if isinstance(chain, ConnectionError | TimeoutError):
            return True
        module = type(chain).__module__
        if module.startswith("httpx") and type(chain).__name__.endswith(("Error", "Timeout")):
            return True
        chain = chain.__cause__ or chain.__context__
    return False


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


# --------------------------------------------------------------------------------------------------
# Which files of a hub repo make up the pipeline

_VARIANT = re.compile(r"\.fp16(?=[.-])")  # model.fp16.safetensors, x.fp16-00001-of-00002.safetensors


def pipeline_components(model_index: Path) -> list[str]:
    """Sub-folders model_index.json names as components (skips `_class_name` and null entries)."""
    data = json.loads(model_index.read_text(encoding="utf-8"))
    return sorted(
        key
        for key, value in data.items()
        if not key.startswith("_") and isinstance(value, list) and value and value[0] is not None
    )


def select_files(repo_files: list[str], components: list[str]) -> list[str]:
    """model_index.json, each component's configs/tokenizer files, and one set of its weights.

    Weights: fp16 safetensors where the component has them, else plain safetensors, else
    (fp16, then plain) .bin — the x4 upscaler does not carry an fp16 file for everything.
    """
    chosen = ["model_index.json"] if "model_index.json" in repo_files else []
    for component in components:
        files = [f for f in repo_files if f.startswith(component + "/") and f.count("/") == 1]
        chosen += [f for f in files if _is_support_file(f)]
        chosen += _pick_weights(files)
    return sorted(chosen)


def _is_support_file(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return base.endswith((".json", ".txt", ".model")) and ".index." not in base


def _pick_weights(files: list[str]) -> list[str]:
    for ext in (".safetensors", ".bin"):
        weights = [f for f in files if f.endswith(ext)]
        indices = [f for f in files if f.endswith(".json") and ".index" in f and ext in f]
        for want_variant in (True, False):
            picked = [f for f in weights + indices if bool(_VARIANT.search(f)) == want_variant]
            if any(f in weights for f in picked):
                return picked
    return []


def plain_name(name: str) -> str:
    """model.fp16.safetensors -> model.safetensors (what from_pretrained looks for by default)."""
    return _VARIANT.sub("", name)


def _drop_variant_suffixes(folder: Path, files: list[str]) -> None:
    """Rename fp16 variant files to the plain names, so the folder loads without `variant=`.

    The tiny demo models are saved without a variant too: both load through the same call.
    """
    for rel in files:
        new_rel = plain_name(rel)
        if new_rel == rel:
            continue
        source = folder / rel
        if rel.endswith(".json"):  # a sharded weights index: its weight_map names the shards
            index = json.loads(source.read_text(encoding="utf-8"))
            index["weight_map"] = {k: plain_name(v) for k, v in index.get("weight_map", {}).items()}
            source.write_text(json.dumps(index, indent=2), encoding="utf-8")
        os.replace(source, folder / new_rel)
