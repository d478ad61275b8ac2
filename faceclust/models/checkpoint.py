"""Fine-tuned embedder checkpoints: a plain ``state_dict`` plus JSON metadata.

The file is what ``torch.save`` writes for a dict of tensors, strings and numbers, read back with
``torch.load(weights_only=True)``: a file that holds anything else (a pickled object, code) is
refused by torch before any of it runs. A SHA-256 of the weights and the metadata (which sets
the output length and the distance thresholds) is stored with them, so a checkpoint changed
after training (damaged, or edited by hand) is refused too. It is a checksum, not a signature:
someone who edits the file on purpose can recompute it; trust a model file as you would a
program you run.

Layout (``format`` and ``version`` first, so other tools can recognise it)::

    {"format": "faceclust-embedder", "version": 1, "architecture": "dlib-resnet",
     "state_dict": {name: tensor}, "weights_sha256": "...", "meta": "<JSON>"}

``meta`` holds the base model's identity, a summary of the training data, the validation
metrics, the validated distance threshold, the training options and the date.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from faceclust.errors import ModelFormatError

FORMAT = "faceclust-embedder"
VERSION = 1
ARCHITECTURE = "dlib-resnet"


@dataclass
class Checkpoint:
    state_dict: dict
    meta: dict = field(default_factory=dict)
    architecture: str = ARCHITECTURE


def weights_sha256(state_dict: dict, meta_json: str = "") -> str:
    """A digest of the tensors' names, shapes, dtypes and bytes, in name order, then the metadata."""
    import torch

    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name]
        if not isinstance(tensor, torch.Tensor):
            raise ModelFormatError(f"state_dict entry {name!r} is not a tensor")
        tensor = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}|{tuple(tensor.shape)}|{tensor.dtype}|".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    digest.update(b"|meta|" + meta_json.encode())
    return digest.hexdigest()


def save_checkpoint(path: Path | str, state_dict: dict, meta: dict, architecture: str = ARCHITECTURE) -> Path:
    """Write atomically (a temporary file renamed over ``path``): a kill never leaves half a file."""
    import torch

    path = Path(path)
    weights = {name: t.detach().to("cpu").clone().contiguous() for name, t in state_dict.items()}
    meta_json = json.dumps(meta, sort_keys=True)
    payload = {"format": FORMAT, "version": VERSION, "architecture": architecture, "state_dict": weights,
               "weights_sha256": weights_sha256(weights, meta_json), "meta": meta_json}
    from faceclust.files import atomic_file

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as handle:  # whole or nothing, never through a planted symlink
        torch.save(payload, handle)
    return path


def load_checkpoint(path: Path | str) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`; anything else raises ModelFormatError."""
    import pickle

    import torch

    path = Path(path)
    hint = "pass a model written by 'faceclust train --out MODEL.pt'"
    if not path.is_file():
        raise ModelFormatError(f"{path}: no such model file; {hint}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError, AttributeError,
            TypeError, KeyError, IndexError, UnicodeDecodeError) as exc:
        # torch's own message would advise weights_only=False: exactly what must not be done
        # with a file of unknown origin. Say what it is instead.
        raise ModelFormatError(f"{path} is not a faceclust model checkpoint (not a weights file, or one "
                               f"holding more than weights, which is refused); {hint}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelFormatError(f"{path} is a torch file but not a faceclust model checkpoint; {hint}")
    if payload.get("version") != VERSION:
        raise ModelFormatError(f"{path} is a faceclust checkpoint of version {payload.get('version')!r}; "
                               f"this faceclust reads version {VERSION}; upgrade faceclust")
    state_dict = payload.get("state_dict")
    if not isinstance(state_dict, dict) or not state_dict:
        raise ModelFormatError(f"{path} holds no weights; {hint}")
    meta_json = payload.get("meta") or ""
    if not isinstance(meta_json, str) or weights_sha256(state_dict, meta_json) != payload.get("weights_sha256"):
        raise ModelFormatError(f"{path}: the weights and metadata do not match their recorded SHA-256; the file "
                               f"was modified after training or is damaged; {hint}")
    try:
        meta = json.loads(meta_json or "{}")
    except (TypeError, json.JSONDecodeError) as exc:
        raise ModelFormatError(f"{path}: damaged metadata ({exc}); {hint}") from exc
    return Checkpoint(state_dict, meta, str(payload.get("architecture", ARCHITECTURE)))
