"""The languages the sandbox can run, and which of them this host (or image) has.

Each language is data: the source file name, an optional build command, the run command and the
programs it needs. Detection looks only in the system directories the sandbox mounts read-only
(`/usr/local/bin`, `/usr/bin`, `/bin`): a runtime in a user's home (pyenv, rustup) is invisible
inside the sandbox, so it is not offered.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field

SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"


@dataclass(frozen=True, slots=True)
class LanguageSpec:
    id: str
    name: str
    source: str  # file name of the program in the work dir
    run: tuple[str, ...]
    build: tuple[str, ...] | None = None
    requires: tuple[str, ...] = ()  # programs that must exist (the first is asked for its version)
    version_args: tuple[str, ...] = ("--version",)
    aliases: tuple[str, ...] = ()
    # Runtimes that reserve large address ranges up front (V8, the JVM) get a bigger RLIMIT_AS; their
    # real memory use is still capped by RLIMIT_DATA.
    big_address_space: bool = False
    env: tuple[tuple[str, str], ...] = field(default=())


_JVM_FLAGS = ("-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xss1m", "-XX:ReservedCodeCacheSize=32m")
# `{heap_mb}` in a command becomes half the memory limit (the JVM sizes its heap from the host's RAM).
HEAP_PLACEHOLDER = "{heap_mb}"

LANGUAGES: tuple[LanguageSpec, ...] = (
    LanguageSpec(
        "python",
        "Python",
        "main.py",
        run=("python3", "-I", "-X", "utf8", "main.py"),
        requires=("python3",),
        aliases=("py", "python3"),
        env=(("PYTHONDONTWRITEBYTECODE", "1"), ("PYTHONUNBUFFERED", "1")),
    ),
    LanguageSpec(
        "javascript",
        "JavaScript (Node.js)",
        "main.js",
        run=("node", "main.js"),
        requires=("node",),
        aliases=("js", "node", "nodejs"),
        big_address_space=True,
    ),
    LanguageSpec(
        "bash", "Bash", "main.sh", run=("bash", "main.sh"), requires=("bash",), aliases=("sh", "shell")
    ),
    LanguageSpec(
        "c",
        "C (GCC)",
        "main.c",
        build=("gcc", "-O2", "-std=gnu17", "-pipe", "-o", "main", "main.c", "-lm"),
        run=("./main",),
        requires=("gcc",),
    ),
    LanguageSpec(
        "cpp",
        "C++ (G++)",
        "main.cpp",
        build=("g++", "-O2", "-std=gnu++20", "-pipe", "-o", "main", "main.cpp"),
        run=("./main",),
        requires=("g++",),
        aliases=("c++", "cxx"),
    ),
    LanguageSpec(
        "java",
        "Java",
        "Main.java",
        build=("javac", *(f"-J{flag}" for flag in _JVM_FLAGS), "Main.java"),
        run=("java", *_JVM_FLAGS, "-Xmx{heap_mb}m", "-cp", ".", "Main"),
        requires=("java", "javac"),
        version_args=("-version",),
        big_address_space=True,
    ),
    LanguageSpec("perl", "Perl", "main.pl", run=("perl", "main.pl"), requires=("perl",), aliases=("pl",)),
    LanguageSpec("ruby", "Ruby", "main.rb", run=("ruby", "main.rb"), requires=("ruby",), aliases=("rb",)),
    LanguageSpec("php", "PHP", "main.php", run=("php", "main.php"), requires=("php",)),
    LanguageSpec("lua", "Lua", "main.lua", run=("lua", "main.lua"), requires=("lua",)),
    LanguageSpec(
        "go",
        "Go",
        "main.go",
        run=("go", "run", "main.go"),
        requires=("go",),
        version_args=("version",),
        aliases=("golang",),
        big_address_space=True,
        env=(("GOCACHE", "/tmp/go-cache"), ("GOPATH", "/tmp/go"), ("GOFLAGS", "-mod=mod")),
    ),
    LanguageSpec(
        "rust",
        "Rust",
        "main.rs",
        build=("rustc", "-O", "-o", "main", "main.rs"),
        run=("./main",),
        requires=("rustc",),
        aliases=("rs",),
    ),
    LanguageSpec(
        "typescript",
        "TypeScript (Deno)",
        "main.ts",
        run=("deno", "run", "--quiet", "main.ts"),
        requires=("deno",),
        aliases=("ts",),
        big_address_space=True,
        env=(("DENO_DIR", "/tmp/deno"),),
    ),
)

BY_ID: dict[str, LanguageSpec] = {spec.id: spec for spec in LANGUAGES}


@dataclass(frozen=True, slots=True)
class Language:
    """A language this sandbox runs: its spec and the runtime's version line."""

    spec: LanguageSpec
    version: str

    @property
    def id(self) -> str:
        return self.spec.id

    def describe(self) -> dict[str, object]:
        return {
            "id": self.spec.id,
            "name": self.spec.name,
            "version": self.version,
            "aliases": list(self.spec.aliases),
            "source_file": self.spec.source,
            "compiled": self.spec.build is not None,
        }


def expand(args: tuple[str, ...], memory_bytes: int) -> list[str]:
    heap_mb = str(max(16, memory_bytes // 2 // (1 << 20)))
    return [arg.replace(HEAP_PLACEHOLDER, heap_mb) for arg in args]


def resolve_language_id(name: str) -> str | None:
    """The canonical id for a name or alias ("py", "C++", "node"), else None."""
    wanted = name.strip().lower()
    for spec in LANGUAGES:
        if wanted == spec.id or wanted in spec.aliases:
            return spec.id
    return None


def _version(program: str, args: tuple[str, ...]) -> str:
    try:
        done = subprocess.run(
            [program, *args], capture_output=True, text=True, timeout=10, env={"PATH": SANDBOX_PATH}
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0].strip() if text else ""


def detect_host_languages(allow: Iterable[str] | None = None) -> list[Language]:
    """The languages whose programs exist in the sandbox's system directories, with versions."""
    allowed = set(allow) if allow is not None else None
    found: list[Language] = []
    for spec in LANGUAGES:
        if allowed is not None and spec.id not in allowed:
            continue
        paths = [shutil.which(program, path=SANDBOX_PATH) for program in spec.requires]
        if not all(paths) or not all(os.access(p, os.X_OK) for p in paths if p):
            continue
        found.append(Language(spec, _version(str(paths[0]), spec.version_args)))
    return found
