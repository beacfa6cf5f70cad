"""Batch baking: a folder of portraits in, a folder of engine-ready assets out.

Every regular, non-hidden file in the input folder (in name order) is one job: create an avatar with
the chosen generator (projective by default), then export it into `<out>/<name>/`. A job's outcome is recorded in
`<out>/<name>/bake.json` (the input's sha256, generator and formats with the avatar id, outputs and
seconds, or the error), so a rerun skips every input whose record still matches, including the ones
rejected as bad input: the same bytes would fail the same way. Any other failure (out of memory, a
full disk, a worker killed mid-job) is transient: the job is tried again, up to `max_attempts` times
in one run, and once more on every rerun. `report.json` in the output folder lists every input with
its attempts. Jobs run in a process pool when workers > 1; `exporter.bake_ray` runs the same jobs as Ray
tasks across a cluster through `run_bake`, so skipping, retries and the report are the same there.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from multiprocessing import get_context
from pathlib import Path
from typing import Any, TypeAlias

from avatar.generators import DEFAULT_GENERATOR
from exporter.api import normalise_formats
from exporter.options import ExportError, ExportOptions

# Thread-pool sizes a spawned worker's libraries read when they load.
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

RECORD = "bake.json"
REPORT = "report.json"
DEFAULT_FORMATS = ("glb", "tables")
DEFAULT_MAX_ATTEMPTS = 3

# A job's bake.json content, as JSON: input, sha256, generator, generator_version, formats, options,
# attempts, retryable, status, seconds, and avatar_id + outputs (ok) or error.
Record: TypeAlias = dict[str, Any]


@dataclass
class BakeResult:
    input: str
    status: str                      # "ok", "error", "skipped-ok", "skipped-error"
    output_dir: str
    avatar_id: str = ""
    outputs: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str = ""
    attempts: int = 1                # tries in the run that produced this outcome
    retryable: bool = False          # the error was transient (not the input's fault)

    @property
    def succeeded(self) -> bool:
        return self.status in ("ok", "skipped-ok")

    @property
    def failed(self) -> bool:
        return self.status in ("error", "skipped-error")


@dataclass
class BakeReport:
    results: list[BakeResult]

    @property
    def succeeded(self) -> int:
        return sum(r.succeeded for r in self.results)

    @property
    def failed(self) -> int:
        return sum(r.failed for r in self.results)

    @property
    def skipped(self) -> int:
        return sum(r.status.startswith("skipped") for r in self.results)

    def summary(self) -> str:
        return (f"{len(self.results)} portraits: {self.succeeded} baked, {self.failed} failed, "
                f"{self.skipped} already done")


def list_inputs(portraits_dir: Path) -> list[Path]:
    if not portraits_dir.is_dir():
        raise ExportError(f"{portraits_dir}: not a directory of portraits")
    return sorted(p for p in portraits_dir.iterdir() if p.is_file() and not p.name.startswith("."))


def output_names(inputs: list[Path]) -> dict[Path, str]:
    """Output folder per input: its stem, or its whole name when two inputs share a stem."""
    stems: dict[str, int] = {}
    for p in inputs:
        stems[p.stem] = stems.get(p.stem, 0) + 1
    return {p: (p.stem if stems[p.stem] == 1 else p.name.replace(".", "_")) for p in inputs}


def _job_key(sha256: str, formats: list[str], options: ExportOptions, generator_name: str) -> Record:
    from avatar.generators import get_generator

    generator = get_generator(generator_name)
    return {"sha256": sha256, "generator": generator.name, "generator_version": generator.version,
            "formats": formats, "options": {k: getattr(options, k) for k in sorted(vars(options))}}


def _read_record(out: Path) -> Record | None:
    try:
        record = json.loads((out / RECORD).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _is_input_error(exc: BaseException) -> bool:
    """Bad input (every validation error of the avatar and exporter packages is a ValueError): retrying
    the same bytes cannot help. Anything else may pass on another try."""
    return isinstance(exc, ValueError)


def write_record(out: Path, record: Record) -> None:
    """`out/bake.json`, replaced in one rename."""
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / (RECORD + ".partial")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, out / RECORD)


def bake_one(source: str, out_dir: str, formats: list[str], options: ExportOptions, torch_threads: int = 0,
             attempt: int = 1, generator: str = DEFAULT_GENERATOR) -> Record:
    """Create + export one portrait (try number `attempt`); never raises for a failed job, returns the
    record it wrote (`retryable` says whether the failure was transient)."""
    import torch

    if torch_threads:
        torch.set_num_threads(torch_threads)
    from avatar.generators import get_generator
    from exporter.api import export

    start = time.perf_counter()
    src, out = Path(source), Path(out_dir)
    try:
        data = src.read_bytes()
    except OSError as exc:  # moved or unreadable since the folder was listed: no record, a rerun retries
        return {"input": src.name, "status": "error", "error": f"cannot read the portrait: {exc}",
                "attempts": attempt, "retryable": True}
    key = _job_key(hashlib.sha256(data).hexdigest(), formats, options, generator)
    record = {"input": src.name, **key, "attempts": attempt, "retryable": False}
    try:
        avatar = get_generator(generator).create(data)
        outputs = export(avatar, formats, options, out_dir=out)
        record.update(status="ok", avatar_id=avatar.avatar_id, outputs=outputs)
    except Exception as exc:  # noqa: BLE001 - one failed portrait must not stop the batch; the record says why
        record.update(status="error", error=f"{type(exc).__name__}: {exc}", retryable=not _is_input_error(exc))
    record["seconds"] = round(time.perf_counter() - start, 3)
    try:
        write_record(out, record)
    except OSError as exc:  # e.g. a full disk: this run's report still has the outcome; a rerun retries
        record.update(status="error", error=f"cannot write {RECORD}: {exc}", retryable=True)
    return record


def _still_valid(record: Record, key: Record, out: Path) -> bool:
    if any(record.get(k) != v for k, v in key.items()):
        return False
    if record.get("status") == "ok":
        return all((out / rel).is_file() for rel in record.get("outputs", []))
    return record.get("status") == "error" and not record.get("retryable", False)


def _result(record: Record, out: Path, skipped: bool) -> BakeResult:
    status = record.get("status", "error")
    return BakeResult(input=record.get("input", ""), status=f"skipped-{status}" if skipped else status,
                      output_dir=str(out), avatar_id=record.get("avatar_id", ""),
                      outputs=list(record.get("outputs", [])), seconds=float(record.get("seconds", 0.0)),
                      error=record.get("error", ""), attempts=int(record.get("attempts", 1)),
                      retryable=bool(record.get("retryable", False)))


@dataclass(frozen=True)
class BakeSpec:
    """What every job of one bake shares: normalised export formats, options and the generator's name."""
    formats: list[str]
    options: ExportOptions
    generator: str


