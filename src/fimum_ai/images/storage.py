"""Image files: PNG with embedded parameters, a JSON sidecar, thumbnails. Writes are atomic.

The PNG carries two text chunks: `parameters` in the AUTOMATIC1111 layout (so tools that read
A1111 metadata understand our files) and `fimum` with the full metadata as JSON.
"""

from __future__ import annotations

import base64
import io
import json
import os
import tempfile
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image, ImageOps
from PIL.PngImagePlugin import PngInfo

from fimum_ai.images.results import ImageMetadata
from fimum_ai.images.uploads import PreservedMetadata

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from fimum_ai.db import StoredImage

THUMBNAIL_SIZE = (256, 256)


def a1111_parameters(meta: ImageMetadata) -> str:
    p = meta.parameters
    lines = [str(p.get("prompt", ""))]
    if p.get("negative_prompt"):
        lines.append(f"Negative prompt: {p['negative_prompt']}")
    fields = [
        ("Steps", p.get("steps")),
        ("Sampler", meta.scheduler),
        ("CFG scale", p.get("guidance_scale")),
        ("Seed", meta.seed),
        ("Size", f"{meta.width}x{meta.height}"),
        ("Model hash", meta.model_version.removeprefix("sha256:")),
        ("Model", meta.model_name),
        ("Denoising strength", p.get("strength")),
    ]
    lines.append(", ".join(f"{k}: {v}" for k, v in fields if v is not None))
    return "\n".join(lines)


def png_bytes(
    image: Image.Image,
    meta: ImageMetadata | None = None,
    compress_level: int = 3,
    preserved: PreservedMetadata | None = None,
) -> bytes:
    """PNG with our parameters; `preserved` adds the input's EXIF/ICC/text (preserve_original)."""
    ours = {"parameters": a1111_parameters(meta), "fimum": meta.model_dump_json()} if meta else {}
    info = preserved.png_info(ours) if preserved else PngInfo()
    if not preserved:
        for key, value in ours.items():
            info.add_text(key, value)
    buf = io.BytesIO()
    extra = preserved.save_kwargs() if preserved else {}
    image.save(buf, format="PNG", pnginfo=info, compress_level=compress_level, **extra)
    return buf.getvalue()


