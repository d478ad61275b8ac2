"""Phone-size photos end to end (issue 14's bar): ``faceclust scan`` and ``faceclust run``
against face_recognition's own command line on the same 12-megapixel JPEGs, whole processes
(start-up included), with each one's face-found-in-photo recall.

    .venv/bin/python benchmarks/bench_phone.py --photos 80 --rounds 2

The photos: a seeded sample of one development set (celeba_train by default), each enlarged to
4032x3024 and saved as JPEG quality 92 in the benchmark's work folder (never in the project).
They are blurrier than a phone's photos (enlarged from <= 512 px); read them for speed and for
"a face was found in this photo".

The reference is face_recognition 1.3 (``face_recognition --cpus N KNOWN PHOTOS``: the photo
capped at 1600 px, dlib's HOG detector upsampled once, 5-point landmarks, dlib's descriptor,
then a comparison with the known faces). It cannot share faceclust's environment (its package
asks for a dlib built from source and imports pkg_resources), so it runs from a virtualenv of
its own, made on first use at ``--reference-venv`` from the package registry: dlib-bin,
face_recognition and face_recognition_models without their declared dependencies, click,
pillow, numpy and a setuptools that still has pkg_resources.

Rounds alternate the commands; each faceclust round uses a new catalog (the model cache is
warm, as for a nightly job; ``--cold`` adds one scan with an empty model cache). Peak RSS is
from os.wait4.
"""

from __future__ import annotations

import argparse
import os
import random
import shlex
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SHARED_DATA = Path(os.environ.get("FACECLUST_SHARED_DATA", ROOT.parent / "shared" / "data"))
VENV_BIN = Path(sys.executable).parent
REFERENCE_PACKAGES = ["setuptools<81", "dlib-bin", "click", "pillow", "numpy"]
REFERENCE_NO_DEPS = ["face_recognition==1.3.0", "face_recognition_models"]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared-data", type=Path, default=DEFAULT_SHARED_DATA)
    parser.add_argument("--set", default="celeba_train", help="development set to sample")
    parser.add_argument("--photos", type=int, default=80)
    parser.add_argument("--size", default="4032x3024", help="WIDTHxHEIGHT of the photos")
    parser.add_argument("--quality", type=int, default=92, help="JPEG quality")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cpus", type=int, default=2, help="face_recognition's --cpus")
    parser.add_argument("--work", type=Path, default=None, help="work folder (default: a temporary one)")
    parser.add_argument("--reference-venv", type=Path, default=Path(tempfile.gettempdir()) / "fr-reference-venv")
    parser.add_argument("--cold", action="store_true", help="also one scan with an empty model cache")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=ARGS",
                        help="also 'faceclust scan' with these extra arguments, e.g. yunet='--detector yunet'")
    return parser.parse_args()


def make_photos(source: Path, count: int, size: tuple[int, int], quality: int, out: Path) -> list[Path]:
    """``count`` photos of ``source`` (seeded sample) enlarged to ``size``; made once per folder."""
    from PIL import Image

    photos = sorted(source.rglob("*.jpg"))
    chosen = sorted(random.Random(1).sample(photos, count))
    out.mkdir(parents=True, exist_ok=True)
    made = []
    for i, path in enumerate(chosen):
        target = out / f"IMG_{i:04d}.jpg"
        if not target.exists():
            with Image.open(path) as image:
                image.convert("RGB").resize(size, Image.Resampling.BICUBIC).save(target, quality=quality)
        made.append(target)
    return made


