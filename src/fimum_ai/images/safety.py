"""Content safety for image generation (FR-IMG-014): a prompt filter before, image checks after.

Before generation, `PromptFilter` looks for blocked words in the POSITIVE prompt only. The
negative prompt is never filtered: people write "nsfw, nude, gore" there to keep such content
out. The word lists, their categories and the policy live in `safety_terms.yaml` beside this
module (its header documents the format); a deployment can point at its own file.

Matching works on a normalised copy of the prompt: Unicode NFKC (full-width and mathematical
letters), diacritics, zero-width and other invisible characters removed, Greek/Cyrillic
look-alikes mapped to Latin, case folded. Every term becomes a regular expression that accepts
leetspeak (0→o, 1→i/l, 3→e, 4/@→a, 5/$→s, 7/+→t, 8→b, 9→g, `*` for one letter) and repeated
letters ("nuuude"), and is matched only at word boundaries, so "Essex", "cocktail" and
"therapist" are never hits. Two extra passes catch split words without matching across normal
word boundaries: runs of three or more single characters ("n u d e", "n.u.d.e", "n-a-k-e-d")
are joined into one word and searched inside, and words split by dots/dashes/underscores
("nu-de") are also tried joined. An allow-list ("breast cancer", "nude color palette", "chicken
breast", "cum laude") removes safe phrases before the blocked words are looked for.

After generation, `ImageChecker` runs NudeNet's detector (the 320n ONNX model that ships inside
the `nudenet` wheel, onnxruntime on CPU) and blocks an image when an exposed-explicit class
(`BLOCKED_NUDENET_LABELS`) is detected with a score >= `DEFAULT_NUDITY_THRESHOLD` (0.5; a NudeNet
detection confidence). When the diffusers CLIP safety checker's weights are installed,
`ClipSafetyChecker` runs too, with the spec's `image_generation.safety.block_threshold` (0.23):
that number is a CLIP cosine similarity, see `ClipSafetyChecker`. Only the CLIP checker imports
torch, and only when it loads: the API process never imports torch through this module.

A block raises `ContentBlocked` (HTTP 400, code `nsfw_content_blocked`) and writes one audit
record (user, UTC time, stage, category, score) on the `fimum_ai.audit.safety` logger — never
the prompt, the matched word or the image.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import re
import threading
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import groupby
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from PIL import Image
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from fimum_ai.errors import FimumError, ModelNotInstalled
from fimum_ai.settings import ConfigError, Settings

log = logging.getLogger(__name__)

AUDIT_LOGGER = "fimum_ai.audit.safety"
DEFAULT_TERMS_PATH = Path(__file__).with_name("safety_terms.yaml")
Stage = Literal["prompt", "image"]


# --- Verdicts and the error ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of one check. `term` names what matched (a word of the list, or a NudeNet
    label) for tests and debugging only: it must never be logged or shown to users."""

    blocked: bool
    category: str | None = None
    term: str | None = field(default=None, repr=False)
    score: float | None = None


SAFE = Verdict(blocked=False)

CATEGORY_LABELS: dict[str, str] = {
    "sexual": "sexual content",
    "minors": "sexual content involving minors",
    "violence": "graphic violence",
    "hate": "hateful content",
    "self_harm": "self-harm",
    "nudity": "nudity",
    "nsfw_concept": "unsafe content",
}


class ContentBlocked(FimumError):
    """A prompt or a generated image was refused by the content filter (HTTP 400)."""

    code = "nsfw_content_blocked"
    status = 400

    def __init__(self, stage: Stage, category: str, score: float | None = None) -> None:
        label = CATEGORY_LABELS.get(category, category.replace("_", " "))
        if stage == "prompt":
            message = (
                f"The prompt was blocked by the content filter ({label}). Nothing was generated; "
                "please rephrase it."
            )
        else:
            message = (
                f"The generated image was blocked by the content filter ({label} detected). "
                "Nothing was stored; try a different prompt or seed."
            )
        details: dict[str, Any] = {"stage": stage, "category": category}
        if score is not None:
            details["score"] = round(score, 4)
        super().__init__(message, details=details)
        self.stage = stage
        self.category = category


