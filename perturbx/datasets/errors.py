"""Errors of the data layer.

Every message names the file (registry name and path), says what was expected and what was found, and ends with
the fix, so that a one-line report on the command line is enough to act on.
"""

from __future__ import annotations


class DataError(Exception):
    """Base class of every data-layer error; its message is one line that names the file and the fix."""


class UnknownDataFileError(DataError, KeyError):
    """A name that is not in the registry."""

    def __str__(self) -> str:  # KeyError would otherwise wrap the message in quotes
        return str(self.args[0])


class ChecksumMismatchError(DataError):
    """A file whose sha256 differs from the registered one; the file has been discarded."""


class MirrorFileMissingError(DataError, FileNotFoundError):
    """``PERTURBX_DATA_MIRROR`` is set but the mirror folder lacks the file."""


class DownloadError(DataError):
    """The upstream could not be reached or did not deliver the file."""


class UnsafePickleError(DataError, __import__("pickle").UnpicklingError):
    """A pickle asked for a global outside its allow-list; nothing from it was executed."""


class CacheDirError(DataError):
    """The cache folder (``PERTURBX_CACHE_DIR``) cannot hold a file: it is a file, not a folder; a file stands where
    one of its sub-folders must be; or it is not writable. The file was not stored."""


class MetadataError(ValueError):
    """Metadata or file content that cannot be used as given; the message names the file, the record and the fix."""