def reference_venv(path: Path) -> Path:
    """face_recognition's command in a virtualenv of its own, made when missing."""
    command = path / "bin" / "face_recognition"
    if command.exists():
        return command
    print(f"making face_recognition's virtualenv at {path} (once)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(path)], check=True)
    pip = [str(path / "bin" / "pip"), "install", "--quiet"]
    subprocess.run([*pip, *REFERENCE_PACKAGES], check=True)
    subprocess.run([*pip, "--no-deps", *REFERENCE_NO_DEPS], check=True)
    return command


def timed(cmd: list[str], env: dict | None = None) -> tuple[float, float, str]:
    """Wall seconds, peak RSS MB (the process and its children) and stdout of a whole process."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        text, errors = out.read(), err.read()
    if status != 0:
        sys.exit(f"{shlex.join(cmd)} failed ({status}):\n{errors[-2000:]}")
    # Linux's wait4 gives the larger of the process's own peak and its waited-for children's
    # (the reference's worker processes).
    return seconds, usage.ru_maxrss / 1024, text


def faceclust_found(catalog: Path) -> set[str]:
    db = sqlite3.connect(catalog)
    try:
        rows = db.execute("SELECT DISTINCT p.path FROM faces f JOIN photos p ON p.id = f.photo_id").fetchall()
    finally:
        db.close()
    return {Path(path).name for (path,) in rows}


def reference_found(stdout: str) -> set[str]:
    """Photos where face_recognition found a face: it prints ``path,name`` per face found,
    ``path,unknown_person`` for faces it does not know and ``path,no_persons_found`` for none."""
    found = set()
    for line in stdout.splitlines():
        path, _, rest = line.partition(",")
        if rest and not rest.startswith("no_persons_found"):
            found.add(Path(path).name)
    return found


def main() -> None:
    args = parse_args()
    source = args.shared_data / args.set
    if not source.is_dir():
        sys.exit(f"no {source}: give --shared-data (the development sets' folder)")
    width, height = (int(v) for v in args.size.lower().split("x"))
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-phone-"))
    photos_dir = work / f"{args.set}-{args.photos}-{width}x{height}-q{args.quality}"
    photos = make_photos(source, args.photos, (width, height), args.quality, photos_dir)
    known = work / "known"
    known.mkdir(exist_ok=True)
    if not any(known.iterdir()):
        # One known person (an lfw_dev-sized photo of an identity of the set): the comparison
        # step is what face_recognition's command is for; its cost is negligible.
        first = sorted(source.rglob("*.jpg"))[0]
        shutil.copyfile(first, known / "known.jpg")
    fr = reference_venv(args.reference_venv)
    faceclust = str(VENV_BIN / "faceclust")
    commands = {
        "face_recognition": lambda n: [str(fr), "--cpus", str(args.cpus), str(known), str(photos_dir)],
        "faceclust scan": lambda n: [faceclust, "scan", str(photos_dir), "--catalog",
                                     str(work / f"scan-{n}.sqlite"), "--quiet"],
        "faceclust run": lambda n: [faceclust, "run", str(photos_dir), "--catalog", str(work / f"run-{n}.sqlite"),
                                    "--out", str(work / f"albums-{n}"), "--quiet"],
    }
    for variant in args.variant:
        label, _, extra = variant.partition("=")
        commands[f"faceclust scan {label}"] = (lambda extra, label: lambda n: [
            faceclust, "scan", str(photos_dir), "--catalog", str(work / f"scan-{label}-{n}.sqlite"), "--quiet",
            *shlex.split(extra)])(extra, label)
    times: dict[str, list[float]] = {name: [] for name in commands}
    peaks: dict[str, list[float]] = {name: [] for name in commands}
    found: dict[str, set[str]] = {}
    for n in range(args.rounds):
        for name, make in commands.items():
            catalog = work / ("-".join(["scan" if "scan" in name else "run", *name.split()[2:], str(n)]) + ".sqlite")
            for leftover in (catalog, work / f"albums-{n}"):
                if leftover.is_dir():
                    shutil.rmtree(leftover)
                elif leftover.exists():
                    leftover.unlink()
            seconds, peak, out = timed(make(n))
            times[name].append(seconds)
            peaks[name].append(peak)
            if name == "face_recognition":
                found[name] = reference_found(out)
            else:
                found[name] = faceclust_found(catalog)
            print(f"round {n + 1} {name}: {seconds:.1f} s, peak RSS {peak:.0f} MB, "
                  f"face found in {len(found[name])}/{len(photos)} photos", flush=True)
    cold = None
    if args.cold:
        with tempfile.TemporaryDirectory() as cache:
            env = dict(os.environ, FACECLUST_CACHE=cache)
            catalog = work / "cold.sqlite"
            if catalog.exists():
                catalog.unlink()
            cold = timed([faceclust, "scan", str(photos_dir), "--catalog", str(catalog), "--quiet"], env)[0]

    reference = statistics.median(times["face_recognition"])
    command = "benchmarks/bench_phone.py " + shlex.join(sys.argv[1:])
    print(f"\nCommand: `.venv/bin/python {command.strip()}`; {len(photos)} photos of {width}x{height} "
          f"(JPEG q{args.quality}) from {args.set}, {args.rounds} rounds\n")
    print("| command | median s | photos/s | vs face_recognition | peak RSS MB | face found in photos |")
    print("|---|---|---|---|---|---|")
    for name in commands:
        median = statistics.median(times[name])
        rate = len(photos) / median
        print(f"| {name} | {median:.1f} | {rate:.2f} | {reference / median:.2f}x | {max(peaks[name]):.0f} "
              f"| {len(found[name])}/{len(photos)} ({len(found[name]) / len(photos):.3f}) |")
    missed = found["face_recognition"] - found["faceclust scan"]
    print(f"\nphotos where face_recognition found a face and faceclust scan none: {len(missed)}"
          + (f" ({', '.join(sorted(missed))})" if missed else ""))
    if cold is not None:
        print(f"faceclust scan with an empty model cache: {cold:.1f} s")


if __name__ == "__main__":
    main()