def audit(user_id: str, stage: str, verdict: Verdict) -> None:
    """One structured record on `fimum_ai.audit.safety`: user, UTC time, stage, category, score.
    Never the prompt, the matched term or the image."""
    logging.getLogger(AUDIT_LOGGER).warning(
        "content blocked" if verdict.blocked else "content checked",
        extra={
            "audit": "safety",
            "user_id": user_id,
            "time": datetime.now(UTC).isoformat(),
            "stage": stage,
            "blocked": verdict.blocked,
            "category": verdict.category,
            "score": verdict.score,
        },
    )


# --- Normalisation ------------------------------------------------------------------------------

# Greek and Cyrillic capitals that look like Latin capitals (mapped before case folding, because
# e.g. Greek "Ν" folds to "ν", which looks like "v").
_UPPER_LOOKALIKES = str.maketrans(
    {
        "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N",
        "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
        "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C",
        "Т": "T", "У": "Y", "Х": "X", "Ѕ": "S", "І": "I", "Ј": "J", "Ԁ": "D", "Ү": "Y",
    }
)  # fmt: skip
# Lower-case look-alikes (after case folding).
_LOWER_LOOKALIKES = str.maketrans(
    {
        "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p",
        "с": "c", "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ї": "i", "ј": "j", "ԁ": "d",
        "һ": "h", "ԛ": "q", "ԝ": "w", "ү": "y", "ց": "g", "ս": "u", "ո": "n", "օ": "o",
        "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p",
        "τ": "t", "υ": "u", "χ": "x", "ω": "w", "ς": "s", "σ": "s",
        "ı": "i", "ȷ": "j", "ɑ": "a", "ɡ": "g", "ɩ": "i", "ʀ": "r", "ʏ": "y", "ᴀ": "a", "ʙ": "b",
        "ᴄ": "c", "ᴅ": "d", "ᴇ": "e", "ɢ": "g", "ʜ": "h", "ɪ": "i", "ᴊ": "j", "ᴋ": "k", "ʟ": "l",
        "ᴍ": "m", "ɴ": "n", "ᴏ": "o", "ᴘ": "p", "ꞯ": "q", "ꜱ": "s", "ᴛ": "t", "ᴜ": "u", "ᴠ": "v",
        "ᴡ": "w", "ᴢ": "z",
    }
)  # fmt: skip
# Invisible characters that are not in the format (Cf) category.
_INVISIBLE = frozenset("\u034f\u115f\u1160\u17b4\u17b5\u180e\u2800\u3164\uffa0")
_DROP_CATEGORIES = frozenset({"Mn", "Me", "Cf", "Cc"})


def normalize(text: str) -> str:
    """NFKC, diacritics and invisible characters removed, look-alikes mapped to Latin, case folded.
    Whitespace and punctuation stay (control characters become spaces)."""
    text = unicodedata.normalize("NFKC", text)
    text = "".join(" " if ch in "\t\n\r\v\f" else ch for ch in text)
    text = unicodedata.normalize("NFD", text)
    text = "".join(
        ch for ch in text if unicodedata.category(ch) not in _DROP_CATEGORIES and ch not in _INVISIBLE
    )
    text = text.translate(_UPPER_LOOKALIKES).casefold().translate(_LOWER_LOOKALIKES)
    return unicodedata.normalize("NFC", text)


# Characters that stand for letters (leetspeak); kept inside words. `*` stands for any letter.
_LEET: dict[str, str] = {
    "a": "a4@",
    "b": "b8",
    "e": "e3",
    "g": "g9",
    "i": "i1!|",
    "l": "l1|",
    "o": "o0",
    "s": "s5$z",
    "t": "t7+",
}
_LEET_SYMBOLS = "@$!|+*"
# Characters that join the pieces of a split word: "n.u.d.e", "n-a-k-e-d", "n_u_d_e", "nu/de".
_JOINERS = ".-_'~/\\·•‐‑‒–—’`"
_JOINER_RE = re.compile("[" + re.escape(_JOINERS) + "]+")
_MIN_RUN = 3  # single characters in a row that are joined into one word


@dataclass(slots=True)
class _Token:
    text: str
    run: bool = False  # joined from single characters ("n u d e")
    allowed: bool = False


