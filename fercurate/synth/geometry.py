"""Old home of :mod:`fercurate.synth.outline` (renamed: ``fercurate.pose.geometry`` is another geometry)."""

from fercurate.compat import moved_module

__getattr__ = moved_module(__name__, "fercurate.synth.outline")
