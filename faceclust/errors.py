"""Typed errors. The library raises these; only the CLI turns them into messages and exit codes.

Every message says what to do about it.
"""


class FaceclustError(Exception):
    """Base class of every error faceclust raises on purpose.

    ``exit_code`` is what the command line exits with: 1 (the run failed) unless a subclass
    says the user asked for something impossible (2, a usage error).
    """

    exit_code = 1


class UsageProblem(FaceclustError):
    """What was asked cannot be done as asked (a photo folder that does not exist, a name
    already taken...): exit code 2, as click's own usage errors."""

    exit_code = 2


class LockTimeout(FaceclustError):
    """Another faceclust process kept the catalog or the album folder busy for too long."""


class OutputError(FaceclustError):
    """An output (album folder, report, export, backup) cannot be written where asked."""


class ModelError(FaceclustError):
    """A model file is missing, unknown or damaged."""


class ModelNotFound(ModelError):
    pass


class ModelFormatError(ModelError):
    """A dlib .dat file could not be parsed: unknown layer version, truncated or corrupt."""


class UnsupportedPrecision(ModelError):
    """The arithmetic asked for the detector is not available on this machine or model."""


class UnknownNameError(FaceclustError, KeyError):
    """A registry was asked for a name it does not hold."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class MissingExtraError(FaceclustError):
    """An optional dependency is needed for what was asked."""


class ImageError(FaceclustError):
    """One file could not be read or decoded. Recorded per file; never fatal for a scan."""


class CatalogError(FaceclustError):
    """The catalog cannot be opened or is from a newer faceclust."""


class NotFound(CatalogError, UsageProblem):
    """A person, face or history entry the user named is not in the catalog."""


class IndexError_(FaceclustError):
    """The FAISS index cannot be built or loaded."""
