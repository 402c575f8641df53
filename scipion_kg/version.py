"""The version of scipion-kg, recorded as the software version of its built-in steps."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("scipion-kg")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.1.0"
