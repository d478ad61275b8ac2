"""faceclust train: the loop on tiny synthetic data, checkpoints, and using a fine-tuned model.

The real-model tests fine-tune dlib's ResNet for a few steps on a handful of LFW faces (linked,
never copied, from ../shared/data) and skip when that folder is absent.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from faceclust.errors import ModelFormatError
from faceclust.models.checkpoint import load_checkpoint, save_checkpoint, weights_sha256
from faceclust.train.data import LabelledFaces, TrainingDataError
from faceclust.train.loss import TripletLoss
from faceclust.train.miner import TripletMiner
from faceclust.train.trainer import Trainer, TrainOptions
from faceclust.train.validate import better, validate

# -- synthetic faces and a tiny net -------------------------------------------------------------

def synthetic_faces(people: int, per_person: int, seed: int, size: int = 24) -> tuple[np.ndarray, LabelledFaces]:
    """Each person is a 4x4 grid of colours; each face of them adds a shift and pixel noise."""
    rng = np.random.default_rng(seed)
    chips, labels = [], []
    for person in range(people):
        grid = rng.integers(0, 256, size=(4, 4, 3))
        image = np.kron(grid, np.ones((size // 4, size // 4, 1)))
        for _ in range(per_person):
            face = np.roll(image, rng.integers(-2, 3, size=2), axis=(0, 1)) + rng.normal(0, 40, image.shape)
            chips.append(np.clip(face, 0, 255).astype(np.uint8))
            labels.append(person)
    n = len(labels)
    faces = LabelledFaces(np.arange(n), np.array([f"p{i}" for i in range(n)], object), np.array(["h"] * n, object),
                          np.zeros((n, 5, 2), np.float32), np.array(labels, np.int64),
                          [f"person{i}" for i in range(people)], np.full(n, -1, np.int64))
    return np.stack(chips), faces


class TinyNet(torch.nn.Module):
    mean_rgb = (128.0, 128.0, 128.0)

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                                        torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten(), torch.nn.Linear(128, 16))

    def forward(self, x):
        return self.body(x)


def all_triplet_loss(trainer: Trainer, chips: np.ndarray, labels: np.ndarray) -> float:
    emb = torch.nn.functional.normalize(torch.from_numpy(trainer.embed(chips)), dim=1)
    y = torch.from_numpy(labels)
    result = TripletLoss(0.2)(emb, y, TripletMiner(0.2, "all")(emb, y))
    return float(result.loss) * result.active


def test_trainer_lowers_the_loss_and_validates_every_epoch():
    chips, faces = synthetic_faces(people=12, per_person=8, seed=0)
    val_chips, val = synthetic_faces(people=10, per_person=8, seed=1)
    events = []
    trainer = Trainer(TinyNet(), TrainOptions(epochs=4, p=6, k=4, extras=0, lr=3e-3, augment=False, patience=4),
                      progress=events.append)
    before = all_triplet_loss(trainer, chips, faces.labels)
    result = trainer.fit(chips, faces, val_chips, val)
    after = all_triplet_loss(trainer, chips, faces.labels)
    assert after < 0.5 * before
    assert [h["epoch"] for h in result.history] == [0, 1, 2, 3, 4]
    for row in result.history:
        assert 0 <= row["val_at_far_0.001"] <= row["val_at_far_0.01"] <= 1 and 0.5 <= row["accuracy"] <= 1
    best = result.history[result.best_epoch]
    assert result.best_epoch > 0 and best["val_at_far_0.001"] > result.history[0]["val_at_far_0.001"]
    assert all(not better(row, best) for row in result.history)
    # The net is left with the best epoch's weights, not the last epoch's.
    again = validate(trainer.embed(val_chips), val.labels, base=result.history[0])
    assert again["val_at_far_0.001"] == best["val_at_far_0.001"] and again["accuracy"] == best["accuracy"]
    steps = [e for e in events if e.stage == "step"]
    assert steps and all(e.faces_per_second > 0 and 0 <= e.active <= 1 for e in steps)
    assert sum(e.stage == "validated" for e in events) == 5


def test_trainer_keeps_the_best_epoch_and_stops_early():
    chips, faces = synthetic_faces(people=8, per_person=6, seed=2)
    val_chips, val = synthetic_faces(people=10, per_person=8, seed=3)
    # A learning rate this high wrecks the net: no epoch beats the start, so after `patience`
    # epochs training stops and the starting weights are what is kept.
    trainer = Trainer(TinyNet(), TrainOptions(epochs=6, p=4, k=3, extras=0, lr=0.9, augment=False, patience=2))
    start = {k: v.clone() for k, v in trainer.net.state_dict().items()}
    result = trainer.fit(chips, faces, val_chips, val)
    assert result.best_epoch == 0 and result.stopped_early and len(result.history) == 3
    assert all(torch.equal(start[k], v) for k, v in trainer.net.state_dict().items())
    assert all(torch.equal(start[k], v) for k, v in result.state_dict.items())


def test_freezing_leaves_the_early_blocks_of_dlibs_resnet_unchanged():
    from faceclust.models.resnet import load_resnet

    net = load_resnet()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    chips, faces = synthetic_faces(people=4, per_person=3, seed=4, size=152)
    chips = np.ascontiguousarray(chips[:, 1:151, 1:151])
    trainer = Trainer(net, TrainOptions(epochs=1, steps_per_epoch=2, p=3, k=3, freeze=12, lr=1e-3, augment=True))
    trainer.fit(chips, faces)
    after = net.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith(("blocks.12.", "blocks.13.", "fc.")) for k in changed)


# -- checkpoints --------------------------------------------------------------------------------

def small_state() -> dict:
    torch.manual_seed(1)
    return {"a.weight": torch.randn(4, 3), "a.bias": torch.randn(4)}


def test_checkpoint_round_trip(tmp_path):
    state = small_state()
    path = save_checkpoint(tmp_path / "m.pt", state, {"threshold": 0.41, "history": [{"epoch": 0}]})
    loaded = load_checkpoint(path)
    assert loaded.meta == {"threshold": 0.41, "history": [{"epoch": 0}]}
    assert set(loaded.state_dict) == set(state)
    assert all(torch.equal(loaded.state_dict[k], state[k]) for k in state)
    assert not [p for p in tmp_path.iterdir() if p.name != "m.pt"]  # no temporary file left


def test_tampered_weights_are_refused(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", small_state(), {})
    payload = torch.load(path, weights_only=True)
    payload["state_dict"]["a.bias"][0] += 1.0
    torch.save(payload, path)
    with pytest.raises(ModelFormatError, match="do not match their recorded SHA-256"):
        load_checkpoint(path)
    # The metadata sets the output length and the thresholds: editing it is refused too.
    path = save_checkpoint(tmp_path / "m.pt", small_state(), {"distance_scale": 1.1})
    payload = torch.load(path, weights_only=True)
    payload["meta"] = json.dumps({"distance_scale": 5.0})
    torch.save(payload, path)
    with pytest.raises(ModelFormatError, match="do not match their recorded SHA-256"):
        load_checkpoint(path)


class Payload:
    def __reduce__(self):
        return (os.system, ("echo owned > owned.txt",))


def test_files_that_are_not_plain_weights_are_refused(tmp_path):
    pickled = tmp_path / "code.pt"
    torch.save({"format": "faceclust-embedder", "version": 1, "state_dict": {"x": Payload()}}, pickled)
    with pytest.raises(ModelFormatError, match="refused"):
        load_checkpoint(pickled)
    assert not (tmp_path / "owned.txt").exists() and not Path("owned.txt").exists()
    (tmp_path / "plain.pkl").write_bytes(pickle.dumps({"format": "faceclust-embedder"}))
    (tmp_path / "random.pt").write_bytes(os.urandom(5000))
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    for name, message in (("plain.pkl", "not a faceclust model checkpoint"), ("random.pt", "not a faceclust"),
                          ("other.pt", "torch file but not a faceclust"), ("missing.pt", "no such model file")):
        with pytest.raises(ModelFormatError, match=message):
            load_checkpoint(tmp_path / name)


def test_a_checkpoint_of_another_shape_does_not_load_into_the_resnet(tmp_path):
    from faceclust.models.resnet import load_resnet

    path = save_checkpoint(tmp_path / "m.pt", small_state(), {})
    with pytest.raises(ModelFormatError, match="does not fit dlib's face-recognition ResNet"):
        load_resnet(checkpoint=path)


def test_digest_covers_names_and_values():
    state = small_state()
    renamed = {"b.weight" if k == "a.weight" else k: v for k, v in state.items()}
    assert weights_sha256(state) != weights_sha256(renamed)
    assert weights_sha256(state) == weights_sha256({k: v.clone() for k, v in state.items()})


# -- real photos: train from folders, then scan with the model ----------------------------------

@pytest.fixture(scope="module")
def lfw_people(tmp_path_factory):
    """Six LFW people with 4 photos each, linked (not copied) into a folder per person."""
    from conftest import SHARED_DATA

    source = SHARED_DATA / "lfw_dev"
    if not source.is_dir():
        pytest.skip(f"real photo sets not found at {SHARED_DATA} (set FACECLUST_SHARED_DATA)")
    root = tmp_path_factory.mktemp("lfw_people")
    people = sorted(d for d in source.iterdir() if d.is_dir() and len(list(d.glob("*.jpg"))) >= 4)[:6]
    for person in people:
        (root / person.name).mkdir()
        for photo in sorted(person.glob("*.jpg"))[:4]:
            (root / person.name / photo.name).symlink_to(photo)
    return root


def test_train_cli_then_scan_with_the_model_reembeds_without_detecting(lfw_people, tmp_path, monkeypatch):
    from faceclust.catalog import Catalog
    from faceclust.cli import main
    from faceclust.faces.embed import ModelChoice, catalog_model
    from faceclust.faces.finder import FaceFinder
    from faceclust.models.resnet import load_resnet
    from faceclust.photos.decode import load_image

    runner = CliRunner()
    catalog = tmp_path / "c.sqlite"
    assert runner.invoke(main, ["scan", str(lfw_people), "--catalog", str(catalog), "--quiet"]).exit_code == 0
    with Catalog(catalog) as cat:
        default_id = catalog_model(cat).model_id
        dlib_id = ModelChoice.resolve("dlib-resnet").model_id  # train fine-tunes the fused default's dlib part
        faces_before = cat.db.execute("SELECT id, left, top, right, bottom FROM faces ORDER BY id").fetchall()
        photos_with_faces = cat.counts()["photos_with_faces"]

    model = tmp_path / "m.pt"
    result = runner.invoke(main, ["train", str(lfw_people), "--out", str(model), "--epochs", "2", "--steps", "2",
                                  "--p", "3", "--k", "2", "--val-identities", "2", "--freeze", "12",
                                  "--cache-dir", str(tmp_path / "cache"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["data"]["train"]["people"] == 4 and summary["data"]["held_out"]["people"] == 2
    assert [h["epoch"] for h in summary["history"]] == [0, 1, 2]
    checkpoint = load_checkpoint(model)
    assert default_id.startswith("fused(") and dlib_id in default_id
    assert checkpoint.meta["base_model"] == dlib_id and checkpoint.meta["output_norm"] > 1
    assert checkpoint.meta["distance_scale"] == pytest.approx(
        checkpoint.meta["after"]["threshold_at_far_0.01"] / checkpoint.meta["before"]["threshold_at_far_0.01"])

    # A second run finds everything cached: no photo is decoded or detected again.
    import faceclust.photos.decode
    import faceclust.scan.reembed
    import faceclust.scan.scanner

    decoded = []
    original = faceclust.photos.decode.decode_image

    def counting(*args, **kwargs):
        decoded.append(args[1])
        return original(*args, **kwargs)

    monkeypatch.setattr(faceclust.photos.decode, "decode_image", counting)
    monkeypatch.setattr(faceclust.scan.scanner, "decode_image", counting)
    monkeypatch.setattr(faceclust.scan.reembed, "decode_image", counting)
    again = runner.invoke(main, ["train", str(lfw_people), "--out", str(tmp_path / "m2.pt"), "--epochs", "1",
                                 "--steps", "1", "--p", "3", "--k", "2", "--val-identities", "2", "--freeze", "13",
                                 "--cache-dir", str(tmp_path / "cache"), "--json"])
    assert again.exit_code == 0, again.output
    assert decoded == [] and json.loads(again.output.strip().splitlines()[-1])["data"] == summary["data"]
    monkeypatch.undo()

    result = runner.invoke(main, ["scan", str(lfw_people), "--catalog", str(catalog), "--model", str(model), "--json"])
    assert result.exit_code == 0, result.output
    scan = json.loads(result.output)
    assert scan["new"] == 0 and scan["faces_found"] == 0 and scan["reembedded"] == photos_with_faces > 0
    with Catalog(catalog) as cat:
        assert cat.db.execute("SELECT id, left, top, right, bottom FROM faces ORDER BY id").fetchall() == faces_before
        choice = catalog_model(cat)
        assert choice.checkpoint == str(model.resolve()) and choice.model_id != default_id
        assert choice.embedder == "fused" and "dlib-resnet+ft:" in choice.model_id and "sface:" in choice.model_id
        assert choice.distance_scale == pytest.approx(checkpoint.meta["distance_scale"])
        records = cat.face_records(choice.model_id)
    # The stored descriptors' dlib part is the fine-tuned net's on the chips cut from the stored
    # landmarks (unit length in the fusion); the fine-tuned net's own output has the base model's norm.
    finder = FaceFinder.create(embedder="dlib-resnet")
    net = load_resnet(checkpoint=model)
    first = records["path"][0]
    rows = np.flatnonzero(records["path"] == first)
    chips = finder.chips(load_image(Path(first), finder.scale_policy()), records["landmarks"][rows])
    tuned = net.embed(chips)
    part = records["vector"][rows][:, :128]
    assert np.allclose(tuned / np.linalg.norm(tuned, axis=1, keepdims=True),
                       part / np.linalg.norm(part, axis=1, keepdims=True), atol=1e-4)
    assert np.allclose(np.linalg.norm(tuned, axis=1), checkpoint.meta["output_norm"], rtol=1e-4)
    assert np.allclose(np.linalg.norm(records["vector"], axis=1), 1.0, atol=1e-5)

    # Retrained in place (same path, new weights): a plain scan notices and re-embeds.
    changed = {k: v + 0.01 if k.startswith("fc.") else v for k, v in checkpoint.state_dict.items()}
    save_checkpoint(model, changed, checkpoint.meta)
    plain = runner.invoke(main, ["scan", str(lfw_people), "--catalog", str(catalog), "--json"])
    assert json.loads(plain.output)["reembedded"] == photos_with_faces
    with Catalog(catalog) as cat:
        retrained = catalog_model(cat)
        assert retrained.checkpoint == choice.checkpoint and retrained.model_id not in (choice.model_id, default_id)
        assert len(cat.face_records(retrained.model_id)["face_id"]) == len(faces_before)

    status = json.loads(runner.invoke(main, ["status", "--catalog", str(catalog), "--json"]).output)
    assert status["model"]["model_id"] == retrained.model_id and status["model"]["checkpoint"] == str(model.resolve())

    # verify with the model: its descriptors, its threshold scale, and no probability from a
    # calibration fitted for another model.
    first, second = sorted(lfw_people.glob("*/*.jpg"))[:2]
    verified = json.loads(runner.invoke(main, ["verify", str(first), str(second), "--model", str(model),
                                               "--json"]).output)
    assert verified["model_id"] == retrained.model_id
    # The fused same-person distance (0.65), scaled by the tuned dlib part's share (0.8 of a
    # fused squared distance) of its distance scale.
    scale = retrained.distance_scale
    assert verified["threshold"] == pytest.approx(0.65 * (0.8 * scale * scale + 0.2) ** 0.5)
    assert verified["pairs"][0]["probability"] is None and "fitted for" in verified["note"]

    # Later commands use the catalog's model; going back to the default re-embeds nothing.
    assert runner.invoke(main, ["cluster", "--catalog", str(catalog)]).exit_code == 0
    back = runner.invoke(main, ["scan", str(lfw_people), "--catalog", str(catalog), "--model", "default", "--json"])
    assert json.loads(back.output)["reembedded"] == 0
    with Catalog(catalog) as cat:
        assert catalog_model(cat).model_id == default_id


def test_scan_with_a_missing_or_bad_model_fails_clearly(lfw_people, tmp_path):
    from faceclust.cli import main

    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    for model in (bad, tmp_path / "missing.pt"):
        result = CliRunner().invoke(main, ["scan", str(lfw_people), "--catalog", str(tmp_path / "c.sqlite"),
                                           "--model", str(model)])
        assert result.exit_code == 1 and "faceclust train --out" in result.output


# -- which faces are trained on -----------------------------------------------------------------

FAKE = None


def fake_scan(root: Path, catalog: Path) -> None:
    from faceclust.faces.detect import DetectOptions
    from faceclust.scan.options import ScanOptions
    from faceclust.scan.scanner import scan_library

    scan_library(catalog, [root], ScanOptions(detect=DetectOptions(detector="fake", min_face=20), embedder="fake"))


def test_folder_faces_pick_the_face_consistent_with_the_persons_other_photos(tmp_path):
    from conftest import draw_photo

    from faceclust.catalog import Catalog
    from faceclust.train.data import faces_from_folders

    root = tmp_path / "people"
    for i in range(3):  # red's photos: red alone; blue's: blue alone
        draw_photo(root / "red" / f"r{i}.png", [(0, 20 + 10 * i, 30, 60)])
        draw_photo(root / "blue" / f"b{i}.png", [(2, 40, 40 + 10 * i, 60)])
    # A red photo with a bigger blue bystander, and a blue photo with a bigger red bystander.
    draw_photo(root / "red" / "group.png", [(0, 10, 10, 50), (2, 150, 50, 90)])
    draw_photo(root / "blue" / "group.png", [(2, 10, 10, 50), (0, 150, 50, 90)])
    draw_photo(root / "loose.png", [(1, 10, 10, 50)])  # not in a person's folder: ignored
    catalog = tmp_path / "c.sqlite"
    fake_scan(root, catalog)
    with Catalog(catalog) as cat:
        faces = faces_from_folders(cat, root, "fake-embedder:1")
        boxes = dict(zip(cat.face_records("fake-embedder:1")["face_id"], cat.face_records("fake-embedder:1")["box"]))
    assert faces.names == ["blue", "red"] and len(faces) == 8
    assert faces.info["photos_with_several_faces"] == 2
    for face_id, path, label in zip(faces.face_ids, faces.paths, faces.labels):
        if path.endswith("group.png"):  # the smaller face, of the folder's person, was chosen
            assert boxes[face_id][2] - boxes[face_id][0] == 50 and Path(path).parent.name == faces.names[label]


def test_named_people_and_their_rejected_faces(tmp_path):
    from conftest import draw_photo

    from faceclust.catalog import Catalog
    from faceclust.train.data import faces_from_people
    from faceclust.train.sampler import PKSampler

    root = tmp_path / "photos"
    for i in range(4):
        draw_photo(root / f"a{i}.png", [(0, 20 + 10 * i, 30, 60)])
        draw_photo(root / f"b{i}.png", [(2, 20, 30 + 10 * i, 60)])
        draw_photo(root / f"c{i}.png", [(1, 30, 30 + 5 * i, 60)])
    catalog = tmp_path / "c.sqlite"
    fake_scan(root, catalog)
    with Catalog(catalog) as cat:
        records = cat.face_records("fake-embedder:1")
        by_photo = {Path(p).stem: int(f) for p, f in zip(records["path"], records["face_id"])}
        anna, bob, stranger = cat.create_people(3)
        cat.add_assignments([(by_photo[f"a{i}"], anna, "cluster") for i in range(4)]
                            + [(by_photo[f"b{i}"], bob, "cluster") for i in range(4)]
                            + [(by_photo[f"c{i}"], stranger, "cluster") for i in range(3)])
        cat.set_person(anna, name="Anna")
        cat.set_person(bob, name="Bob")  # the stranger stays unnamed: not trained on
        cat.add_assignments([(by_photo["c3"], anna, "cluster")])
        assert cat.reject_face(by_photo["c3"]) == anna
        faces = faces_from_people(cat, "fake-embedder:1")
        capped = faces_from_people(cat, "fake-embedder:1", max_faces_per_person=2)
    assert faces.names == ["Anna", "Bob"] and len(faces) == 9
    # Capped: 2 faces of each person, drawn from theirs; the known negative stays.
    assert np.bincount(capped.labels[capped.labels < 2]).tolist() == [2, 2] and capped.info["people_capped"] == 2
    assert set(capped.face_ids) <= set(faces.face_ids) and (capped.negative_of >= 0).sum() == 1
    negative = np.flatnonzero(faces.negative_of >= 0)
    assert len(negative) == 1 and faces.face_ids[negative[0]] == by_photo["c3"]
    assert faces.negative_of[negative[0]] == 0 and faces.labels[negative[0]] >= 2
    assert faces.summary()["known_negatives"] == 1
    train, val = faces.split(held_out=0)
    assert len(train) == 9 and len(val) == 0
    with pytest.raises(TrainingDataError, match="cannot hold out 1 of 2 people"):
        faces.split(held_out=1)
    # In training batches, Anna's known negative joins every batch she is in.
    negatives = {0: list(negative)}
    for batch in PKSampler(faces.labels, p=1, k=2, num_batches=20, seed=0, negatives_of=negatives):
        has_anna = any(faces.labels[i] == 0 for i in batch)
        assert has_anna == (negative[0] in batch)
        assert len(batch) == len(set(batch))


def test_train_on_the_people_named_in_a_catalog(lfw_people, tmp_path):
    from faceclust.catalog import Catalog
    from faceclust.cli import main

    runner = CliRunner()
    catalog = tmp_path / "c.sqlite"
    assert runner.invoke(main, ["scan", str(lfw_people), "--catalog", str(catalog), "--quiet"]).exit_code == 0
    assert runner.invoke(main, ["cluster", "--catalog", str(catalog)]).exit_code == 0
    with Catalog(catalog) as cat:
        people = [p for p in cat.people() if p["faces"] >= 2][:3]
        for i, person in enumerate(people):
            cat.set_person(person["id"], name=f"person {i}")
    assert len(people) == 3
    model = tmp_path / "named.pt"
    result = runner.invoke(main, ["train", "--catalog", str(catalog), "--out", str(model), "--epochs", "1",
                                  "--steps", "2", "--p", "2", "--k", "2", "--freeze", "13", "--val-identities", "0",
                                  "--cache-dir", str(tmp_path / "cache"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["data"]["train"]["people"] == 3 and summary["data"]["held_out"] is None
    assert summary["distance_scale"] == 1.0 and "nothing was validated" in summary["notes"][0]
    assert load_checkpoint(model).meta["best_epoch"] == 1
    both = runner.invoke(main, ["train", str(lfw_people), "--catalog", str(catalog), "--out", str(model)])
    assert both.exit_code == 2 and "not both" in both.output


def test_train_progress_prints_plain_lines_when_not_a_terminal():
    import io

    from faceclust.cli.progress import TrainProgress
    from faceclust.train.trainer import TrainEvent

    stream = io.StringIO()
    with TrainProgress(stream=stream) as progress:
        progress(TrainEvent("step", 1, 5, 5, loss=0.0512, active=0.25, faces_per_second=250.0))
        progress(TrainEvent("validated", 1, metrics={"val_at_far_0.001": 0.86, "val_at_far_0.01": 0.94,
                                                     "accuracy": 0.968, "threshold": 0.44,
                                                     "cluster_bcubed_f1": 0.95}))
    lines = stream.getvalue().splitlines()
    assert lines[0] == "epoch 1: step 5/5, loss 0.0512, active 25%, 250 faces/s"
    assert lines[1].startswith("epoch 1 held-out: VAL@FAR=1e-3 0.860, VAL@FAR=1e-2 0.940, accuracy 0.9680")


def test_a_face_rejected_from_one_person_and_given_to_another_trains_once(tmp_path):
    from conftest import draw_photo

    from faceclust.catalog import Catalog
    from faceclust.train.data import faces_from_people

    root = tmp_path / "photos"
    for i in range(3):
        draw_photo(root / f"a{i}.png", [(0, 20 + 10 * i, 30, 60)])
        draw_photo(root / f"b{i}.png", [(2, 20, 30 + 10 * i, 60)])
    catalog = tmp_path / "c.sqlite"
    fake_scan(root, catalog)
    with Catalog(catalog) as cat:
        records = cat.face_records("fake-embedder:1")
        by_photo = {Path(p).stem: int(f) for p, f in zip(records["path"], records["face_id"])}
        anna, bob = cat.create_people(2)
        cat.add_assignments([(by_photo[f"a{i}"], anna, "cluster") for i in range(3)]
                            + [(by_photo[f"b{i}"], bob, "cluster") for i in range(3)])
        cat.set_person(anna, name="Anna")
        cat.set_person(bob, name="Bob")
        cat.reject_face(by_photo["a2"])  # not Anna ...
        cat.move_face(by_photo["a2"], bob)  # ... but Bob
        faces = faces_from_people(cat, "fake-embedder:1")
    assert sorted(faces.face_ids.tolist()) == sorted(by_photo.values())  # every face once
    assert faces.labels[faces.face_ids.tolist().index(by_photo["a2"])] == faces.names.index("Bob")
    assert (faces.negative_of < 0).all()
    train, val = faces.split(held_out=0)
    assert sorted(train.tolist()) == list(range(len(faces))) and len(val) == 0


def test_identity_split_rows_partition_the_faces():
    chips, faces = synthetic_faces(people=10, per_person=3, seed=5)
    train, val = faces.split(held_out=4, seed=1)
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(len(faces)))
    assert len(set(faces.labels[val])) == 4 and not set(faces.labels[val]) & set(faces.labels[train])
    assert train.tolist() != faces.split(held_out=4, seed=2)[0].tolist()
    rows, held = faces.split_photos(0.34, seed=0)
    assert sorted(np.concatenate([rows, held]).tolist()) == list(range(len(faces)))
    assert set(faces.labels[held]) == set(range(10))  # one photo of each person held out


def test_default_batches_are_large_but_fit_the_data():
    from faceclust.train.trainer import batch_shape

    _, many = synthetic_faces(people=60, per_person=5, seed=6)
    assert batch_shape(many, TrainOptions()) == (48, 64)
    _, few = synthetic_faces(people=5, per_person=5, seed=7)  # a family: every person, the rest as extras
    assert batch_shape(few, TrainOptions()) == (5, 5)
    assert batch_shape(few, TrainOptions(p=3, extras=0)) == (3, 0)
    _, lonely = synthetic_faces(people=1, per_person=8, seed=8)
    with pytest.raises(TrainingDataError, match="1 have that many"):
        batch_shape(lonely, TrainOptions())