Job = tuple[Path, Path]  # (portrait file, its output folder)
# One attempt at every job, calling finished(portrait, record) as each ends (record as bake_one returns it).
JobRunner = Callable[[list[Job], BakeSpec, int, Callable[[Path, Record], None]], None]


def bake_folder(portraits_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str],
                formats: tuple[str, ...] | list[str] = DEFAULT_FORMATS, options: ExportOptions | None = None,
                workers: int = 1, on_result: Callable[[BakeResult], None] | None = None,
                max_attempts: int = DEFAULT_MAX_ATTEMPTS, generator: str = DEFAULT_GENERATOR) -> BakeReport:
    """Bake every portrait not already done with the named generator, `workers` at a time on this
    machine; `on_result` is called once per input as it finishes (after its last attempt)."""
    _check_positive("workers", workers)
    return run_bake(portraits_dir, out_dir, partial(_run_jobs, workers=workers), formats, options, on_result,
                    max_attempts, generator)


def run_bake(portraits_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str], runner: JobRunner,
             formats: tuple[str, ...] | list[str] = DEFAULT_FORMATS, options: ExportOptions | None = None,
             on_result: Callable[[BakeResult], None] | None = None, max_attempts: int = DEFAULT_MAX_ATTEMPTS,
             generator: str = DEFAULT_GENERATOR) -> BakeReport:
    """The bake around any job runner: skips inputs whose record still matches, gives transient
    failures up to `max_attempts` tries (each try one `runner` call over the inputs left), writes
    `report.json`. The runner is not called when nothing is left to do."""
    from avatar.generators import get_generator

    get_generator(generator)  # an unknown name is a GeneratorError before any work
    spec = BakeSpec(normalise_formats(formats), options or ExportOptions(), generator)
    if "animation" in spec.formats:
        raise ExportError("bake exports avatars only; the animation format needs a per-avatar animation source")
    _check_positive("max_attempts", max_attempts)
    src_dir, out_root = Path(portraits_dir), Path(out_dir)
    inputs = list_inputs(src_dir)
    names = output_names(inputs)
    out_root.mkdir(parents=True, exist_ok=True)
    notify = on_result or (lambda result: None)

    results: dict[Path, BakeResult] = {}
    todo: list[Path] = []
    for p in inputs:
        out = out_root / names[p]
        key = _job_key(hashlib.sha256(p.read_bytes()).hexdigest(), spec.formats, spec.options, generator)
        record = _read_record(out)
        if record is not None and _still_valid(record, key, out):
            results[p] = _result(record, out, skipped=True)
            notify(results[p])
        else:
            todo.append(p)

    def finished(p: Path, record: Record, attempt: int, retry: list[Path]) -> None:
        if record.get("status") != "ok" and record.get("retryable") and attempt < max_attempts:
            retry.append(p)
        else:
            results[p] = _result(record, out_root / names[p], skipped=False)
            notify(results[p])

    attempt = 1
    while todo:
        retry: list[Path] = []
        runner([(p, out_root / names[p]) for p in todo], spec, attempt,
               partial(finished, attempt=attempt, retry=retry))
        todo, attempt = sorted(retry), attempt + 1

    report = BakeReport([results[p] for p in inputs])
    doc = {"portraits_dir": str(src_dir), "out_dir": str(out_root), "formats": spec.formats,
           "summary": {"inputs": len(inputs), "succeeded": report.succeeded, "failed": report.failed,
                       "skipped": report.skipped},
           "inputs": [vars(r) | {"succeeded": r.succeeded} for r in report.results]}
    tmp = out_root / (REPORT + ".partial")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(tmp, out_root / REPORT)
    return report