def thumbnail_jpeg(image: Image.Image, quality: int = 85) -> bytes:
    thumb = ImageOps.fit(image.convert("RGB"), THUMBNAIL_SIZE, Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    thumb.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temp file beside `path`, fsync, rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_with_sidecar(image: Image.Image, meta: ImageMetadata, png_path: Path) -> Path:
    """Write `png_path` (parameters embedded) and `png_path.with_suffix('.json')`; return the JSON path."""
    write_atomic(png_path, png_bytes(image, meta))
    json_path = png_path.with_suffix(".json")
    write_atomic(json_path, json.dumps(meta.model_dump(mode="json"), indent=2).encode())
    return json_path


class ImageStore:
    """The gallery on disk: data/images/{user}/{yyyy}/{mm}/{id}_original.png, {id}_thumbnail.jpg and
    {id}_metadata.json. One metadata file per image (not one per folder, as the spec sketches):
    many workers write at once, and a file of its own is written atomically without any lock.
    The database row (db.StoredImage) indexes it; paths in it are relative to data_dir."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    def path(self, relative: str) -> Path:
        return self.data_dir / relative

    def write(
        self,
        user_id: str,
        image_id: str,
        image: Image.Image,
        meta: ImageMetadata,
        preserved: PreservedMetadata | None = None,
        source: Path | None = None,
    ) -> StoredFiles:
        """`source`: the edited input, kept beside the result as {id}_source.png (preserve_original)."""
        created = meta.created_at[:7].split("-")  # "2026-11-25T..." -> ["2026", "11"]
        folder = Path("images") / user_id / created[0] / created[1]
        files = StoredFiles(
            original=str(folder / f"{image_id}_original.png"),
            thumbnail=str(folder / f"{image_id}_thumbnail.jpg"),
            metadata=str(folder / f"{image_id}_metadata.json"),
            source=str(folder / f"{image_id}_source.png") if source is not None else None,
        )
        # Metadata last: a crash in between leaves files that no row points to (swept by retention),
        # never a row that points to a missing or half-written file.
        if source is not None and files.source is not None:
            write_atomic(self.path(files.source), source.read_bytes())
        write_atomic(self.path(files.original), png_bytes(image, meta, compress_level=1, preserved=preserved))
        write_atomic(self.path(files.thumbnail), thumbnail_jpeg(image))
        write_atomic(self.path(files.metadata), json.dumps(meta.model_dump(mode="json"), indent=2).encode())
        return files

    def link_copy(self, row: Any, user_id: str) -> Any:
        """A new gallery row for `user_id` showing the same pixels as `row` (a db.StoredImage):
        hard links (instant, no extra space; each owner deletes independently), else copies."""
        from fimum_ai.db import StoredImage

        new_id = str(uuid.uuid4())
        root, _owner, year, month, _name = Path(row.original_path).parts  # images/{user}/{yyyy}/{mm}/...
        folder = Path(root) / user_id / year / month
        paths = {
            "original_path": str(folder / f"{new_id}_original.png"),
            "thumbnail_path": str(folder / f"{new_id}_thumbnail.jpg"),
            "metadata_path": str(folder / f"{new_id}_metadata.json"),
        }
        made: list[Path] = []
        try:
            for name, target in paths.items():
                source = self.path(getattr(row, name))
                destination = self.path(target)
                destination.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(source, destination)
                except OSError:
                    write_atomic(destination, source.read_bytes())  # FileNotFoundError: source gone
                made.append(destination)
        except BaseException:
            for path in made:  # no half copy left behind (the caller treats it as a cache miss)
                path.unlink(missing_ok=True)
            raise
        return StoredImage(
            id=new_id,
            user_id=user_id,
            job_id=None,
            mode=row.mode,
            width=row.width,
            height=row.height,
            seed=row.seed,
            model_version=row.model_version,
            metadata_json=row.metadata_json,
            phash=row.phash,
            **paths,
        )

    def write_metadata(self, user_id: str, image_id: str, meta: dict[str, Any], created_at: str) -> str:
        """Only the metadata file: for a duplicate that shows an existing image's pixels."""
        year, month = created_at[:7].split("-")
        relative = str(Path("images") / user_id / year / month / f"{image_id}_metadata.json")
        write_atomic(self.path(relative), json.dumps(meta, indent=2).encode())
        return relative

    def delete(self, *relatives: str | None) -> None:
        for relative in relatives:
            if relative:
                self.path(relative).unlink(missing_ok=True)

    def remove(self, relatives: Iterable[str], *, dry_run: bool = False) -> tuple[int, int]:
        """Delete these files (or only count them: `dry_run`); returns (files, bytes freed). A file
        with other hard links frees nothing yet (a cache copy of another user shares its inode)."""
        files = freed = 0
        for relative in relatives:
            if not relative or Path(relative).is_absolute() or ".." in Path(relative).parts:
                continue  # paths come from our own rows; never follow one out of data_dir
            path = self.path(relative)
            try:
                stat = path.lstat()
                if not dry_run:
                    path.unlink()
            except FileNotFoundError:
                continue  # already gone (another clean-up, a user's delete): nothing to count
            files += 1
            freed += stat.st_size if stat.st_nlink <= 1 else 0
        return files, freed


def row_files(row: StoredImage) -> list[str]:
    """Every file a gallery row points at (a duplicate's original and thumbnail are its twin's)."""
    paths = (row.original_path, row.thumbnail_path, row.metadata_path, row.source_path)
    return [p for p in paths if p]


def referenced_paths(session: Session, paths: Iterable[str], *where: Any) -> set[str]:
    """Those of `paths` that some row (matching `where`) points at, as this session sees the table."""
    from sqlalchemy import or_, select

    from fimum_ai.db import StoredImage

    wanted = sorted(set(paths))
    lookup = set(wanted)
    columns = (
        StoredImage.original_path,
        StoredImage.thumbnail_path,
        StoredImage.metadata_path,
        StoredImage.source_path,
    )
    found: set[str] = set()
    for start in range(0, len(wanted), 500):  # bounded statement size on both databases
        chunk = wanted[start : start + 500]
        query = select(*columns).where(or_(*(c.in_(chunk) for c in columns)), *where)
        for row in session.execute(query):
            found.update(p for p in row if p in lookup)
    return found


def unreferenced_files(session: Session, rows: Iterable[StoredImage]) -> list[str]:
    """Files of these rows, deleted and flushed in `session`, that no remaining row points at: the
    ones to remove once the transaction commits (a duplicate or cache copy may still need the rest).
    Rows first, files after the commit: a crash in between leaves files without a row (swept by
    retention), never a row without its files."""
    paths = {p for row in rows for p in row_files(row)}
    kept = referenced_paths(session, paths)
    return sorted(paths - kept)


@dataclass(frozen=True, slots=True)
class StoredFiles:
    original: str
    thumbnail: str
    metadata: str
    source: str | None = None


def preserved_to_json(preserved: PreservedMetadata) -> dict[str, object]:
    """For the job row: the input's metadata waits there until the result is written."""
    return {
        "exif": base64.b64encode(preserved.exif).decode() if preserved.exif else None,
        "icc_profile": base64.b64encode(preserved.icc_profile).decode() if preserved.icc_profile else None,
        "text": dict(preserved.text),
    }


def preserved_from_json(data: dict[str, Any]) -> PreservedMetadata:
    return PreservedMetadata(
        exif=base64.b64decode(data["exif"]) if data.get("exif") else None,
        icc_profile=base64.b64decode(data["icc_profile"]) if data.get("icc_profile") else None,
        text={str(k): str(v) for k, v in (data.get("text") or {}).items()},
    )
