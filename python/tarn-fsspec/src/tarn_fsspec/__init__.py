"""fsspec support for ``tarn://`` URIs, through a ``tarn serve`` HTTP API.

Importing this package registers the ``tarn`` protocol with fsspec (installing it also
registers it through the ``fsspec.specs`` entry point, so fsspec finds it without an import).
"""

from .core import (
    FORMATS,
    TarnError,
    TarnFileSystem,
    TarnNotFoundError,
    TarnPermissionError,
    _register,
)

__all__ = [
    "FORMATS",
    "TarnError",
    "TarnFileSystem",
    "TarnNotFoundError",
    "TarnPermissionError",
]
__version__ = "0.1.0"

_register()
