"""Camera RAW files through rawpy (LibRaw). No RAW file ships with the development sets, so the
tests make DNG files from real photos (a Bayer mosaic of the photo's linear light, written by
tifffile with the DNG tags LibRaw needs) and check that faces are found in them as in the JPEG
of the same shot, in the RAW's shown orientation; a RAW and its JPEG are one photo for albums
and albums (and dedupe does not call them duplicates)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

rawpy = pytest.importorskip("rawpy", reason="rawpy is not installed")
tifffile = pytest.importorskip("tifffile", reason="tifffile (test extra) is not installed")

# XYZ (D65) -> linear sRGB: the "camera" of these DNGs sees linear sRGB.
XYZ_TO_SRGB = [[3.2406, -1.5372, -0.4986], [-0.9689, 1.8758, 0.0415], [0.0557, -0.2040, 1.0570]]


def write_dng(rgb: np.ndarray, path: Path, orientation: int = 1, preview: np.ndarray | None = None) -> Path:
    """A DNG holding ``rgb`` (uint8, as stored) as an RGGB mosaic of 12-bit linear values;
    ``preview``: an 8-bit RGB preview image in the first IFD (the raw data then in a SubIFD)."""
    linear = (np.asarray(rgb, np.float64) / 255.0) ** 2.2
    h, w = linear.shape[0] // 2 * 2, linear.shape[1] // 2 * 2
    linear = linear[:h, :w]
    mosaic = np.empty((h, w), np.uint16)
    mosaic[0::2, 0::2] = linear[0::2, 0::2, 0] * 4095
    mosaic[0::2, 1::2] = linear[0::2, 1::2, 1] * 4095
    mosaic[1::2, 0::2] = linear[1::2, 0::2, 1] * 4095
    mosaic[1::2, 1::2] = linear[1::2, 1::2, 2] * 4095
    matrix = []
    for row in XYZ_TO_SRGB:
        for value in row:
            matrix += [round(value * 10000), 10000]
    dng = [(50706, "B", 4, (1, 4, 0, 0), True), (50707, "B", 4, (1, 1, 0, 0), True),
           (50708, "s", 0, "faceclust test camera", True), (274, "H", 1, (orientation,), True),
           (50721, "2i", 9, tuple(matrix), True), (50778, "H", 1, (21,), True),
           (50728, "2I", 3, (1, 1, 1, 1, 1, 1), True)]
    cfa = [(33421, "H", 2, (2, 2), True), (33422, "B", 4, (0, 1, 1, 2), True),
           (50717, "I", 1, (4095,), True), (50714, "H", 1, (0,), True)]
    path.parent.mkdir(parents=True, exist_ok=True)
    with tifffile.TiffWriter(path) as tif:
        if preview is None:
            tif.write(mosaic, photometric=32803, subfiletype=0, extratags=dng + cfa, metadata=None)
        else:
            tif.write(preview, photometric="rgb", subfiletype=1, subifds=1, extratags=dng, metadata=None)
            tif.write(mosaic, photometric=32803, subfiletype=0, extratags=cfa, metadata=None)
    return path


def faces_by_photo(catalog: Path) -> dict[str, list[tuple]]:
    from faceclust.catalog import Catalog

    out: dict[str, list[tuple]] = {}
    with Catalog(catalog) as cat:
        for path, w, h, *box in cat.db.execute(
                "SELECT p.path, p.width, p.height, f.left, f.top, f.right, f.bottom FROM photos p "
                "LEFT JOIN faces f ON f.photo_id = p.id WHERE p.status = 'ok' ORDER BY p.path, f.left"):
            out.setdefault(Path(path).name, [])
            if box[0] is not None:
                out[Path(path).name].append(((w, h), tuple(box)))
    return out


def _bright_box(pixels: np.ndarray) -> tuple:
    ys, xs = np.nonzero(pixels.mean(axis=2) > 128)
    return ys.min(), ys.max() + 1, xs.min(), xs.max() + 1


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("with_preview", [False, True])
def test_a_dng_decodes_in_its_shown_orientation_as_pillow_orients_a_jpeg(tmp_path, orientation, with_preview):
    """Developed or from its preview, a RAW is shown as Pillow shows a JPEG with that EXIF
    orientation (mirrored ones included), at its full size."""
    from PIL import Image, ImageOps

    from faceclust.photos.decode import load_image, stored_geometry

    rgb = np.zeros((40, 60, 3), np.uint8)
    rgb[4:12, 40:56] = 255  # a bright patch near the top right of the stored image
    preview = rgb if with_preview else None
    path = write_dng(rgb, tmp_path / f"o{orientation}.dng", orientation, preview=preview)
    if with_preview:
        with rawpy.imread(str(path)) as raw:
            if raw.extract_thumb().format != rawpy.ThumbFormat.BITMAP:
                pytest.skip("this LibRaw does not offer the DNG's RGB preview")
    stored = Image.fromarray(rgb)
    exif = stored.getexif()
    exif[0x0112] = orientation
    stored.info["exif"] = exif.tobytes()
    expected = np.asarray(ImageOps.exif_transpose(stored))
    image = load_image(path)
    assert image.pixels.shape == expected.shape and image.scale == 1.0
    assert (image.original_width, image.original_height) == (expected.shape[1], expected.shape[0])
    assert _bright_box(image.pixels) == pytest.approx(_bright_box(expected), abs=2)
    assert stored_geometry(path) == (60, 40, orientation)
    half = load_image(path, lambda w, h: 0.5)  # developed at half size (or the preview, reduced)
    assert half.pixels.shape[:2] == (expected.shape[0] // 2, expected.shape[1] // 2) and half.scale == 0.5


def test_a_big_enough_preview_is_used_instead_of_developing(tmp_path, monkeypatch):
    from faceclust.photos.decode import load_image

    rgb = np.full((40, 60, 3), 90, np.uint8)
    preview = np.zeros((20, 30, 3), np.uint8)  # half the RAW's size
    preview[..., 1] = 200  # green: not what the mosaic holds
    path = write_dng(rgb, tmp_path / "p.dng", preview=preview)
    with rawpy.imread(str(path)) as raw:
        if raw.extract_thumb().format != rawpy.ThumbFormat.BITMAP:
            pytest.skip("this LibRaw does not offer the DNG's RGB preview")
    image = load_image(path, lambda w, h: 0.5)
    assert image.pixels.shape == (20, 30, 3) and image.pixels[..., 1].mean() > 150
    developed = load_image(path, lambda w, h: 1.0)  # the preview is too small for full size
    red, green = developed.pixels[..., 0].mean(), developed.pixels[..., 1].mean()
    assert developed.pixels.shape == (40, 60, 3) and abs(red - green) < 20  # grey: the mosaic, not the preview


def test_a_damaged_raw_file_is_one_file_error(tmp_path):
    from faceclust.errors import ImageError
    from faceclust.photos.decode import load_image

    path = write_dng(np.full((40, 60, 3), 90, np.uint8), tmp_path / "cut.dng")
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ImageError, match="RAW file"):
        load_image(path)


@pytest.mark.models
@pytest.mark.shared
def test_faces_are_found_in_a_dng_as_in_the_jpeg_of_the_same_shot(shared_data, tmp_path):
    """Real photos: the JPEG, a DNG of the same shot beside it (one photo for albums and
    dedupe), and a DNG of another photo stored turned (orientation 6). The DNGs give the faces
    the JPEGs give, at the same places (overlap above 0.6) in the shown orientation."""
    from PIL import Image

    sources = sorted((shared_data / "lfw_dev").rglob("*.jpg"))
    first, second = sources[0], sources[40]
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(first, photos / "shot.jpg")
    with Image.open(first) as im:
        write_dng(np.asarray(im.convert("RGB")), photos / "shot.dng")
    reference = tmp_path / "reference"
    reference.mkdir()
    shutil.copy(second, reference / "turned.jpg")
    with Image.open(second) as im:
        stored = np.asarray(im.convert("RGB").transpose(Image.Transpose.ROTATE_90))  # shown after a CW turn
    write_dng(stored, photos / "turned.dng", orientation=6)
    catalog = tmp_path / "c.sqlite"
    result = run_cli("scan", photos, reference, "--catalog", catalog, "--json")
    assert result.exit_code == 0, result.output
    found = faces_by_photo(catalog)
    for jpeg, dng in (("shot.jpg", "shot.dng"), ("turned.jpg", "turned.dng")):
        assert found[jpeg], f"no face in {jpeg}"
        assert len(found[dng]) == len(found[jpeg])
        (jsize, _), (dsize, _) = found[jpeg][0], found[dng][0]
        assert dsize == (jsize[0] // 2 * 2, jsize[1] // 2 * 2) or dsize == jsize
        for (_, a), (_, b) in zip(found[jpeg], found[dng]):
            # The developed RAW is not the JPEG's pixels (another tone curve): the detector may
            # pick the next window size, so the same face is checked by overlap.
            iw, ih = min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])
            inter = max(0, iw) * max(0, ih)
            union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
            assert inter / union > 0.6, (jpeg, a, b)

    assert run_cli("cluster", "--catalog", catalog, "--min-faces", "1").exit_code == 0
    albums = tmp_path / "albums"
    assert run_cli("albums", albums, "--catalog", catalog).exit_code == 0
    linked = sorted(p.name for p in albums.rglob("*") if p.is_symlink())
    assert "shot.jpg" in linked and "shot.dng" not in linked  # the pair is one photo: the JPEG
    assert "turned.dng" in linked  # a RAW without a JPEG beside it is linked itself


def test_a_raw_and_the_one_photo_of_its_name_are_one_shot():
    from faceclust.photos.formats import raw_partners

    paths = ["/p/IMG_1.CR2", "/p/img_1.jpg", "/p/IMG_2.NEF", "/p/IMG_3.dng", "/p/IMG_3.jpg", "/p/IMG_3.heic",
             "/q/IMG_1.CR2", "/p/a.jpg", "/p/a.png"]
    assert raw_partners(paths) == {"/p/IMG_1.CR2": "/p/img_1.jpg"}  # IMG_3: two candidates, none
