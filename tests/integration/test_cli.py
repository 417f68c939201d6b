"""The `fimum` command as users run it: a real subprocess, real files, real exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

FIMUM = str(Path(sys.executable).with_name("fimum"))


def fimum(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FIMUM, *args], env=os.environ | (env or {}), capture_output=True, text=True, timeout=timeout
    )


def test_help_lists_every_command() -> None:
    result = fimum("--help")
    assert result.returncode == 0
    for command in ("serve", "generate", "edit", "outpaint", "upscale", "config", "models"):
        assert command in result.stdout
    models_help = fimum("models", "--help").stdout
    for command in ("list", "download", "make-tiny", "make-full-random"):
        assert command in models_help


def test_config_show_names_sources() -> None:
    result = fimum("config", "show", "--json", env={"FIMUM_PORT": "9100"})
    assert result.returncode == 0, result.stderr
    rows = {row["key"]: row for row in json.loads(result.stdout)}
    assert rows["port"]["value"] == 9100
    assert rows["port"]["source"] == "env FIMUM_PORT"
    assert rows["image_generation.generation.default_steps"]["source"].endswith("models.yaml")


def test_bad_config_exits_2_with_one_line() -> None:
    result = fimum("config", "show", env={"IMAGE_DEVICE": "tpu"})
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1
    assert "image_generation.hardware.device" in lines[0]
    assert "cpu, cuda, cuda:N, mps" in lines[0]


def test_generate_without_model_fails_cleanly(tmp_path: Path) -> None:
    result = fimum("generate", "a lighthouse", "--width", "512", "--height", "512", "--out", str(tmp_path))
    assert result.returncode == 1
    assert "fimum models download" in result.stderr
    assert "Traceback" not in result.stderr
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("generate", "x", "--width", "500"), "--width: Input should be a multiple of 64"),
        (("generate", "x", "--steps", "101"), "--steps: Input should be less than or equal to 100"),
        (("generate", "x", "--scheduler", "Heun"), "--scheduler"),
        (("generate", "", "--steps", "20"), "--prompt"),
        (("edit", "missing.png", "x"), "image missing.png does not exist"),
        (("upscale", "missing.png", "--scale", "3"), "--scale"),
        (("outpaint", "missing.png", "x"), "give at least one of left, right, top, bottom"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(args: tuple[str, ...], message: str) -> None:
    result = fimum(*args)
    assert result.returncode == 2
    assert message in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr


def test_not_an_image_exits_2(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.png"
    bogus.write_text("not a picture")
    result = fimum("edit", str(bogus), "a cat")
    assert result.returncode == 2
    assert "is not a readable image" in result.stderr


def test_generate_writes_png_with_parameters_and_sidecar(with_tiny_models: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = fimum(
        "generate", "a lighthouse", "--width", "512", "--height", "512", "--steps", "20",
        "--seed", "11", "--batch", "2", "--preset", "sketch", "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    pngs = sorted(out.glob("*.png"))
    assert [p.name for p in pngs] == ["txt2img-11-0.png", "txt2img-12-1.png"]
    with Image.open(pngs[1]) as img:
        assert img.size == (512, 512)
        text = img.text  # type: ignore[attr-defined]
    assert text["parameters"].startswith("pencil sketch of a lighthouse")
    assert "Seed: 12" in text["parameters"]
    assert json.loads(text["fimum"])["seed"] == 12
    sidecar = json.loads(pngs[1].with_suffix(".json").read_text())
    assert sidecar["seed"] == 12
    assert sidecar["parameters"]["style_preset"] == "sketch"
    assert sidecar["demo_model"] is True
    assert "generate" in result.stderr  # the progress bar's label


def test_edit_outpaint_upscale_on_the_demo_model(with_tiny_models: Path, tmp_path: Path) -> None:
    source = tmp_path / "in.png"
    Image.new("RGB", (512, 512), (200, 40, 40)).save(source)
    mask = tmp_path / "mask.png"
    m = Image.new("L", (512, 512), 0)
    m.paste(255, (128, 128, 384, 384))
    m.save(mask)
    out = tmp_path / "out"

    inpaint = fimum("edit", str(source), "a blue square", "--mask", str(mask), "--steps", "20",
                    "--seed", "1", "--out", str(out))  # fmt: skip
    assert inpaint.returncode == 0, inpaint.stderr
    with Image.open(out / "inpaint-1.png") as img:
        assert img.size == (512, 512)
        assert img.getpixel((5, 5)) == (200, 40, 40)  # outside the mask: untouched

    outp = fimum("outpaint", str(source), "more sky", "--top", "64", "--steps", "20", "--seed", "2",
                 "--out", str(out))  # fmt: skip
    assert outp.returncode == 0, outp.stderr
    with Image.open(out / "outpaint-2.png") as img:
        assert img.size == (512, 576)

    small = tmp_path / "small.png"
    Image.new("RGB", (64, 64), (10, 120, 10)).save(small)
    up = fimum("upscale", str(small), "--scale", "4", "--seed", "3", "--out", str(out))
    assert up.returncode == 0, up.stderr
    with Image.open(out / "upscale-3.png") as img:
        assert img.size == (256, 256)


def test_models_download_offline_fails_in_one_line(tmp_path: Path) -> None:
    target = tmp_path / "sdxl-base"
    result = fimum(
        "models", "download", "base",
        env={"IMAGE_MODEL_BASE_PATH": str(target), "HF_HUB_ETAG_TIMEOUT": "3"},
        timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    assert "Hugging Face hub" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (target / "model_index.json").exists()


def test_models_list_shows_the_demo(with_tiny_models: Path) -> None:
    result = fimum("models", "list")
    assert result.returncode == 0, result.stderr
    assert "sha256:" in result.stdout
    assert "True" in result.stdout  # demo column
