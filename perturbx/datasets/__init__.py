"""Where the book's data comes from and how it is read.

- :mod:`~perturbx.datasets.registry`: every data file once, with upstream, sha256, licence and citation.
- :mod:`~perturbx.datasets.fetcher`: the checksummed fetcher (cache, local mirror, upstream download) and the
  :class:`DataLog` that records every verified file for a chapter's provenance record.
- :mod:`~perturbx.datasets.safe_pickle`: the restricted unpickler used for the registered pickles.
- :mod:`~perturbx.datasets.cmap`: CMap GCT/GCTX readers (levels 3-5, both public layouts);
  :mod:`~perturbx.datasets.units`: doses and times; :mod:`~perturbx.datasets.cmap_write`: the CLUE-layout GCTX
  writer.
- :mod:`~perturbx.datasets.curated`: the curated L1000 format (:class:`CuratedL1000`, the drop report), written
  whole or not at all by :mod:`~perturbx.datasets.output_folder`.
- :mod:`~perturbx.datasets.stages`: the curation stages every L1000 reader composes (non-finite values, doses and
  times, structures, same-plate DMSO basal, assembly and accounting).
- :mod:`~perturbx.datasets.lincs`: CMap GCT/GCTX curation (treatments paired with basal expression, every drop
  reported) and the cached real sets; :mod:`~perturbx.datasets.well_annotations`: plates described by a
  well-annotation table; :mod:`~perturbx.datasets.pharmacoset`, :mod:`~perturbx.datasets.consensus`: the other
  formats; :mod:`~perturbx.datasets.curate`: the ``perturbx lincs curate`` command over all of them;
  :mod:`~perturbx.datasets.reference_tables`: compound structures and cell-line basal expression.
- :mod:`~perturbx.datasets.drug_response`: DeepDRA's labels with GDSC omics and RDKit drug features.
- :mod:`~perturbx.datasets.simulate`: the semi-synthetic L1000 generator with known truth.

Typical use::

    from perturbx import datasets
    path = datasets.fetch("l1000_level5_modz_n272")       # verified local path
    basal = datasets.read_pickle("transigen_basal_profiles")
    datasets.registry().table()                          # what is registered
"""

from .errors import (
    CacheDirError,
    ChecksumMismatchError,
    DataError,
    DownloadError,
    MirrorFileMissingError,
    UnknownDataFileError,
    UnsafePickleError,
)
from .fetcher import (
    CACHE_ENV,
    MIRROR_ENV,
    DataLog,
    Fetcher,
    cache_dir,
    fetch,
    fetch_all,
    mirror_dir,
    read_pickle,
    sha256_of,
    use_data_log,
)
from .registry import DataFile, Registry
from .registry import default_registry as registry

__all__ = [
    "CACHE_ENV",
    "MIRROR_ENV",
    "CacheDirError",
    "ChecksumMismatchError",
    "DataError",
    "DataFile",
    "DataLog",
    "DownloadError",
    "Fetcher",
    "MirrorFileMissingError",
    "Registry",
    "UnknownDataFileError",
    "UnsafePickleError",
    "cache_dir",
    "fetch",
    "fetch_all",
    "mirror_dir",
    "read_pickle",
    "registry",
    "sha256_of",
    "use_data_log",
]
