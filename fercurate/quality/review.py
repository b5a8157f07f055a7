"""Old home of :mod:`fercurate.annotate.review` (saved views of flagged samples are the App's side)."""

from fercurate.compat import moved_module

__getattr__ = moved_module(__name__, "fercurate.annotate.review")
