"""Attachments: images become OpenAI image parts for a vision model; documents (PDF, DOCX, TXT,
MD, up to 10 MB) become text, truncated to the model's context with a visible note.

Images go through the image service's upload validation (`images/uploads.py`: size limit while
reading, type by magic bytes, decompression-bomb check, strict decode, metadata stripped) and
are stored as a sanitised PNG. PDF text comes from pypdf, DOCX from python-docx; text files must
be UTF-8. Token counts are estimated at 3 characters per token (no tokenizer of the upstream
models is available offline; 3 is conservative for English and code).
"""

from __future__ import annotations

import base64
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from fimum_ai.chat.conversations import StoredAttachment
from fimum_ai.errors import InvalidInput
from fimum_ai.images.uploads import UnsupportedMediaType, load_image, read_upload, sniff

CHARS_PER_TOKEN = 3
MAX_IMAGE_SIDE = 2048  # larger images are scaled down before they go to a model
DOCUMENT_TYPES = {
    ".pdf": "application/pdf",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".txt": "text/plain",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
}

Kind = Literal["image", "document"]


class UnreadableDocument(InvalidInput):
    code = "unreadable_document"


@dataclass(frozen=True, slots=True)
class Ingested:
    kind: Kind
    media_type: str
    size_bytes: int
    text: str | None = None  # documents
    png: bytes | None = None  # images, sanitised


def _suffix(filename: str) -> str:
    return Path(filename).suffix.lower()


def _refuse_type(filename: str, detected: str) -> UnsupportedMediaType:
    return UnsupportedMediaType(
        f"file: {filename!r} is neither an image (PNG, JPEG, WebP) nor a document (PDF, DOCX, TXT, MD)",
        details={"field": "file", "detected": detected, "allowed": ["png", "jpeg", "webp", *DOCUMENT_TYPES]},
    )


def _pdf_text(data: bytes, filename: str) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise UnreadableDocument(
                f"file: {filename!r} is password-protected", details={"reason": "encrypted"}
            )
        pages = [page.extract_text() or "" for page in reader.pages]
    except UnreadableDocument:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise UnreadableDocument(
            f"file: {filename!r} is not a readable PDF",
            details={"reason": "corrupt", "error": str(exc)[:200]},
        ) from None
    return "\n\n".join(f"[page {i}]\n{text.strip()}" for i, text in enumerate(pages, 1) if text.strip())


def _docx_text(data: bytes, filename: str) -> str:
    import docx

    try:
        document = docx.Document(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise UnreadableDocument(
            f"file: {filename!r} is not a readable DOCX",
            details={"reason": "corrupt", "error": str(exc)[:200]},
        ) from None
    blocks = [p.text for p in document.paragraphs if p.text.strip()]
    for table in document.tables:
        for row in table.rows:
            blocks.append(" | ".join(cell.text.strip() for cell in row.cells))
    return "\n".join(blocks)


def _plain_text(data: bytes, filename: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UnreadableDocument(
            f"file: {filename!r} is not UTF-8 text", details={"reason": "encoding"}
        ) from None


def _image_png(data: bytes) -> bytes:
    upload = load_image(data, field="file")  # every check of the image service
    image = upload.image
    if max(image.size) > MAX_IMAGE_SIDE:
        image = image.copy()
        image.thumbnail((MAX_IMAGE_SIDE, MAX_IMAGE_SIDE))
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=3)
    return buffer.getvalue()


def ingest_bytes(data: bytes, filename: str) -> Ingested:
    """Validate and convert one upload (CPU-bound: call it in a thread)."""
    if not data:
        raise InvalidInput("file: the upload is empty", details={"field": "file"})
    try:
        kind = sniff(data, field="file")
    except UnsupportedMediaType as refused:
        kind = None
        detected = str(refused.details.get("detected", ""))
    if kind is not None:
        return Ingested("image", "image/png", len(data), png=_image_png(data))
    suffix = _suffix(filename)
    if data.startswith(b"%PDF"):
        text, media = _pdf_text(data, filename), DOCUMENT_TYPES[".pdf"]
    elif data.startswith(b"PK\x03\x04") and suffix == ".docx":
        text, media = _docx_text(data, filename), DOCUMENT_TYPES[".docx"]
    elif suffix in (".txt", ".md", ".markdown") and detected in ("application/octet-stream", "text/html"):
        text, media = _plain_text(data, filename), DOCUMENT_TYPES[suffix]
    else:
        raise _refuse_type(filename, detected)
    if not text.strip():
        raise UnreadableDocument(
            f"file: no text found in {filename!r} (a scanned PDF needs OCR first)",
            details={"reason": "no_text"},
        )
    return Ingested("document", media, len(data), text=text)


async def read_and_ingest(upload: UploadFile, limit: int) -> Ingested:
    data = await read_upload(upload, limit=limit, field="file")
    return await run_in_threadpool(ingest_bytes, data, upload.filename or "upload")


# --- Building the model's input ----------------------------------------------------------------


def estimate_tokens(text: str) -> int:
    return len(text) // CHARS_PER_TOKEN + 1


@dataclass(frozen=True, slots=True)
class Truncation:
    filename: str
    kept_chars: int
    total_chars: int

    def note(self) -> str:
        return (
            f"[Note: {self.filename} was truncated to its first {self.kept_chars:,} of {self.total_chars:,} "
            "characters to fit the model's context.]"
        )


def document_block(attachment: StoredAttachment, budget_chars: int) -> tuple[str, Truncation | None]:
    text = attachment.text or ""
    truncation = None
    if len(text) > budget_chars:
        truncation = Truncation(attachment.filename, max(0, budget_chars), len(text))
        text = text[: max(0, budget_chars)]
    block = f'<document name="{attachment.filename}">\n{text}\n</document>'
    if truncation is not None:
        block += "\n" + truncation.note()
    return block, truncation


def image_part(data_dir: Path, attachment: StoredAttachment) -> dict[str, Any]:
    assert attachment.path is not None
    encoded = base64.b64encode((data_dir / attachment.path).read_bytes()).decode("ascii")
    return {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{encoded}"}}


def user_content(
    text: str,
    attachments: list[StoredAttachment],
    data_dir: Path,
    document_budget_chars: int,
    include_images: bool,
) -> tuple[str | list[dict[str, Any]], list[Truncation]]:
    """The user message's `content`: text + documents (sharing the budget evenly, leftovers passed
    on), then image parts when the message goes to a vision model (else a mention of each)."""
    documents = [a for a in attachments if a.kind == "document"]
    images = [a for a in attachments if a.kind == "image"]
    blocks: list[str] = []
    truncations: list[Truncation] = []
    remaining = max(0, document_budget_chars)
    for index, document in enumerate(sorted(documents, key=lambda d: len(d.text or ""))):
        share = remaining // (len(documents) - index)
        block, truncation = document_block(document, share)
        remaining -= min(len(document.text or ""), share)
        blocks.append(block)
        if truncation is not None:
            truncations.append(truncation)
    body = "\n\n".join([*blocks, text]) if blocks else text
    if not images:
        return body, truncations
    if not include_images:
        names = ", ".join(a.filename for a in images)
        return f"{body}\n\n[The user attached images the model cannot see: {names}]", truncations
    parts: list[dict[str, Any]] = [{"type": "text", "text": body}]
    parts += [image_part(data_dir, a) for a in images]
    return parts, truncations
