"""Old home of :mod:`fercurate.synth.mesh_correction` (renamed: ``fercurate.pose.calibration`` is another calibration)."""

from fercurate.compat import moved_module

__getattr__ = moved_module(__name__, "fercurate.synth.mesh_correction")
