"""Model discovery, content versions and the download command, without torch or a model hub."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from fimum_ai.errors import ModelDownloadFailed
from fimum_ai.images.model_store import (
    VERSION_CACHE_NAME,
    ModelSet,
    download,
    find_models,
    is_model_dir,
    list_models,
    model_version,
    plain_name,
    select_files,
    staging_path,
)
from fimum_ai.settings import Settings, load_settings


def fake_model(folder: Path, weights: bytes = b"\x00" * 4096) -> Path:
    """A diffusers-shaped folder: model_index.json, a config and a weights file."""
    (folder / "unet").mkdir(parents=True)
    (folder / "model_index.json").write_text('{"_class_name": "StableDiffusionXLPipeline"}')
    (folder / "unet" / "config.json").write_text('{"in_channels": 4}')
    (folder / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(weights)
    return folder


def settings_for(monkeypatch: pytest.MonkeyPatch, root: Path) -> Settings:
    monkeypatch.setenv("IMAGE_MODEL_BASE_PATH", str(root / "sdxl-base"))
    monkeypatch.setenv("IMAGE_MODEL_REFINER_PATH", str(root / "sdxl-refiner"))
    monkeypatch.setenv("IMAGE_MODEL_UPSCALER_PATH", str(root / "x4-upscaler"))
    monkeypatch.setenv("FIMUM_DEMO_MODEL_PATH", str(root / "tiny-sdxl"))
    return load_settings()


def rewrite_byte(file: Path, offset: int, value: int) -> None:
    # A real edit lands on a later clock tick than the previous hash; make sure it does here too.
    time.sleep(0.02)
    with file.open("r+b") as handle:
        handle.seek(offset)
        handle.write(bytes([value]))


# --------------------------------------------------------------------------------------------------
# is_model_dir / find_models


def test_is_model_dir_needs_model_index(tmp_path: Path) -> None:
    assert not is_model_dir(tmp_path / "missing")
    (tmp_path / "partial" / "unet").mkdir(parents=True)
    assert not is_model_dir(tmp_path / "partial")
    assert is_model_dir(fake_model(tmp_path / "model"))
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "model_index.json").mkdir()  # a folder by that name is not a model
    assert not is_model_dir(tmp_path / "odd")


def test_find_models_none_installed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert find_models(settings_for(monkeypatch, tmp_path)) is None


def test_find_models_falls_back_to_demo_set(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    settings = settings_for(monkeypatch, tmp_path)
    fake_model(tmp_path / "tiny-sdxl" / "base")
    fake_model(tmp_path / "tiny-sdxl" / "upscaler")
    assert find_models(settings) == ModelSet(
        base=tmp_path / "tiny-sdxl" / "base",
        refiner=None,
        upscaler=tmp_path / "tiny-sdxl" / "upscaler",
        demo=True,
    )


def test_find_models_prefers_real_sdxl(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    settings = settings_for(monkeypatch, tmp_path)
    for kind in ("base", "refiner", "upscaler"):
        fake_model(tmp_path / "tiny-sdxl" / kind)
    fake_model(tmp_path / "sdxl-base")
    fake_model(tmp_path / "sdxl-refiner")
    (tmp_path / "x4-upscaler").mkdir()  # present but not a model (e.g. copy in progress)
    found = find_models(settings)
    assert found == ModelSet(
        base=tmp_path / "sdxl-base", refiner=tmp_path / "sdxl-refiner", upscaler=None, demo=False
    )


def test_real_refiner_without_real_base_is_not_used(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    settings = settings_for(monkeypatch, tmp_path)
    fake_model(tmp_path / "sdxl-refiner")
    fake_model(tmp_path / "tiny-sdxl" / "base")
    found = find_models(settings)
    assert found is not None
    assert found.demo and found.base == tmp_path / "tiny-sdxl" / "base" and found.refiner is None


# --------------------------------------------------------------------------------------------------
# model_version


def test_version_is_stable_and_location_independent(tmp_path: Path) -> None:
    one = fake_model(tmp_path / "one", weights=os.urandom(10_000))
    two = fake_model(
        tmp_path / "two", weights=(one / "unet" / "diffusion_pytorch_model.safetensors").read_bytes()
    )
    version = model_version(one)
    assert version.startswith("sha256:") and len(version) == len("sha256:") + 16
    assert model_version(one) == version
    assert model_version(two) == version


def test_version_changes_with_one_weight_byte(tmp_path: Path) -> None:
    model = fake_model(tmp_path / "m", weights=bytes(100_000))
    before = model_version(model)
    rewrite_byte(model / "unet" / "diffusion_pytorch_model.safetensors", 54_321, 1)
    after = model_version(model)
    assert after != before
    rewrite_byte(model / "unet" / "diffusion_pytorch_model.safetensors", 54_321, 0)
    assert model_version(model) == before


def test_version_covers_configs_but_not_docs_or_hidden_files(tmp_path: Path) -> None:
    model = fake_model(tmp_path / "m")
    before = model_version(model)
    (model / "README.md").write_text("notes")
    (model / ".cache").mkdir()
    (model / ".cache" / "x.json").write_text("{}")
    assert model_version(model) == before
    time.sleep(0.02)
    (model / "unet" / "config.json").write_text('{"in_channels": 9}')
    assert model_version(model) != before
    (model / "unet" / "diffusion_pytorch_model.safetensors.index.json").write_text("{}")
    assert model_version(model) != before


def test_version_cache_is_used_and_invalidated(tmp_path: Path) -> None:
    model = fake_model(tmp_path / "m", weights=os.urandom(50_000))
    true_version = model_version(model)
    cache_file = model / VERSION_CACHE_NAME
    cache = json.loads(cache_file.read_text())
    weights = "unet/diffusion_pytorch_model.safetensors"
    assert set(cache["files"]) == {"model_index.json", "unet/config.json", weights}
    # A forged digest with the same (size, mtime) is believed: the file is not hashed again.
    cache["files"][weights]["sha256"] = "0" * 64
    cache_file.write_text(json.dumps(cache))
    assert model_version(model) != true_version
    # Once the file's mtime moves, the cached digest is dropped and the file re-hashed.
    stat = (model / weights).stat()
    os.utime(model / weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert model_version(model) == true_version
    assert json.loads(cache_file.read_text())["files"][weights]["sha256"] != "0" * 64


def test_version_without_writable_cache(tmp_path: Path) -> None:
    model = fake_model(tmp_path / "m", weights=os.urandom(1000))
    expected = model_version(
        fake_model(
            tmp_path / "ref", weights=(model / "unet" / "diffusion_pytorch_model.safetensors").read_bytes()
        )
    )
    (model / VERSION_CACHE_NAME).mkdir()  # neither readable nor replaceable as a file
    assert model_version(model) == expected
    assert model_version(model) == expected
    assert not list(model.glob(f"{VERSION_CACHE_NAME}.*.tmp"))


def test_corrupt_cache_is_ignored(tmp_path: Path) -> None:
    model = fake_model(tmp_path / "m", weights=os.urandom(1000))
    expected = model_version(model)
    (model / VERSION_CACHE_NAME).write_text("{not json")
    assert model_version(model) == expected
    assert json.loads((model / VERSION_CACHE_NAME).read_text())["format"] == 1


# --------------------------------------------------------------------------------------------------
# list_models


def test_list_models(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    settings = settings_for(monkeypatch, tmp_path)
    assert list_models(settings) == []
    fake_model(tmp_path / "sdxl-base", weights=b"a" * 1000)
    fake_model(tmp_path / "tiny-sdxl" / "base", weights=b"b" * 10)
    fake_model(tmp_path / "tiny-sdxl" / "refiner", weights=b"c" * 20)
    models = list_models(settings)
    assert [(m.name, m.kind, m.demo) for m in models] == [
        ("sdxl-base", "base", False),
        ("tiny-sdxl/base", "base", True),
        ("tiny-sdxl/refiner", "refiner", True),
    ]
    real = models[0]
    assert real.path == tmp_path / "sdxl-base"
    files = [f for f in real.path.rglob("*") if f.is_file() and not f.name.startswith(".")]
    assert real.size_bytes == sum(f.stat().st_size for f in files) > 1000
    assert real.version == model_version(real.path)
    assert models[1].version != models[2].version


# --------------------------------------------------------------------------------------------------
# Which hub files a download takes

SDXL_BASE_FILES = [
    ".gitattributes",
    "README.md",
    "model_index.json",
    "sd_xl_base_1.0.safetensors",
    "scheduler/scheduler_config.json",
    "text_encoder/config.json",
    "text_encoder/flax_model.msgpack",
    "text_encoder/model.fp16.safetensors",
    "text_encoder/model.onnx",
    "text_encoder/model.safetensors",
    "text_encoder/openvino_model.bin",
    "text_encoder_2/config.json",
    "text_encoder_2/model.fp16.safetensors",
    "text_encoder_2/model.safetensors",
    "tokenizer/merges.txt",
    "tokenizer/special_tokens_map.json",
    "tokenizer/tokenizer_config.json",
    "tokenizer/vocab.json",
    "tokenizer_2/merges.txt",
    "tokenizer_2/special_tokens_map.json",
    "tokenizer_2/tokenizer_config.json",
    "tokenizer_2/vocab.json",
    "unet/config.json",
    "unet/diffusion_pytorch_model.fp16.safetensors",
    "unet/diffusion_pytorch_model.safetensors",
    "unet/openvino_model.bin",
    "vae/config.json",
    "vae/diffusion_pytorch_model.fp16.safetensors",
    "vae/diffusion_pytorch_model.safetensors",
    "vae_1_0/config.json",
    "vae_1_0/diffusion_pytorch_model.fp16.safetensors",
]
SDXL_COMPONENTS = ["scheduler", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "unet", "vae"]


def test_select_files_takes_fp16_weights_of_pipeline_components_only() -> None:
    chosen = select_files(SDXL_BASE_FILES, SDXL_COMPONENTS)
    weights = [f for f in chosen if f.endswith((".safetensors", ".bin"))]
    assert weights == [
        "text_encoder/model.fp16.safetensors",
        "text_encoder_2/model.fp16.safetensors",
        "unet/diffusion_pytorch_model.fp16.safetensors",
        "vae/diffusion_pytorch_model.fp16.safetensors",
    ]
    assert "model_index.json" in chosen and "tokenizer_2/merges.txt" in chosen
    assert not any(f.startswith(("vae_1_0/", "sd_xl", "README")) for f in chosen)


def test_select_files_falls_back_to_plain_weights_per_component() -> None:
    files = [
        "model_index.json",
        "unet/config.json",
        "unet/diffusion_pytorch_model.fp16.safetensors",
        "unet/diffusion_pytorch_model.safetensors",
        "vae/config.json",
        "vae/diffusion_pytorch_model.safetensors",  # no fp16 file for this component
        "text_encoder/config.json",
        "text_encoder/pytorch_model.bin",  # no safetensors at all
        "low_res_scheduler/scheduler_config.json",
    ]
    chosen = select_files(files, ["low_res_scheduler", "text_encoder", "unet", "vae"])
    assert chosen == [
        "low_res_scheduler/scheduler_config.json",
        "model_index.json",
        "text_encoder/config.json",
        "text_encoder/pytorch_model.bin",
        "unet/config.json",
        "unet/diffusion_pytorch_model.fp16.safetensors",
        "vae/config.json",
        "vae/diffusion_pytorch_model.safetensors",
    ]


def test_select_files_keeps_sharded_fp16_weights_with_their_index() -> None:
    files = [
        "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors.index.json",
        "unet/diffusion_pytorch_model.safetensors.index.fp16.json",
        "unet/diffusion_pytorch_model-00001-of-00002.safetensors",
        "unet/diffusion_pytorch_model-00002-of-00002.safetensors",
        "unet/diffusion_pytorch_model.fp16-00001-of-00002.safetensors",
        "unet/diffusion_pytorch_model.fp16-00002-of-00002.safetensors",
    ]
    chosen = select_files(files, ["unet"])
    assert chosen == [
        "unet/config.json",
        "unet/diffusion_pytorch_model.fp16-00001-of-00002.safetensors",
        "unet/diffusion_pytorch_model.fp16-00002-of-00002.safetensors",
        "unet/diffusion_pytorch_model.safetensors.index.fp16.json",
    ]
    assert [plain_name(f) for f in chosen[1:]] == [
        "unet/diffusion_pytorch_model-00001-of-00002.safetensors",
        "unet/diffusion_pytorch_model-00002-of-00002.safetensors",
        "unet/diffusion_pytorch_model.safetensors.index.json",
    ]


# --------------------------------------------------------------------------------------------------
# download without a hub


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts TCP connections (kernel backlog) but never answers a byte."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield int(sock.getsockname()[1])


def assert_one_line_failure(exc: ModelDownloadFailed, target: Path) -> None:
    message = str(exc)
    assert "\n" not in message and len(message) < 400
    assert str(target) in message
    assert exc.code == "model_download_failed" and exc.status == 503
    assert not is_model_dir(target)


def test_download_unreachable_hub_fails_fast(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, closed_port: int
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port}")
    settings = settings_for(monkeypatch, tmp_path)
    start = time.monotonic()
    with pytest.raises(ModelDownloadFailed) as info:
        download("all", settings, progress=False)
    assert time.monotonic() - start < 5
    target = tmp_path / "sdxl-base"
    assert_one_line_failure(info.value, target)
    assert str(info.value).startswith(f"cannot reach the Hugging Face hub (http://127.0.0.1:{closed_port})")
    assert "copy the model folder" in str(info.value)
    assert not target.exists()
    assert find_models(settings) is None


def test_download_silent_hub_times_out(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, silent_server: int
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{silent_server}/")
    settings = settings_for(monkeypatch, tmp_path)
    start = time.monotonic()
    with pytest.raises(ModelDownloadFailed) as info:
        download("refiner", settings, progress=False, timeout_s=1.0)
    assert time.monotonic() - start < 5
    assert_one_line_failure(info.value, tmp_path / "sdxl-refiner")
    assert "cannot reach the Hugging Face hub" in str(info.value)


def test_download_keeps_partial_folder_but_never_a_model_at_target(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, closed_port: int
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port}")
    settings = settings_for(monkeypatch, tmp_path)
    target = tmp_path / "x4-upscaler"
    partial = fake_model(staging_path(target))  # left by an interrupted download
    with pytest.raises(ModelDownloadFailed) as info:
        download("upscaler", settings, progress=False)
    assert_one_line_failure(info.value, target)
    assert not target.exists()
    assert is_model_dir(partial)  # kept for resuming


def test_download_leaves_installed_models_alone_without_network(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, closed_port: int
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port}")
    settings = settings_for(monkeypatch, tmp_path)
    installed = fake_model(tmp_path / "sdxl-base")
    assert download("base", settings, progress=False) == [installed]


def test_download_refuses_to_overwrite_a_foreign_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, closed_port: int
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port}")
    settings = settings_for(monkeypatch, tmp_path)
    (tmp_path / "sdxl-base").mkdir()
    (tmp_path / "sdxl-base" / "notes.txt").write_text("mine")
    with pytest.raises(ModelDownloadFailed, match="not a diffusers model folder"):
        download("base", settings, progress=False)
    assert (tmp_path / "sdxl-base" / "notes.txt").read_text() == "mine"


def test_model_store_does_not_import_torch() -> None:
    code = (
        "import sys, fimum_ai.images.model_store; print('torch' in sys.modules, 'diffusers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# --------------------------------------------------------------------------------------------------
# download against a hub on loopback: a small HTTP server speaking the three Hub endpoints that
# huggingface_hub uses (repo info, recursive tree, resolve), so the real client code runs end to end.

HUB_SHA = "0123456789abcdef0123456789abcdef01234567"


class LoopbackHub:
    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.missing: set[str] = set()  # answered 404 while set: a file the hub fails to serve
        self.fetched: list[str] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                self._serve(body=False)

            def do_GET(self) -> None:
                self._serve(body=True)

            def _serve(self, body: bool) -> None:
                path = unquote(urlsplit(self.path).path)
                if path.startswith("/api/models/") and "/tree/" in path:
                    return self._json(
                        [
                            {
                                "type": "file",
                                "path": name,
                                "size": len(data),
                                "oid": hashlib.sha1(data).hexdigest(),
                            }
                            for name, data in sorted(hub.files.items())
                        ]
                    )
                if path.startswith("/api/models/"):  # repo info: /api/models/<org>/<name>[/revision/<rev>]
                    repo = "/".join(path.removeprefix("/api/models/").split("/")[:2])
                    return self._json({"id": repo, "sha": HUB_SHA})
                if f"/resolve/{HUB_SHA}/" in path:
                    name = path.split(f"/resolve/{HUB_SHA}/", 1)[1]
                    if name in hub.files and name not in hub.missing:
                        return self._file(name, hub.files[name], body)
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _json(self, data: object) -> None:
                payload = json.dumps(data).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _file(self, name: str, data: bytes, body: bool) -> None:
                self.send_response(200)
                self.send_header("X-Repo-Commit", HUB_SHA)
                self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if body:
                    hub.fetched.append(name)
                    self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


HUB_REPO_FILES: dict[str, bytes] = {
    ".gitattributes": b"*.safetensors filter=lfs\n",
    "README.md": b"# model card\n",
    "model_index.json": json.dumps(
        {
            "_class_name": "StableDiffusionXLPipeline",
            "force_zeros_for_empty_prompt": True,
            "scheduler": ["diffusers", "EulerDiscreteScheduler"],
            "unet": ["diffusers", "UNet2DConditionModel"],
            "vae": ["diffusers", "AutoencoderKL"],
            "text_encoder": [None, None],
        }
    ).encode(),
    "scheduler/scheduler_config.json": b'{"_class_name": "EulerDiscreteScheduler"}',
    "unet/config.json": b'{"_class_name": "UNet2DConditionModel"}',
    "unet/diffusion_pytorch_model.fp16.safetensors": b"half" * 3000,
    "unet/diffusion_pytorch_model.safetensors": b"full" * 6000,
    "vae/config.json": b'{"_class_name": "AutoencoderKL"}',
    "vae/diffusion_pytorch_model.safetensors": b"vae-full" * 500,  # no fp16 file for the VAE
    "vae_1_0/config.json": b"{}",
    "vae_1_0/diffusion_pytorch_model.fp16.safetensors": b"old" * 100,
    "sd_xl_base_1.0.safetensors": b"single-file checkpoint",
}


@pytest.fixture
def loopback_hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[LoopbackHub]:
    hub = LoopbackHub(dict(HUB_REPO_FILES))
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    try:
        yield hub
    finally:
        hub.close()


def test_download_installs_fp16_files_under_plain_names(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, loopback_hub: LoopbackHub
) -> None:
    settings = settings_for(monkeypatch, tmp_path)
    target = tmp_path / "sdxl-base"
    assert download("base", settings, progress=False) == [target]
    assert is_model_dir(target) and not staging_path(target).exists()
    installed = sorted(f.relative_to(target).as_posix() for f in target.rglob("*") if f.is_file())
    assert installed == [
        "model_index.json",
        "scheduler/scheduler_config.json",
        "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors",
        "vae/config.json",
        "vae/diffusion_pytorch_model.safetensors",
    ]
    # The fp16 UNet under the name from_pretrained looks for; the VAE's plain weights as they are.
    assert (target / "unet/diffusion_pytorch_model.safetensors").read_bytes() == b"half" * 3000
    assert (target / "vae/diffusion_pytorch_model.safetensors").read_bytes() == b"vae-full" * 500
    assert "unet/diffusion_pytorch_model.safetensors" not in loopback_hub.fetched
    assert find_models(settings) == ModelSet(base=target, refiner=None, upscaler=None, demo=False)


def test_interrupted_download_resumes_and_only_then_installs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, loopback_hub: LoopbackHub
) -> None:
    settings = settings_for(monkeypatch, tmp_path)
    target = tmp_path / "sdxl-refiner"
    loopback_hub.missing = {"unet/diffusion_pytorch_model.fp16.safetensors"}
    with pytest.raises(ModelDownloadFailed) as info:
        download("refiner", settings, progress=False)
    assert_one_line_failure(info.value, target)
    assert not target.exists() and staging_path(target).is_dir()
    fetched_first = set(loopback_hub.fetched)
    # model_index.json is fetched before the parallel snapshot; which other files finish before
    # the failing one aborts it is a race. Whatever finished must not be fetched again below.
    assert "model_index.json" in fetched_first

    loopback_hub.missing = set()
    loopback_hub.fetched.clear()
    assert download("refiner", settings, progress=False) == [target]
    assert is_model_dir(target) and not staging_path(target).exists()
    assert "unet/diffusion_pytorch_model.fp16.safetensors" in loopback_hub.fetched
    assert not fetched_first & set(loopback_hub.fetched)  # finished files were not fetched again
