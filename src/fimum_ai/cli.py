"""The `fimum` command: serve, config, models, the image modes, and the retention clean-up.

Exit codes: 0 ok, 1 the operation failed (model missing, download failed, cancelled), 2 bad input
or bad configuration. Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ValidationError
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from fimum_ai._cli_common import configure_logs, err, fail, out, settings_or_exit
from fimum_ai.cli_accounts import db_app, users_app
from fimum_ai.errors import FimumError
from fimum_ai.search.cli import crawl as crawl_command
from fimum_ai.settings import SCHEDULERS, explain

app = typer.Typer(help="Fimum AI: a self-hosted AI platform.", no_args_is_help=True, add_completion=False)
config_app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)
models_app = typer.Typer(help="Install, build and list image models.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(models_app, name="models")
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.command("crawl")(crawl_command)


@app.callback()
def _quiet_libraries() -> None:
    # transformers warns at import about optional torchvision image processors we never use.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


P = TypeVar("P", bound=BaseModel)


# ---------------------------------------------------------------- serve / config


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default FIMUM_HOST or 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default FIMUM_PORT or 8000).")] = None,
) -> None:
    """Start the API (embedded mode: everything in this process)."""
    import uvicorn

    from fimum_ai.app import create_app
    from fimum_ai.logs import uvicorn_log_config

    settings = settings_or_exit()
    configure_logs(settings)
    uvicorn.run(
        create_app(settings),
        host=host or settings.host,
        port=port or settings.port,
        log_config=uvicorn_log_config(),
    )


@app.command()
def worker(
    devices: Annotated[
        str,
        typer.Option(help="Comma-separated devices, one worker process each (cuda:0,cuda:1 / all / cpu)."),
    ] = "all",
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
) -> None:
    """Run image workers for distributed mode: one Celery worker process per GPU."""
    import signal
    import subprocess
    import sys

    settings = settings_or_exit()
    if settings.mode != "distributed" or not settings.redis_url:
        fail(
            "workers serve distributed mode: set FIMUM_MODE=distributed, FIMUM_REDIS_URL (Celery broker), "
            "FIMUM_DATABASE_URL (PostgreSQL) and FIMUM_JWT_SECRET, the same as the API replicas; "
            "embedded mode (`fimum serve`) runs images in its own process and needs no worker",
            code=2,
        )
    chosen = _worker_devices(devices)
    celery = str(Path(sys.executable).with_name("celery"))
    procs = []
    for index, device in enumerate(chosen):
        command = [
            celery,
            "-A",
            "fimum_ai.workers.task_queue",
            "worker",
            "--pool=prefork",
            "--concurrency=1",
            f"--loglevel={loglevel}",
            "-n",
            f"fimum-{index}-{device.replace(':', '')}@%h",
        ]
        procs.append(subprocess.Popen(command, env=os.environ | {"IMAGE_DEVICE": device}))
        err.print(f"worker {index} on {device} (pid {procs[-1].pid})")

    def forward(signum: int, _: object) -> None:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    codes = [proc.wait() for proc in procs]
    raise typer.Exit(max(codes, default=0))


def _worker_devices(spec: str) -> list[str]:
    if spec.strip() != "all":
        chosen = [d.strip() for d in spec.split(",") if d.strip()]
        bad = [d for d in chosen if not re.fullmatch(r"cpu|mps|cuda(:\d+)?", d)]
        if not chosen or bad:
            fail(
                f"--devices: {', '.join(bad) or 'nothing'} is not a device (cpu, mps, cuda:N, or all)", code=2
            )
        return chosen
    import torch

    count = torch.cuda.device_count()
    return [f"cuda:{i}" for i in range(count)] or ["cpu"]


@app.command()
def cleanup(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report what would be deleted; delete nothing.")
    ] = False,
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than",
            help="Age limit instead of the configured filesystem_ttl: 7d, 12h, 30m, 90s or seconds.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Delete images, jobs (with their prompts) and leftover files older than the retention TTL."""
    from fimum_ai.cli_accounts import _database
    from fimum_ai.images.retention import parse_age, run_cleanup
    from fimum_ai.images.storage import ImageStore

    try:
        age = parse_age(older_than) if older_than is not None else None
    except ValueError as exc:
        fail(f"--older-than: {exc}", code=2)
    with _database() as (settings, database):
        report = run_cleanup(database, ImageStore(settings.data_dir), older_than_s=age, dry_run=dry_run)
    if as_json:
        out.print_json(json.dumps(report.as_dict()))
        return
    if report.skipped == "keep forever":
        out.print("image_generation.caching.filesystem_ttl is 0: everything is kept; nothing to do")
        return
    if report.skipped:
        out.print(f"nothing done: {report.skipped}")
        return
    verb = "would delete" if dry_run else "deleted"
    cutoff = report.cutoff.strftime("%Y-%m-%d %H:%M:%S UTC") if report.cutoff else "-"
    table = Table("what", verb, title=f"created or finished before {cutoff}")
    table.add_row("images", str(report.images))
    table.add_row("jobs (with their prompts)", str(report.jobs))
    table.add_row("image files", str(report.files))
    table.add_row("leftover uploads", str(report.uploads))
    table.add_row("files without a row", str(report.orphans))
    if not dry_run:
        table.add_row("empty folders", str(report.folders))
    table.add_row("space freed", _size(report.bytes_freed))
    out.print(table)
    if dry_run:
        out.print("dry run: nothing was deleted")


