"""Old home of :mod:`fercurate.synth.mesh_correction` (renamed: ``fercurate.pose.calibration`` is another
calibration) and of the offset fitting, now in :mod:`fercurate.synth.refit`."""

from fercurate.compat import moved_module

__getattr__ = moved_module(__name__, "fercurate.synth.mesh_correction", {
    "fit_offsets": "fercurate.synth.refit:fit_offsets",
    "offsets_json": "fercurate.synth.refit:offsets_json",
})
