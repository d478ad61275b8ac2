"""SFace rebuilt in torch against onnxruntime on the same chips, in one run; beside the dlib
embedder, and the cost of each alignment.

    .venv/bin/python benchmarks/bench_sface.py --faces 128 --rounds 3

Chips: the faces the default detector finds in lfw_dev photos, aligned for each embedder
(ArcFace 112x112 from dlib's 68 points for SFace; dlib's 150x150 chips from its 5 points for the
ResNet). onnxruntime runs the same ONNX file (its unused graph inputs dropped, the batch made
dynamic) with 2 threads, at its best batch size of those tried; torch likewise.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number, wire, value) -> bytes:
    key = _varint(number << 3 | wire)
    return key + (_varint(len(value)) + value if wire == 2 else _varint(value) if wire == 0 else value)


def for_onnxruntime(data: bytes) -> bytes:
    """The model with only the ``data`` input, whose batch dimension is made dynamic."""
    from faceclust.models.onnx_format import _fields

    def rewrite(message: bytes, path: tuple[int, ...]) -> bytes:
        out = b""
        first_dim = True
        for number, wire, value in _fields(message):
            if path == (7,) and number == 11 and next(v for k, _, v in _fields(value) if k == 1) != b"data":
                continue
            if wire == 2 and (path + (number,)) in _NESTED:
                value = rewrite(value, path + (number,))
            if path == (7, 11, 2, 1, 2) and number == 1 and first_dim:  # the first dim: "n", not 1
                first_dim = False
                value = _field(2, 2, b"n")
            out += _field(number, wire, value)
        return out

    return rewrite(data, ())


# model.graph(7).input(11).type(2).tensor_type(1).shape(2).dim(1)
_NESTED = {(7,), (7, 11), (7, 11, 2), (7, 11, 2, 1), (7, 11, 2, 1, 2)}


def real_faces(limit: int):
    from faceclust import detectors
    from faceclust.faces.detect import DetectOptions
    from faceclust.photos.decode import load_image

    options = DetectOptions()
    detector = detectors.create("mmod", options=options)
    out = []
    for path in sorted((ROOT.parent / "shared" / "data" / "lfw_dev").rglob("*.jpg"))[::7]:
        image = load_image(path)
        found = detector.detect(image.pixels, scale=options.detection_scale(*image.pixels.shape[1::-1], detector.window))
        if len(found):
            out.append((image.pixels, found.boxes[:1]))
        if len(out) == limit:
            return out
    return out


def timed(fn, rounds: int) -> float:
    fn()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch's and onnxruntime's threads (a scan's "
                        "workers run torch on 1 each)")
    args = parser.parse_args()
    import onnxruntime as ort
    import torch

    from faceclust import embedders
    from faceclust.faces.align import Aligner
    from faceclust.faces.arcface import ArcFaceAligner
    from faceclust.models.files import sface_path

    torch.set_num_threads(args.threads)
    faces = real_faces(args.faces)
    n = len(faces)
    arc, dlib5 = ArcFaceAligner(), Aligner()
    t_arc = timed(lambda: [arc.chips(img, arc.landmarks(img, box)) for img, box in faces], args.rounds)
    t_dlib = timed(lambda: [dlib5.chips(img, dlib5.landmarks(img, box)) for img, box in faces], args.rounds)
    sface_chips = np.concatenate([arc.chips(img, arc.landmarks(img, box)) for img, box in faces])
    dlib_chips = np.concatenate([dlib5.chips(img, dlib5.landmarks(img, box)) for img, box in faces])

    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.log_severity_level = 3
    session = ort.InferenceSession(for_onnxruntime(sface_path().read_bytes()), options, providers=["CPUExecutionProvider"])
    nchw = sface_chips.transpose(0, 3, 1, 2).astype(np.float32)
    rows = []
    for batch in (1, 4, 8, 16, 32):
        t_ort = timed(lambda: [session.run(None, {"data": nchw[i:i + batch]}) for i in range(0, n, batch)], args.rounds)
        embedder = embedders.create("sface", batch_size=batch)
        t_torch = timed(lambda: embedder.embed(sface_chips), args.rounds)
        embedder.expect(embedder.FREEZE_AFTER + 1)  # what a long scan does: TorchScript's inference form
        t_frozen = timed(lambda: embedder.embed(sface_chips), args.rounds)
        rows.append((batch, n / t_ort, n / t_torch, n / t_frozen))
    resnet = embedders.create("dlib-resnet")
    t_resnet = timed(lambda: resnet.embed(dlib_chips), args.rounds)
    reference = session.run(None, {"data": nchw})[0]
    diff = float(np.abs(embedders.create("sface").embed(sface_chips) - reference).max())
    best_ort, best_torch = max(r[1] for r in rows), max(r[2] for r in rows)
    print(f"{n} lfw_dev faces, {args.threads} threads, median of {args.rounds} rounds; "
          f"max |torch - onnxruntime| = {diff:.2e}\n")
    print("| batch | onnxruntime faces/s | torch faces/s | ratio | torch, inference form (scans) | vs plain |")
    print("|---|---|---|---|---|---|")
    for batch, o, t, f in rows:
        print(f"| {batch} | {o:.0f} | {t:.0f} | {t / o:.2f} | {f:.0f} | {f / t:.2f} |")
    print(f"\nbest against best: torch {best_torch:.0f} / onnxruntime {best_ort:.0f} = {best_torch / best_ort:.2f}x")
    print(f"dlib ResNet (torch, 150 px chips): {n / t_resnet:.0f} faces/s")
    print(f"alignment: ArcFace (68 points + warp) {1e3 * t_arc / n:.2f} ms/face, "
          f"dlib chips (5 points) {1e3 * t_dlib / n:.2f} ms/face")


if __name__ == "__main__":
    main()
