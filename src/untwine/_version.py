"""untwine's version (``untwine.__version__``), in a module of its own so that any layer can read it
without importing the package's entry, which sits above them all (it installs :mod:`untwine.hooks`)."""

__version__ = "0.1.0"