def _size(n: int) -> str:
    if n < 1000:
        return f"{n} B"
    value = n / 1000
    for unit in ("kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            break
        value /= 1000
    return f"{value:.1f} {unit}"


@config_app.command("show")
def config_show(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Print the effective configuration and where each value came from."""
    rows = explain(settings_or_exit())
    if as_json:
        out.print_json(json.dumps([{"key": k, "value": v, "source": s} for k, v, s in rows]))
        return
    table = Table("key", "value", "source")
    for key, value, source in rows:
        table.add_row(key, json.dumps(value), source)
    out.print(table)


# ---------------------------------------------------------------- models


@models_app.command("list")
def models_list() -> None:
    """What is installed where: size, version hash, demo or real."""
    from fimum_ai.images.model_store import list_models

    settings = settings_or_exit()
    installed = list_models(settings)
    if not installed:
        out.print("no image models installed; see `fimum models download --help`")
        return
    table = Table("name", "kind", "path", "size", "version", "demo")
    for m in installed:
        table.add_row(m.name, m.kind, str(m.path), f"{m.size_bytes / 1e6:.1f} MB", m.version, str(m.demo))
    out.print(table)


@models_app.command("download")
def models_download(
    which: Annotated[str, typer.Argument(help="base | refiner | upscaler | all")] = "all",
) -> None:
    """Download SDXL (fp16 safetensors) from the Hugging Face hub into the configured paths."""
    from fimum_ai.images.model_store import download

    if which not in ("base", "refiner", "upscaler", "all"):
        fail(f"unknown model {which!r}; choose base, refiner, upscaler or all", code=2)
    settings = settings_or_exit()
    try:
        paths = download(which, settings)  # type: ignore[arg-type]
    except FimumError as exc:
        fail(exc.message)
    for path in paths:
        out.print(f"installed {path}")


@models_app.command("make-tiny")
def models_make_tiny(
    target: Annotated[Path, typer.Argument(help="Folder to create (base/, refiner/, upscaler/).")],
) -> None:
    """Build the tiny random-weight SDXL-architecture demo/test models (no hub needed)."""
    from fimum_ai.images.model_factory import make_tiny

    models = make_tiny(target)
    out.print(f"built tiny demo models in {models.base.parent}")


@models_app.command("make-full-random")
def models_make_full_random(
    target: Annotated[Path, typer.Argument(help="Folder to create.")],
    dtype: Annotated[str, typer.Option(help="bf16 | fp16 | fp32")] = "bf16",
) -> None:
    """Build the full-size SDXL base architecture with random weights (for benchmarks)."""
    from fimum_ai.images.model_factory import DTYPES, make_full_random

    if dtype not in DTYPES:
        fail(f"--dtype must be one of {', '.join(DTYPES)}, not {dtype!r}", code=2)

    out.print(f"built {make_full_random(target, dtype=dtype)}")


@models_app.command("ensure-demo")
def models_ensure_demo() -> None:
    """If no SDXL is installed, build the demo model (once) and warn loudly. Used by `make run`."""
    from fimum_ai.images.model_store import find_models
    from fimum_ai.images.provider import DEMO_WARNING

    settings = settings_or_exit()
    models = find_models(settings)
    if models is not None and not models.demo:
        return
    if models is None:
        from fimum_ai.images.model_factory import make_tiny

        out.print(f"building the demo model into {settings.demo_model_path} (once) ...")
        make_tiny(settings.demo_model_path)
    banner = "!" * 78
    err.print(f"[bold yellow]{banner}\n{DEMO_WARNING}\n{banner}[/]", highlight=False)


# ---------------------------------------------------------------- image modes


def _params(model: type[P], values: dict[str, Any]) -> P:
    """Build request parameters from CLI options; a bad value exits 2 naming the option."""
    try:
        return model(**{k: v for k, v in values.items() if v is not None})
    except ValidationError as exc:
        e = exc.errors(include_url=False)[0]
        name = ".".join(str(p) for p in e["loc"]).replace("_", "-")
        prefix = f"--{name}: " if name else ""
        fail(f"{prefix}{str(e['msg']).removeprefix('Value error, ')}", code=2)


def _open_image(path: Path, what: str = "image") -> Image.Image:
    if not path.is_file():
        fail(f"{what} {path} does not exist", code=2)
    try:
        with Image.open(path) as img:
            img.load()
            return img.copy()
    except (UnidentifiedImageError, OSError) as exc:
        fail(f"{what} {path} is not a readable image ({exc.__class__.__name__})", code=2)


@contextmanager
def _progress_bar(label: str) -> Iterator[Callable[[Any], None]]:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=False) as bar:
        task = bar.add_task(label, total=None)

        def update(event: Any) -> None:
            bar.update(task, completed=event.step, total=event.total, description=f"{label} [{event.stage}]")

        yield update


def _run_and_save(
    mode: str, out_dir: Path, stem: str, run: Callable[[Any, Callable[[Any], None]], Any]
) -> None:
    from fimum_ai.images.provider import EngineProvider
    from fimum_ai.images.storage import save_with_sidecar

    settings = settings_or_exit()
    configure_logs(settings)
    try:
        engine = EngineProvider(settings).get()
        with _progress_bar(mode) as update:
            result = run(engine, update)
    except FimumError as exc:
        fail(exc.message)
    for i, (image, meta) in enumerate(zip(result.images, result.metadata, strict=True)):
        suffix = f"-{i}" if len(result.images) > 1 else ""
        png = out_dir / f"{stem}-{meta.seed}{suffix}.png"
        save_with_sidecar(image, meta, png)
        out.print(
            f"wrote {png} ({meta.width}x{meta.height}, seed {meta.seed}, {meta.generation_time_s:.1f} s)"
        )


OutDir = Annotated[Path, typer.Option("--out", "-o", help="Output folder.")]
Negative = Annotated[str | None, typer.Option("--negative", "-n", help="Negative prompt.")]
Steps = Annotated[int | None, typer.Option(help="Steps 20-100 (default: preset, then config).")]
Guidance = Annotated[float | None, typer.Option(help="Guidance scale 1.0-15.0.")]
Scheduler = Annotated[str | None, typer.Option(help=f"One of {', '.join(SCHEDULERS)}.")]
Seed = Annotated[int | None, typer.Option(help="Seed (image i of a batch uses seed+i).")]
Batch = Annotated[int | None, typer.Option("--batch", help="Images to generate, 1-8.")]
Preset = Annotated[str | None, typer.Option("--preset", help="Style preset name.")]


@app.command()
def generate(
    prompt: Annotated[str, typer.Argument(help="What to draw.")],
    negative: Negative = None,
    width: Annotated[int | None, typer.Option(help="512-4096, multiple of 64.")] = None,
    height: Annotated[int | None, typer.Option(help="512-4096, multiple of 64.")] = None,
    steps: Steps = None,
    guidance: Guidance = None,
    scheduler: Scheduler = None,
    seed: Seed = None,
    batch: Batch = None,
    preset: Preset = None,
    refine: Annotated[bool | None, typer.Option("--refine/--no-refine", help="Refiner stage.")] = None,
    out_dir: OutDir = Path("outputs"),
) -> None:
    """Text-to-image."""
    from fimum_ai.images.requests import GenerateParams

    params = _params(
        GenerateParams,
        dict(
            prompt=prompt,
            negative_prompt=negative,
            width=width,
            height=height,
            steps=steps,
            guidance_scale=guidance,
            scheduler=scheduler,
            seed=seed,
            batch_size=batch,
            style_preset=preset,
            refine=refine,
        ),
    )
    _run_and_save(
        "generate", out_dir, "txt2img", lambda engine, update: engine.text_to_image(params, progress=update)
    )


@app.command()
def edit(
    image: Annotated[Path, typer.Argument(help="Input image (PNG/JPEG/WebP).")],
    prompt: Annotated[str, typer.Argument(help="What the result should show.")],
    mask: Annotated[Path | None, typer.Option(help="Mask image: white = edit (inpainting).")] = None,
    strength: Annotated[float | None, typer.Option(help="0.0-1.0: how much to change.")] = None,
    negative: Negative = None,
    steps: Steps = None,
    guidance: Guidance = None,
    scheduler: Scheduler = None,
    seed: Seed = None,
    batch: Batch = None,
    preset: Preset = None,
    out_dir: OutDir = Path("outputs"),
) -> None:
    """Image-to-image, or inpainting with --mask."""
    from fimum_ai.images.requests import EditParams

    params = _params(
        EditParams,
        dict(
            prompt=prompt,
            negative_prompt=negative,
            strength=strength,
            steps=steps,
            guidance_scale=guidance,
            scheduler=scheduler,
            seed=seed,
            batch_size=batch,
            style_preset=preset,
        ),
    )
    source = _open_image(image)
    if mask is None:
        _run_and_save(
            "img2img",
            out_dir,
            "img2img",
            lambda engine, update: engine.image_to_image(source, params, progress=update),
        )
        return
    mask_image = _open_image(mask, "mask")
    if mask_image.size != source.size:
        fail(
            f"mask is {mask_image.size[0]}x{mask_image.size[1]} but the image is "
            f"{source.size[0]}x{source.size[1]}; they must match",
            code=2,
        )
    _run_and_save(
        "inpaint",
        out_dir,
        "inpaint",
        lambda engine, update: engine.inpaint(source, mask_image, params, progress=update),
    )


@app.command()
def outpaint(
    image: Annotated[Path, typer.Argument(help="Input image.")],
    prompt: Annotated[str, typer.Argument(help="What the extended area should show.")],
    left: Annotated[int, typer.Option(help="Pixels to add on the left (multiple of 8).")] = 0,
    right: Annotated[int, typer.Option(help="Pixels to add on the right.")] = 0,
    top: Annotated[int, typer.Option(help="Pixels to add on top.")] = 0,
    bottom: Annotated[int, typer.Option(help="Pixels to add at the bottom.")] = 0,
    negative: Negative = None,
    steps: Steps = None,
    guidance: Guidance = None,
    scheduler: Scheduler = None,
    seed: Seed = None,
    out_dir: OutDir = Path("outputs"),
) -> None:
    """Extend the canvas and fill the new area to match."""
    from fimum_ai.images.requests import OutpaintParams

    params = _params(
        OutpaintParams,
        dict(
            prompt=prompt,
            negative_prompt=negative,
            left=left,
            right=right,
            top=top,
            bottom=bottom,
            steps=steps,
            guidance_scale=guidance,
            scheduler=scheduler,
            seed=seed,
        ),
    )
    source = _open_image(image)
    _run_and_save(
        "outpaint",
        out_dir,
        "outpaint",
        lambda engine, update: engine.outpaint(source, params, progress=update),
    )


@app.command()
def upscale(
    image: Annotated[Path, typer.Argument(help="Input image.")],
    scale: Annotated[int, typer.Option(help="2 or 4.")] = 4,
    prompt: Annotated[str | None, typer.Option(help="Optional description of the image.")] = None,
    steps: Annotated[int | None, typer.Option(help="Steps 20-100 (default 20).")] = None,
    seed: Seed = None,
    out_dir: OutDir = Path("outputs"),
) -> None:
    """Upscale with the Stable Diffusion x4 upscaler (tiled for large inputs)."""
    from fimum_ai.images.requests import UpscaleParams

    params = _params(UpscaleParams, dict(prompt=prompt, scale=scale, steps=steps, seed=seed))
    source = _open_image(image)
    _run_and_save(
        "upscale", out_dir, "upscale", lambda engine, update: engine.upscale(source, params, progress=update)
    )
