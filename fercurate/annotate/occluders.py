"""Moved (issue 30): the scorer's synthetic occluders are painted by :func:`fercurate.synth.occluders.occlude_crop`
and its pre-training batches come from :mod:`fercurate.scorer.synthetic`; these old names still import."""

from fercurate.compat import moved_module

__getattr__ = moved_module(__name__, "fercurate.scorer.synthetic", {
    "KINDS": "fercurate.schema:OCCLUDED_TYPES",
    "SIZE": "fercurate.scorer.faces:FACE_SIZE",
    "occlude": "fercurate.synth.occluders:occlude_crop",
})