@dataclass(slots=True)
class _Prepared:
    tokens: list[_Token]
    joined: list[tuple[str, list[int]]]  # split words tried joined ("nu-de" -> "nude"), token indices


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch in _LEET_SYMBOLS or ch in _JOINERS


def _prepare(norm: str) -> _Prepared:
    """Words of the normalised text: split at punctuation, joiners, single-character runs joined."""
    raw_words: list[str] = []
    current: list[str] = []
    for ch in norm:
        if _is_word_char(ch):
            current.append(ch)
        elif current:
            raw_words.append("".join(current))
            current = []
    if current:
        raw_words.append("".join(current))

    pieces: list[tuple[str, int]] = []  # (piece, raw word index)
    for index, word in enumerate(raw_words):
        pieces.extend((piece, index) for piece in _JOINER_RE.split(word) if piece)

    tokens: list[_Token] = []
    token_of_piece: list[int] = []
    i = 0
    while i < len(pieces):
        j = i
        while j < len(pieces) and len(pieces[j][0]) == 1:
            j += 1
        if j - i >= _MIN_RUN:
            tokens.append(_Token("".join(p for p, _ in pieces[i:j]), run=True))
            token_of_piece.extend([len(tokens) - 1] * (j - i))
            i = j
        else:
            tokens.append(_Token(pieces[i][0]))
            token_of_piece.append(len(tokens) - 1)
            i += 1

    joined: list[tuple[str, list[int]]] = []
    for _, group in groupby(range(len(pieces)), key=lambda k: pieces[k][1]):
        members = list(group)
        if len(members) > 1:
            text = "".join(pieces[k][0] for k in members)
            joined.append((text, sorted({token_of_piece[k] for k in members})))
    return _Prepared(tokens, joined)


# --- Term lists ---------------------------------------------------------------------------------

_TERM_RE = re.compile(r"^[a-z0-9]+\*?(?: [a-z0-9]+\*?)*$")
# Word boundaries on the normalised text (words are separated by single spaces); leet symbols
# around a word ("nude!!!", "!nude") are absorbed.
_WORD_START = r"[@$!|+*]*"
_WORD_END = r"[@$!|+*]*(?![^ ])"


def _char_pattern(ch: str, count: int) -> str:
    if ch.isalpha():
        chars = _LEET.get(ch, ch) + "*"
        body = "[" + "".join(re.escape(c) for c in chars) + "]"
    else:
        body = re.escape(ch)
    return body + ("+" if count == 1 else f"{{{count},}}")


def _word_pattern(word: str, *, prefix_ok: bool = True) -> str:
    prefix = word.endswith("*")
    core = "".join(_char_pattern(ch, len(list(run))) for ch, run in groupby(word.rstrip("*")))
    return core + (r"[^ ]*" if prefix and prefix_ok else "")


def term_pattern(term: str, *, anchored: bool = True, prefix: bool | None = None) -> str:
    """The regular expression of one list entry ("self harm", "porn*") on normalised text:
    `anchored` adds word boundaries; `prefix` (default: `anchored`) honours a trailing `*`."""
    words = term.split(" ")
    prefix_ok = anchored if prefix is None else prefix
    core = "[ ]*".join(_word_pattern(w, prefix_ok=prefix_ok) for w in words)
    return f"(?<![^ ]){_WORD_START}{core}{_WORD_END}" if anchored else core


class _CategorySpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    block: bool = True
    description: str = ""
    terms: list[str] = []
    substrings: list[str] = []
    patterns: list[str] = []

    @field_validator("terms", "substrings")
    @classmethod
    def _well_formed(cls, values: list[str]) -> list[str]:
        for value in values:
            if not _TERM_RE.match(value):
                raise ValueError(
                    f"{value!r}: lower-case letters/digits, single spaces, optional * at word ends"
                )
        return values

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, values: list[str]) -> list[str]:
        for value in values:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"{value!r} is not a regular expression: {exc}") from None
        return values


class _Combination(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    category: str
    all_of: list[list[str]]


class _TermsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1]
    categories: dict[str, _CategorySpec]
    combinations: list[_Combination] = []
    allow: list[str] = []

    @field_validator("allow")
    @classmethod
    def _allow_well_formed(cls, values: list[str]) -> list[str]:
        return _CategorySpec._well_formed(values)


