"""faceclust: turn a photo library into albums grouped by person.

Heavy dependencies (torch, faiss, dlib) are imported lazily by the modules
that need them, so ``import faceclust`` and ``faceclust --help`` stay fast.
"""

__version__ = "0.1.0.dev0"
