"""A restricted unpickler: only globals on an explicit allow-list are resolved.

A pickle can name any importable callable and have it called while loading, so an untrusted pickle is code.
The registry lists, for each pickled file, the few globals its bytes reference (found by inspecting the opcodes);
anything else makes loading stop with :class:`UnsafePickleError` before the global is imported.

Some allowed globals are swapped for safer or current equivalents:

- ``numpy.core.multiarray.*`` -> ``numpy._core.multiarray.*`` (numpy 2 moved them; same objects, no warning);
- ``torch.storage._load_from_bytes`` -> a loader that calls ``torch.load(..., weights_only=True)``, so the tensor
  payload nested inside the pickle is itself read by torch's restricted loader.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable, Iterable
from typing import Any, BinaryIO

from numpy._core import multiarray

from .errors import UnsafePickleError


def _numpy_core(name: str) -> Callable[[], Any]:
    def resolve() -> Any:
        return getattr(multiarray, name)

    return resolve


def _torch_load_from_bytes() -> Callable[[bytes], Any]:
    def load_from_bytes(payload: bytes) -> Any:
        import torch  # noqa: PLC0415 (only pickles nesting tensors need it: the command line starts without torch)

        return torch.load(io.BytesIO(payload), weights_only=True)

    return load_from_bytes


_REPLACEMENTS: dict[str, Callable[[], Any]] = {
    "numpy.core.multiarray._reconstruct": _numpy_core("_reconstruct"),
    "numpy.core.multiarray.scalar": _numpy_core("scalar"),
    "torch.storage._load_from_bytes": _torch_load_from_bytes,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only ``allowed`` globals, given as ``"module.name"`` strings.

    Args:
        file: binary file object positioned at the pickle.
        allowed: the globals this pickle may reference.
        source: what to call the pickle in error messages (a registry name or a path).
    """

    def __init__(self, file: BinaryIO, allowed: Iterable[str], source: str = "pickle"):
        super().__init__(file)
        self.allowed = frozenset(allowed)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        """Resolve ``module.name`` if it is allowed (swapped for its replacement if it has one); else refuse."""
        qualified = f"{module}.{name}"
        if qualified not in self.allowed:
            allowed = ", ".join(sorted(self.allowed)) or "none"
            raise UnsafePickleError(
                f"{self.source}: refused to load global {qualified}, which is not on its allow-list ({allowed}); "
                "nothing was executed. Fix: if the file is trusted and changed, add the global to its "
                "`pickle_globals` in perturbx/datasets/registry.toml."
            )
        if qualified in _REPLACEMENTS:
            return _REPLACEMENTS[qualified]()
        return super().find_class(module, name)


def loads_restricted(payload: bytes, allowed: Iterable[str], source: str = "pickle") -> Any:
    """Unpickle ``payload`` resolving only ``allowed`` globals (``"module.name"`` strings)."""
    return RestrictedUnpickler(io.BytesIO(payload), allowed, source).load()
