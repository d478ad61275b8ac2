"""What the CLI shows while working and when done: rich on a terminal, plain lines otherwise.

Progress goes to stderr, so stdout stays clean for ``--json`` and exports.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

PLAIN_EVERY_SECONDS = 10.0
LABELS = {"walk": "finding photos", "photos": "scanning", "reembed": "re-embedding", "index": "indexing",
          "models": "loading models", "dates": "reading capture dates", "cluster": "clustering", "dedupe": "finding duplicates", "albums": "albums", "report": "report thumbnails",
          "xmp": "XMP sidecars"}
STEPS = {"cluster": ("reading faces", "grouping faces", "writing people", "done"),
         "dedupe": ("reading faces", "comparing faces", "comparing photos", "done")}


class ScanProgress:
    """A callable receiving ProgressEvents (scan, cluster, albums, report): a rich bar per
    stage with rate and ETA on a terminal, a plain line every 10 s (and at a stage's end)
    otherwise."""

    def __init__(self, enabled: bool = True, stream=None) -> None:
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.live = enabled and self.stream.isatty()
        self._progress = None
        self._tasks: dict[str, int] = {}
        self._last_plain = 0.0
        self._plain_started: dict[str, tuple[float, int]] = {}  # stage -> (when, done) at its first event

    def __enter__(self) -> "ScanProgress":
        if self.live:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"), TextColumn("{task.fields[faces]}"),
                TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                console=Console(file=self.stream), transient=False,
            )
            self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()

    def __call__(self, event) -> None:
        if not self.enabled:
            return
        if self._progress is not None:
            self._live(event)
        else:
            self._plain(event)

    def _live(self, event) -> None:
        task = self._tasks.get(event.stage)
        label = LABELS.get(event.stage, event.stage)
        if task is None:
            task = self._progress.add_task(label, total=event.total or None, rate="", faces="")
            self._tasks[event.stage] = task
            self._stage_started = time.monotonic()
        elapsed = max(1e-6, time.monotonic() - self._stage_started)
        fields = {}
        if event.stage in ("photos", "reembed"):
            fields = {"rate": f"{event.done / elapsed:.1f} photos/s",
                      "faces": f"{event.faces} faces, {event.errors} errors"}
        self._progress.update(task, completed=event.done, total=event.total or None, **fields)

    def _plain(self, event) -> None:
        if event.stage == "models":  # one line while they load
            if event.done == 0:
                print("loading models...", file=self.stream, flush=True)
            return
        now = time.monotonic()
        since, done_then = self._plain_started.setdefault(event.stage, (now, event.done))
        final = event.total and event.done >= event.total
        if not final and now - self._last_plain < PLAIN_EVERY_SECONDS:
            return
        self._last_plain = now
        elapsed = max(1e-6, now - since)
        if event.stage == "photos":
            rate = (event.done - done_then) / elapsed
            line = (f"scan: {event.done}/{event.total} photos, {event.faces} faces, "
                    f"{event.errors} errors, {rate:.1f} photos/s")
            if not final and rate > 0 and event.total:
                line += f", ETA {eta_text((event.total - event.done) / rate)}"
        elif event.stage in STEPS:
            line = (f"{event.stage}: step {event.done}/{event.total} ({STEPS[event.stage][min(event.done, 3)]}), "
                    f"{event.faces} faces")
        else:
            line = f"{LABELS.get(event.stage, event.stage)}: {event.done}/{event.total or '?'}"
        print(line, file=self.stream, flush=True)


def eta_text(seconds: float) -> str:
    """'45s', '12m05s', '3h07m': the time left, as a log line shows it."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class TrainProgress(ScanProgress):
    """ScanProgress for the data stages of ``faceclust train``, then a bar per epoch with the
    loss, the share of active triplets and faces/s, and a line per validation."""

    def __call__(self, event) -> None:
        if not self.enabled:
            return
        if getattr(event, "stage", None) not in ("step", "validated"):
            return super().__call__(event)
        if event.stage == "validated":
            line = validation_line(event.epoch, event.metrics)
            if self._progress is not None:
                self._progress.console.print(line, highlight=False)
            else:
                print(line, file=self.stream, flush=True)
            return
        text = (f"loss {event.loss:.4f}, active {event.active:.0%}", f"{event.faces_per_second:.0f} faces/s")
        if self._progress is not None:
            name = f"epoch {event.epoch}"
            task = self._tasks.get(name)
            if task is None:
                task = self._progress.add_task(name, total=event.steps, rate="", faces="")
                self._tasks[name] = task
            self._progress.update(task, completed=event.step, rate=text[1], faces=text[0])
        elif event.step == event.steps or time.monotonic() - self._last_plain >= PLAIN_EVERY_SECONDS:
            self._last_plain = time.monotonic()
            print(f"epoch {event.epoch}: step {event.step}/{event.steps}, {text[0]}, {text[1]}",
                  file=self.stream, flush=True)


def validation_line(epoch: int, m: dict) -> str:
    if "accuracy" not in m:
        return f"epoch {epoch}: no held-out people to validate on"
    return (f"epoch {epoch} held-out: VAL@FAR=1e-3 {m['val_at_far_0.001']:.3f}, VAL@FAR=1e-2 "
            f"{m['val_at_far_0.01']:.3f}, accuracy {m['accuracy']:.4f} at {m['threshold']:.3f}, "
            f"clustering BCubed F1 {m['cluster_bcubed_f1']:.3f}")


def print_train_summary(summary: dict) -> None:
    from rich.console import Console

    console = Console()
    best = summary["best_epoch"]
    console.print(f"model written to {summary['out']} (best epoch {best} of {len(summary['history']) - 1}, "
                  f"{summary['seconds']:.0f} s, {summary['train_faces_per_second']:.0f} faces/s training)",
                  highlight=False)
    if "accuracy" in summary["before"]:
        console.print("before: " + validation_line(0, summary["before"]).split(": ", 1)[1], highlight=False)
        console.print("after:  " + validation_line(best, summary["after"]).split(": ", 1)[1], highlight=False)
        console.print(f"distance thresholds scale by {summary['distance_scale']:.3f} with this model", highlight=False)
    for note in summary.get("notes", []):
        console.print(f"[yellow]note[/yellow] {note}", highlight=False)
    console.print(f"use it: faceclust scan PHOTOS --model {summary['out']}", highlight=False)


def _safe(value):
    """User text (a path, a person's name) for rich: never read as markup, controls escaped."""
    from rich.text import Text

    from faceclust.text import printable

    return Text(printable(value))


def print_scan_summary(summary: dict, catalog: Path) -> None:
    """The summary table (stdout). Per-file errors and warnings are the caller's, on stderr."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=_safe(f"scan of {catalog}"), show_header=False)
    for key in ("photos_seen", "unchanged", "new", "changed", "moved", "copied", "aliases", "reembedded",
                "gone", "kept_missing", "errors", "known_errors", "faces_found", "photos_with_faces",
                "tags_imported", "tags_unmatched", "photos_per_second"):
        if key in ("kept_missing", "known_errors", "aliases", "tags_imported", "tags_unmatched") and not summary.get(key):
            continue
        label = {"tags_imported": "faces named from XMP tags",
                 "tags_unmatched": "XMP tags on no face found"}.get(key, key.replace("_", " "))
        table.add_row(label, str(summary.get(key, 0)))
    skipped = summary.get("skipped") or {}
    if skipped:
        names = {"video": "videos", "raw": "RAW files", "sidecar": "sidecars", "other": "other files"}
        table.add_row("not photos (not read)", ", ".join(f"{skipped[k]} {names.get(k, k)}" for k in
                                                        ("video", "raw", "sidecar", "other") if skipped.get(k)))
    table.add_row("seconds", f"{summary.get('seconds', 0):.1f}")
    console.print(table)


DESCRIPTORS = {"fused": "fused: dlib ResNet + 0.5 SFace (the default)", "dlib-resnet": "dlib ResNet alone"}


def print_status(counts: dict, catalog: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=_safe(f"catalog {catalog}"), show_header=False)
    for key in ("photos", "photos_with_faces", "faces", "people", "named_people", "hidden_people",
                "photos_with_errors", "photos_gone", "runs", "schema_version"):
        table.add_row(key.replace("_", " "), str(counts.get(key, 0)))
    for model, n in counts.get("embeddings_by_model", {}).items():
        table.add_row(_safe(f"embeddings ({model})"), str(n))
    model = counts.get("model")
    if model:
        if model.get("embedder"):
            described = DESCRIPTORS.get(model["embedder"], model["embedder"])
            table.add_row("descriptor", described + (" (fine-tuned)" if model.get("checkpoint") else ""))
        table.add_row("model in use", _safe(model["checkpoint"] or model["model_id"] or model.get("error", "?")))
    console.print(table)
    if model and model.get("embedder") and not model.get("is_default"):
        console.print(f"note: this catalog uses the {model['embedder']} descriptor; the default is now the fused "
                      "one (better people on every set measured): 'faceclust scan PHOTOS --model default' "
                      "switches, re-embedding the faces without detecting them again", highlight=False, soft_wrap=True)
    errors = counts.get("files_with_errors", [])
    if errors:
        console.print(f"files that could not be read at their last scan ({counts.get('photos_with_errors', 0)}):",
                      highlight=False)
        for row in errors[:10]:
            console.print(_safe(f"  {row['path']}: {row['error']}"))
    last = counts.get("last_run")
    if last:
        console.print(_safe(f"last run: {last['command']} #{last['id']} ({last['status']}), "
                            f"started {last['started_at']}"))


def print_people(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("id", "name", "faces", "photos", "first seen", "last seen")
    for row in rows:
        name = _safe(row["name"] or "")
        if row["hidden"]:
            name.append(" (hidden)")
        table.add_row(str(row["id"]), name, str(row["faces"]), str(row["photos"]),
                      (row.get("first_seen") or "")[:10], (row.get("last_seen") or "")[:10])
    Console().print(table)