class _Alternation:
    """Many labelled patterns in one compiled regular expression, optionally wrapped in a shared
    `before`/`after` (the word boundaries, kept out of the alternation so that they are tested
    once per position instead of once per term)."""

    def __init__(self, entries: Sequence[tuple[str, str, str]], *, before: str = "", after: str = "") -> None:
        # entries: (category, term, pattern); longer terms first so phrases win over their words.
        ordered = sorted(entries, key=lambda e: -len(e[1]))
        self._labels = {f"g{i}": (cat, term) for i, (cat, term, _) in enumerate(ordered)}
        body = "|".join(f"(?P<g{i}>{pattern})" for i, (_, _, pattern) in enumerate(ordered))
        self._regex = re.compile(f"{before}(?:{body}){after}") if ordered else None

    def finditer(self, text: str) -> Iterable[tuple[str, str, int, int]]:
        if self._regex is None:
            return
        for match in self._regex.finditer(text):
            yield self._hit(match)

    def match_at(self, text: str, positions: Iterable[int]) -> Iterable[tuple[str, str, int, int]]:
        """Matches that start exactly at one of `positions` (the starts of words)."""
        if self._regex is None:
            return
        for position in positions:
            match = self._regex.match(text, position)
            if match:
                yield self._hit(match)

    def _hit(self, match: re.Match[str]) -> tuple[str, str, int, int]:
        category, term = self._labels[match.lastgroup or ""]
        return category, term, match.start(), match.end()


