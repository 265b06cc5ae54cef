"""``untwine explore``: an interactive latent explorer for a run, served on 127.0.0.1.

:mod:`.core` (:class:`Explorer`: pick inputs by factors, MI heat map, decode to PNG) needs only
untwine's own dependencies; :mod:`.app` (the Starlette page and uvicorn server) needs the
``explore`` extra: ``pip install 'untwine[explore]'``. See docs/explore.md.
"""

from .core import Explorer, Latent, png

__all__ = ["Explorer", "Latent", "png"]
