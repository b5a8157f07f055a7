"""Old home of the quality HTML page, now :mod:`fercurate.report.quality_page` (``build_report`` is
``build_quality_page`` there, ``ReportResult`` is ``QualityPageResult``)."""

from fercurate.compat import moved_module

__getattr__ = moved_module(__name__, "fercurate.report.quality_page", {
    "build_report": "fercurate.report.quality_page:build_quality_page",
    "ReportResult": "fercurate.report.quality_page:QualityPageResult",
})
