"""Code sandbox benchmark (issue 7, FR-CODE-004): what a sandboxed run costs.

For each language the host has, a hello-world program runs through the bubblewrap sandbox and,
interleaved in the same run, directly on the host (same runtime, a temp dir, no isolation): the
difference is the sandbox's start-up cost (namespaces, mounts, prlimit, process-tree handling).
Compiled languages include their build in both. Then N concurrent Python runs through one
SandboxService (max_concurrent slots) give the throughput.

    python bench/sandbox_bench.py [--repeats 7] [--concurrent 16]
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import _common as c

from fimum_ai.chat.sandbox import BubblewrapSandbox, SandboxService, limits_from
from fimum_ai.chat.sandbox.languages import SANDBOX_PATH, LanguageSpec, expand
from fimum_ai.settings import SandboxConfig

HELLO = {
    "python": "print('hello')",
    "javascript": "console.log('hello')",
    "bash": "echo hello",
    "c": '#include <stdio.h>\nint main(void) { puts("hello"); return 0; }',
    "cpp": '#include <iostream>\nint main() { std::cout << "hello" << std::endl; }',
    "java": 'class Main { public static void main(String[] a) { System.out.println("hello"); } }',
    "perl": 'print "hello\\n";',
}


def direct(spec: LanguageSpec, code: str, memory: int) -> float:
    """The same program on the host without any isolation (the baseline)."""
    with tempfile.TemporaryDirectory() as work:
        Path(work, spec.source).write_text(code)
        script = ""
        if spec.build is not None:
            script = shlex.join(expand(spec.build, memory)) + " && "
        script += shlex.join(expand(spec.run, memory))
        started = time.perf_counter()
        done = subprocess.run(
            ["/bin/sh", "-c", script], cwd=work, capture_output=True, text=True, env={"PATH": SANDBOX_PATH}
        )
        elapsed = time.perf_counter() - started
    if done.stdout.strip() != "hello":
        raise RuntimeError(f"{spec.id} direct run failed: {done.stderr[:300]}")
    return elapsed


def sandboxed(sandbox: BubblewrapSandbox, language: str, code: str) -> float:
    started = time.perf_counter()
    result = asyncio.run(sandbox.run(language, code))
    elapsed = time.perf_counter() - started
    if result.stdout.strip() != "hello":
        raise RuntimeError(f"{language} sandboxed run failed: {result}")
    return elapsed


def concurrency(n: int, slots: int) -> dict[str, float]:
    service = SandboxService(SandboxConfig(max_concurrent=slots))

    async def many() -> float:
        started = time.perf_counter()
        results = await asyncio.gather(*(service.run("python", HELLO["python"]) for _ in range(n)))
        elapsed = time.perf_counter() - started
        if any(r.status != "ok" for r in results):
            raise RuntimeError("a concurrent run failed")
        return elapsed

    elapsed = asyncio.run(many())
    return {"runs": n, "slots": slots, "seconds": elapsed, "runs_per_s": n / elapsed}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--concurrent", type=int, default=16)
    parser.add_argument("--quick", action="store_true", help="3 repeats, 8 concurrent runs")
    args = parser.parse_args(argv)
    repeats, concurrent = (3, 8) if args.quick else (args.repeats, args.concurrent)
    config = SandboxConfig()
    sandbox = BubblewrapSandbox(limits_from(config))
    ok, why = sandbox.available()
    if not ok:
        c.log(f"sandbox unavailable: {why}")
        return 1
    languages = [lang for lang in sandbox.languages() if lang.id in HELLO]
    load_before = c.load_average()
    rows: list[list[str]] = []
    cases = []
    for language in languages:
        code = HELLO[language.id]
        sandboxed(sandbox, language.id, code)  # warm the page cache for both paths
        direct(language.spec, code, config.memory_bytes)
        inside: list[float] = []
        outside: list[float] = []
        for _ in range(repeats):
            inside.append(sandboxed(sandbox, language.id, code))
            outside.append(direct(language.spec, code, config.memory_bytes))
        s_in, s_out = c.summarize(inside), c.summarize(outside)
        overhead = c.summarize([a - b for a, b in zip(inside, outside, strict=True)])
        cases.append(
            {
                "language": language.id,
                "version": language.version,
                "sandboxed_s": s_in.as_dict(),
                "direct_s": s_out.as_dict(),
                "overhead_s": overhead.as_dict(),
            }
        )
        rows.append(
            [
                language.id,
                c.fmt_s(s_in.median),
                c.fmt_s(s_out.median),
                f"{overhead.median * 1000:.0f} [{overhead.q1 * 1000:.0f}–{overhead.q3 * 1000:.0f}]",
            ]
        )
    c.print_table(
        f"Hello world: sandboxed vs direct, median of {repeats} interleaved runs",
        ["language", "sandboxed s", "direct s", "sandbox overhead ms [q1–q3]"],
        rows,
    )
    throughput = concurrency(concurrent, config.max_concurrent)
    c.print_table(
        "Concurrent Python runs through one SandboxService",
        ["runs", "slots", "seconds", "runs/s"],
        [
            [
                throughput["runs"],
                throughput["slots"],
                c.fmt_s(throughput["seconds"]),
                f"{throughput['runs_per_s']:.1f}",
            ]
        ],
    )
    payload = {
        "machine": c.machine_info(),
        "load_average_before": load_before,
        "load_average_after": c.load_average(),
        "repeats": repeats,
        "cases": cases,
        "concurrency": throughput,
    }
    c.log(f"wrote {c.write_json('sandbox', payload)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
