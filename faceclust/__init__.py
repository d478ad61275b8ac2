"""faceclust: turn a photo library into albums grouped by person.

Heavy dependencies (torch, faiss, dlib) are imported lazily by the modules
that need them, so ``import faceclust`` and ``faceclust --help`` stay fast.

The extension points are re-exported here (imported on first use)::

    from faceclust import detectors, embedders, clusterers

    @detectors.register("mine")
    class MyDetector: ...

docs/architecture.md maps the package: which folder holds each step and what it may import.
"""

__version__ = "0.1.0.dev0"

_REGISTRIES = {
    "detectors": "faceclust.faces.detect",
    "embedders": "faceclust.faces.embed",
    "clusterers": "faceclust.people.cluster",
}
__all__ = ["__version__", *_REGISTRIES]


def __getattr__(name: str):
    if name in _REGISTRIES:
        import importlib

        return getattr(importlib.import_module(_REGISTRIES[name]), name)
    raise AttributeError(f"module 'faceclust' has no attribute {name!r}")