def _check_positive(name: str, value: object) -> None:
    """Counts also come from callers no type checker sees (scripts, notebooks): a sentence, not a crash."""
    if not isinstance(value, int) or value < 1:
        raise ExportError(f"{name} must be a positive integer, got {value!r}")


def crashed(portrait: Path, attempt: int, exc: BaseException) -> Record:
    """The record of a job whose worker died or could not run it: transient, so it is tried again."""
    first_line = next(iter(str(exc).strip().splitlines()), "")  # a scheduler's explanation can run to pages
    return {"input": portrait.name, "status": "error", "error": f"{type(exc).__name__}: {first_line}",
            "attempts": attempt, "retryable": True}


@contextmanager
def _worker_threads(threads: int) -> Iterator[None]:
    """Workers spawned inside the block start with their thread pools (OpenMP, BLAS) at `threads` unless
    the caller chose: a library's pool sized for the whole machine in every worker makes the workers'
    spinning threads fight for the cores (measured: a portrait took 5.3 s in a 2-worker pool, 2.8 s in a
    one-thread Ray worker)."""
    names = [n for n in THREAD_ENV if n not in os.environ]
    os.environ.update(dict.fromkeys(names, str(threads)))
    try:
        yield
    finally:
        for name in names:
            os.environ.pop(name, None)


def _run_jobs(jobs: list[Job], spec: BakeSpec, attempt: int, finished: Callable[[Path, Record], None],
              workers: int) -> None:
    """One attempt at every job on this machine; a worker that dies takes its job(s) with it as a
    retryable error (a fresh pool serves the next attempt)."""
    if workers == 1 or len(jobs) <= 1:
        for p, out in jobs:
            finished(p, bake_one(str(p), str(out), spec.formats, spec.options, attempt=attempt,
                                 generator=spec.generator))
        return
    threads = max(1, (os.cpu_count() or 1) // workers)
    # spawn, not fork: forking a process that has started torch's thread pools can deadlock.
    with _worker_threads(threads), ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(bake_one, str(p), str(out), spec.formats, spec.options, threads, attempt,
                               spec.generator): p
                   for p, out in jobs}
        for future in as_completed(futures):
            p = futures[future]
            try:
                record = future.result()
            except Exception as exc:  # noqa: BLE001 - a crashed worker is this input's (transient) error
                record = crashed(p, attempt, exc)
            finished(p, record)