class PromptFilter:
    """The pre-generation prompt check. `check()` is pure and thread-safe; matching takes well
    under a millisecond for an ordinary prompt. Only the positive prompt is checked (see module
    docstring). `enabled=False` makes every prompt pass (`image_generation.safety.nsfw_filter`)."""

    def __init__(self, terms_path: Path | None = None, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self.terms_path = terms_path or DEFAULT_TERMS_PATH
        spec = _load_terms(self.terms_path)
        self._blocking = [name for name, cat in spec.categories.items() if cat.block]
        self._combinations = [(c.category, [set(group) for group in c.all_of]) for c in spec.combinations]
        words: list[tuple[str, str, str]] = []
        cores: list[tuple[str, str, str]] = []
        subs: list[tuple[str, str, str]] = []
        self._patterns: list[tuple[str, re.Pattern[str]]] = []
        for name, cat in spec.categories.items():
            for term in cat.terms:
                words.append((name, term, term_pattern(term, anchored=False, prefix=True)))
                cores.append((name, term, term_pattern(term, anchored=False)))
            for sub in cat.substrings:
                subs.append((name, sub, term_pattern(sub, anchored=False)))
            self._patterns.extend((name, re.compile(p)) for p in cat.patterns)
        self._words = _Alternation(words, before=_WORD_START, after=_WORD_END)
        self._whole = _Alternation(words, after="$")
        self._cores = _Alternation(cores)
        self._substrings = _Alternation(subs)
        allow = [("allow", t, term_pattern(t, anchored=False, prefix=True)) for t in spec.allow]
        self._allow = _Alternation(allow, before=_WORD_START, after=_WORD_END)
        self.categories: tuple[str, ...] = tuple(spec.categories)

    def check(self, prompt: str) -> Verdict:
        if not self.enabled:
            return SAFE
        hits = self.matches(prompt)
        for category, groups in self._combinations:
            if all(any(cat in hits for cat in group) for group in groups):
                term = next(hits[cat] for group in groups for cat in sorted(group) if cat in hits)
                return Verdict(True, category, term)
        for category in self._blocking:
            if category in hits:
                return Verdict(True, category, hits[category])
        return SAFE

    def matches(self, prompt: str) -> dict[str, str]:
        """Every category with a hit in the prompt -> the first matching term (blocking or not)."""
        prepared = _prepare(normalize(prompt))
        tokens = prepared.tokens
        text = " ".join(t.text for t in tokens)
        starts = []
        position = 0
        for token in tokens:
            starts.append(position)
            position += len(token.text) + 1
        for _, _, start, end in self._allow.match_at(text, starts):
            for index, token_start in enumerate(starts):
                if token_start < end and token_start + len(tokens[index].text) > start:
                    tokens[index].allowed = True

        # Allowed words are blanked out with the same length, so `starts` stay valid.
        visible = " ".join("\x00" * len(t.text) if t.allowed else t.text for t in tokens)
        hits: dict[str, str] = {}

        def add(found: Iterable[tuple[str, str, int, int]]) -> None:
            for category, term, _, _ in found:
                hits.setdefault(category, term)

        add(self._words.match_at(visible, (s for s, t in zip(starts, tokens, strict=True) if not t.allowed)))
        for category, pattern in self._patterns:
            match = pattern.search(visible)
            if match:
                hits.setdefault(category, f"pattern:{pattern.pattern}")
        for token in tokens:
            if token.allowed:
                continue
            add(self._substrings.finditer(token.text))
            if token.run:
                add(self._cores.finditer(token.text))
        for joined, members in prepared.joined:
            if not any(tokens[k].allowed for k in members):
                add(self._whole.match_at(joined, (0,)))
                add(self._substrings.finditer(joined))
        return hits


def _load_terms(path: Path) -> _TermsFile:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"safety term list {path}: cannot be read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"safety term list {path}: not valid YAML ({exc})") from None
    try:
        spec = _TermsFile.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        loc = ".".join(str(part) for part in err["loc"])
        raise ConfigError(f"safety term list {path}: {loc}: {err['msg']}") from None
    for combo in spec.combinations:
        for group in combo.all_of:
            for name in group:
                if name not in spec.categories:
                    raise ConfigError(f"safety term list {path}: combination names unknown category {name!r}")
    return spec


# --- Image check: NudeNet -----------------------------------------------------------------------

# NudeNet 3.4 labels that block. Covered parts, faces, feet, armpits, bellies and male chests
# never block on their own; exposed buttocks do (rear nudity).
BLOCKED_NUDENET_LABELS: frozenset[str] = frozenset(
    {
        "FEMALE_GENITALIA_EXPOSED",
        "MALE_GENITALIA_EXPOSED",
        "FEMALE_BREAST_EXPOSED",
        "ANUS_EXPOSED",
        "BUTTOCKS_EXPOSED",
    }
)
# A NudeNet detection confidence (0..1). NOT the spec's 0.23, which is the CLIP checker's threshold.
DEFAULT_NUDITY_THRESHOLD = 0.5
# NudeNet drops every candidate box whose best class score is under this value.
_NUDENET_MIN_SCORE = 0.2


def decide(
    detections: Sequence[Mapping[str, Any]],
    threshold: float = DEFAULT_NUDITY_THRESHOLD,
    labels: frozenset[str] = BLOCKED_NUDENET_LABELS,
) -> Verdict:
    """The block decision on NudeNet detections (`[{"class": str, "score": float, ...}]`): block
    when a label of `labels` scores >= threshold. `score` is the highest score of those labels
    (0.0 when none was detected), `term` the label that decided."""
    best_label: str | None = None
    best_score = 0.0
    for detection in detections:
        label = detection.get("class")
        score = float(detection.get("score", 0.0))
        if label in labels and score > best_score:
            best_label, best_score = str(label), score
    if best_label is not None and best_score >= threshold:
        return Verdict(True, "nudity", best_label, round(best_score, 4))
    return Verdict(False, None, None, round(best_score, 4))


class _PrefilteredSession:
    """Wraps NudeNet's onnxruntime session: drops the candidate boxes NudeNet's post-processing
    would skip anyway (best class score < 0.2) so its per-box Python loop sees a handful of boxes
    instead of all 2100. The detections are exactly the same."""

    def __init__(self, session: Any) -> None:
        self._session = session

    def get_inputs(self) -> Any:
        return self._session.get_inputs()

    def run(self, output_names: Any, feed: Mapping[str, Any]) -> list[Any]:
        outputs: list[Any] = list(self._session.run(output_names, feed))
        raw = outputs[0]
        if isinstance(raw, np.ndarray) and raw.ndim == 3 and raw.shape[0] == 1 and raw.shape[1] > 4:
            keep = raw[0, 4:, :].max(axis=0) >= _NUDENET_MIN_SCORE
            outputs[0] = np.ascontiguousarray(raw[:, :, keep])
        return outputs


class ImageChecker:
    """NudeNet's detector (the 320n ONNX model bundled in the `nudenet` wheel), CPU only. The
    model loads once, lazily, on the first check (or `warm_up()`); checks may run from several
    threads at once. `threads` is onnxruntime's intra-op thread count: one thread was the fastest
    on the project's shared 2-core machines (≈ 25-40 ms per image)."""

    def __init__(
        self,
        threshold: float = DEFAULT_NUDITY_THRESHOLD,
        *,
        threads: int = 1,
        model_path: Path | None = None,
        labels: frozenset[str] = BLOCKED_NUDENET_LABELS,
    ) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError("threshold must be between 0 and 1")
        self.threshold = threshold
        self.threads = threads
        self.model_path = model_path
        self.labels = labels
        self._detector: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        if self._detector is not None:
            return self._detector
        with self._lock:
            if self._detector is None:
                import nudenet  # type: ignore[import-untyped,unused-ignore]
                import onnxruntime  # type: ignore[import-untyped,unused-ignore]

                path = self.model_path or Path(nudenet.__file__).with_name("320n.onnx")
                if not path.is_file():
                    raise ModelNotInstalled(f"the NudeNet model is missing at {path}")
                options = onnxruntime.SessionOptions()
                options.intra_op_num_threads = self.threads
                options.inter_op_num_threads = 1
                session = onnxruntime.InferenceSession(
                    str(path), sess_options=options, providers=["CPUExecutionProvider"]
                )
                detector = nudenet.NudeDetector(model_path=str(path))
                # NudeDetector builds its session without options; use ours (thread count, CPU).
                detector.onnx_session = _PrefilteredSession(session)
                self._detector = detector
        return self._detector

    def warm_up(self) -> None:
        self.detections(Image.new("RGB", (64, 64)))

    def detections(self, image: Image.Image) -> list[dict[str, Any]]:
        """NudeNet's raw detections for an in-memory image (no temporary file)."""
        detector = self._load()
        result: list[dict[str, Any]] = detector.detect(_to_bgr(image))
        return result

    def check(self, image: Image.Image) -> Verdict:
        return decide(self.detections(image), self.threshold, self.labels)


_MAX_CHECK_SIDE = 1024


def _to_bgr(image: Image.Image) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """An RGB PIL image as the BGR uint8 array `cv2.imread` would give NudeNet for the same file.
    Very large images are shrunk first (NudeNet looks at 320x320 anyway)."""
    rgb = image.convert("RGB")
    factor = -(-max(rgb.size) // _MAX_CHECK_SIDE)
    if factor > 1:
        rgb = rgb.reduce(factor)
    array = np.asarray(rgb, dtype=np.uint8)
    return np.ascontiguousarray(array[:, :, ::-1])


# --- Image check: the diffusers CLIP safety checker (optional) ----------------------------------

_WEIGHT_FILES = (
    "model.safetensors",
    "pytorch_model.bin",
    "model.safetensors.index.json",
    "pytorch_model.bin.index.json",
)
_CHECKER_CLASS = "StableDiffusionSafetyChecker"
# diffusers raises every concept score by this much once a "special care" concept fired.
SPECIAL_CARE_ADJUSTMENT = 0.01


def _checker_dirs(path: Path) -> tuple[Path, Path] | None:
    """(model dir, image-processor dir) of a safety checker at `path`, or None. Two layouts:
    the checker's own repository (config.json + weights + preprocessor_config.json, as in
    CompVis/stable-diffusion-safety-checker) or a diffusers pipeline folder
    (safety_checker/ + feature_extractor/)."""
    for model_dir, processor_dir in ((path, path), (path / "safety_checker", path / "feature_extractor")):
        config = model_dir / "config.json"
        if not config.is_file() or not (processor_dir / "preprocessor_config.json").is_file():
            continue
        if not any((model_dir / name).is_file() for name in _WEIGHT_FILES):
            continue
        try:
            architectures = json.loads(config.read_text(encoding="utf-8")).get("architectures") or []
        except (OSError, ValueError, AttributeError):
            continue
        if _CHECKER_CLASS in architectures:
            return model_dir, processor_dir
    return None


def clip_decide(
    concept_similarity: Sequence[float],
    special_similarity: Sequence[float],
    threshold: float,
) -> Verdict:
    """The CLIP checker's decision on cosine similarities between the image embedding and the
    checkpoint's 17 concept and 3 "special care" embeddings, with ONE threshold for all of them.

    diffusers compares every similarity with a per-concept threshold stored in the checkpoint
    (`concept_embeds_weights`), and once any special-care concept is over its threshold it
    lowers every concept threshold by 0.01 (its `adjustment`). Here `threshold` (the spec's
    `block_threshold`, 0.23) replaces those per-concept thresholds; the 0.01 special-care
    tightening is kept. Block when a concept similarity + adjustment - threshold, rounded to 3
    decimals as diffusers does, is > 0. `score` is the highest concept similarity + adjustment,
    directly comparable with the threshold; lower thresholds block more."""
    adjustment = 0.0
    if any(round(s - threshold, 3) > 0 for s in special_similarity):
        adjustment = SPECIAL_CARE_ADJUSTMENT
    best_index, best = -1, float("-inf")
    for index, similarity in enumerate(concept_similarity):
        if similarity + adjustment > best:
            best_index, best = index, similarity + adjustment
    if best_index >= 0 and round(best - threshold, 3) > 0:
        return Verdict(True, "nsfw_concept", f"concept_{best_index}", round(best, 4))
    return Verdict(False, None, None, round(best, 4) if best_index >= 0 else None)


class ClipSafetyChecker:
    """The Stable Diffusion safety checker (CLIP ViT-L/14 image embedding compared with 17 unsafe
    concept embeddings), used when its weights are installed locally. Imports torch, diffusers and
    transformers only in `from_path`. See `clip_decide` for what the threshold means."""

    def __init__(self, model: Any, processor: Any, *, threshold: float, device: str = "cpu") -> None:
        self.model = model
        self.processor = processor
        self.threshold = threshold
        self.device = device
        self._lock = threading.Lock()

    @classmethod
    def from_path(
        cls, path: Path, *, threshold: float = 0.23, device: str = "cpu"
    ) -> ClipSafetyChecker | None:
        """The checker at `path`, or None when no checker (weights + CLIP image-processor config)
        is there. Files that are there but do not load raise ModelNotInstalled."""
        dirs = _checker_dirs(Path(path))
        if dirs is None:
            return None
        model_dir, processor_dir = dirs
        try:
            from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker

            try:  # transformers 5: the PIL backend (the default one needs torchvision, not installed)
                from transformers import CLIPImageProcessorPil as Processor
            except ImportError:  # pragma: no cover - older transformers
                from transformers import CLIPImageProcessor as Processor

            model = StableDiffusionSafetyChecker.from_pretrained(str(model_dir), local_files_only=True)
            model = model.to(device).eval()
            processor = Processor.from_pretrained(str(processor_dir), local_files_only=True)
        except ImportError as exc:
            raise ModelNotInstalled(
                f"the CLIP safety checker at {path} needs the [image] extra (torch, diffusers): {exc}"
            ) from None
        except Exception as exc:  # corrupt or incompatible files: any library error
            raise ModelNotInstalled(f"the CLIP safety checker at {path} could not be loaded: {exc}") from exc
        return cls(model, processor, threshold=threshold, device=device)

    def similarities(self, image: Image.Image) -> tuple[list[float], list[float]]:
        """Cosine similarities of the image with the concept and special-care embeddings."""
        import torch
        from torch.nn import functional

        with self._lock, torch.inference_mode():
            inputs = self.processor(images=[image.convert("RGB")], return_tensors="pt")
            pixels = inputs["pixel_values"].to(self.device, dtype=self.model.dtype)
            pooled = self.model.vision_model(pixels)[1]
            embeds = functional.normalize(self.model.visual_projection(pooled).float(), dim=-1)
            concepts = functional.normalize(self.model.concept_embeds.float(), dim=-1)
            special = functional.normalize(self.model.special_care_embeds.float(), dim=-1)
            concept_sim = (embeds @ concepts.T)[0].cpu().tolist()
            special_sim = (embeds @ special.T)[0].cpu().tolist()
        return [float(v) for v in concept_sim], [float(v) for v in special_sim]

    def check(self, image: Image.Image) -> Verdict:
        concept_sim, special_sim = self.similarities(image)
        return clip_decide(concept_sim, special_sim, self.threshold)


def clip_checker_locations(settings: Settings) -> list[Path]:
    """Where `SafetyService` looks for the CLIP checker: `stable-diffusion-safety-checker/` beside
    the SDXL base folder (the layout of `fimum models download`), then the base folder itself
    (pipelines that carry safety_checker/ + feature_extractor/)."""
    base = settings.image_generation.model.base_path
    return [base.parent / "stable-diffusion-safety-checker", base]


# --- The service --------------------------------------------------------------------------------


class SafetyService:
    """Prompt filter + image checks for one configuration. Everything is off when
    `image_generation.safety.nsfw_filter` is false; the CLIP checker additionally needs
    `image_generation.model.safety_checker` and its weights on disk (looked up once, lazily,
    so the API process that only checks prompts never imports torch)."""

    def __init__(
        self,
        settings: Settings,
        *,
        terms_path: Path | None = None,
        nudity_threshold: float = DEFAULT_NUDITY_THRESHOLD,
        image_checker: ImageChecker | None = None,
        clip_checker_paths: Sequence[Path] | None = None,
    ) -> None:
        safety = settings.image_generation.safety
        self.enabled = safety.nsfw_filter
        self.block_threshold = safety.block_threshold
        self.prompt_filter = PromptFilter(terms_path, enabled=self.enabled)
        self.image_checker = image_checker
        if self.image_checker is None and self.enabled:
            if importlib.util.find_spec("nudenet") is not None:
                self.image_checker = ImageChecker(nudity_threshold)
            else:
                log.warning(
                    "NudeNet is not installed (pip install 'fimum-ai[safety]'): generated images are "
                    "checked only by the CLIP safety checker, when its weights are installed"
                )
        self._clip_wanted = self.enabled and settings.image_generation.model.safety_checker
        self._clip_paths = list(clip_checker_paths) if clip_checker_paths is not None else None
        self._settings = settings
        self._clip: ClipSafetyChecker | None = None
        self._clip_resolved = False
        self._clip_lock = threading.Lock()

    def check_prompt(self, user_id: str, prompt: str) -> Verdict:
        """Check the POSITIVE prompt (never the negative one). Raises ContentBlocked when blocked."""
        verdict = self.prompt_filter.check(prompt)
        self._raise_if_blocked(user_id, "prompt", verdict)
        return verdict

    def check_image(self, user_id: str, image: Image.Image) -> Verdict:
        """Check one generated image with NudeNet, then the CLIP checker when it is installed.
        Raises ContentBlocked when blocked; returns NudeNet's (safe) verdict otherwise."""
        if not self.enabled:
            return SAFE
        verdict = self.image_checker.check(image) if self.image_checker is not None else SAFE
        self._raise_if_blocked(user_id, "image", verdict)
        clip = self.clip_checker()
        if clip is not None:
            self._raise_if_blocked(user_id, "image", clip.check(image))
        return verdict

    def clip_checker(self) -> ClipSafetyChecker | None:
        if not self._clip_wanted:
            return None
        if not self._clip_resolved:
            with self._clip_lock:
                if not self._clip_resolved:
                    paths = self._clip_paths
                    if paths is None:
                        paths = clip_checker_locations(self._settings)
                    for path in paths:
                        self._clip = ClipSafetyChecker.from_path(path, threshold=self.block_threshold)
                        if self._clip is not None:
                            log.info("CLIP safety checker loaded", extra={"path": str(path)})
                            break
                    self._clip_resolved = True
        return self._clip

    @staticmethod
    def _raise_if_blocked(user_id: str, stage: Stage, verdict: Verdict) -> None:
        if verdict.blocked:
            audit(user_id, stage, verdict)
            raise ContentBlocked(
                stage, verdict.category or "unsafe", verdict.score if stage == "image" else None
            )
