"""The workspace report: one static HTML page with PNGs (``fercurate report --out report/``), and the
data-quality pages it links (:mod:`fercurate.report.quality_page`, ``fercurate quality report``)."""

from fercurate.report.build import ReportResult, build_report

__all__ = ["ReportResult", "build_report"]
