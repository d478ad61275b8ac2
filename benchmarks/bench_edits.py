"""How far common edits move a face's descriptor: the evidence behind CARRY_OVER_DISTANCE.

An edited photo has new bytes, so its faces are detected again; each new face inherits the
person and decisions of the old face it is closest to, within ``catalog.CARRY_OVER_DISTANCE``.
This measures, on 40 random celeba_train photos, the chord distance (unit descriptors) from
each face to its nearest face in the edited photo.

    python benchmarks/bench_edits.py
"""

import io
import random
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from faceclust.faces.finder import FaceFinder  # noqa: E402
from faceclust.photos.decode import decode_image  # noqa: E402

finder = FaceFinder.create()
photos = sorted((ROOT.parent / "shared" / "data" / "celeba_train").rglob("*.jpg"))
random.seed(0); photos = random.sample(photos, 40)
def faces(im):
    buf = io.BytesIO(); im.save(buf, "JPEG", quality=92); data = buf.getvalue()
    img = decode_image(data, Path("x.jpg"), finder.scale_policy())
    f = finder.find([img])[0]
    v = f.embeddings; return v / np.linalg.norm(v, axis=1, keepdims=True)
def recompress(im, quality):
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


edits = {
 "jpeg q60": lambda im: recompress(im, 60),
 "crop 5%": lambda im: im.crop((im.width // 20, im.height // 20, im.width - im.width // 20, im.height - im.height // 20)),
 "brightness x1.25": lambda im: ImageEnhance.Brightness(im).enhance(1.25),
 "resize 75%": lambda im: im.resize((im.width * 3 // 4, im.height * 3 // 4)),
 "rotate 3 deg": lambda im: im.rotate(3, resample=Image.BICUBIC),
}
for name, edit in edits.items():
    ds = []
    for p in photos:
        im = Image.open(p).convert("RGB")
        a, b = faces(im), faces(edit(im))
        if len(a) and len(b):
            d = np.linalg.norm(a[:, None] - b[None], axis=2)
            ds.extend(d.min(axis=1))
    ds = np.array(ds)
    print(f"{name:18s} faces {len(ds)}  median {np.median(ds):.3f}  p95 {np.percentile(ds, 95):.3f}  max {ds.max():.3f}  >0.3: {(ds > 0.3).sum()}")
