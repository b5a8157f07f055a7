"""The workspace report: one static HTML page with PNGs (``fercurate report --out report/``)."""

from fercurate.report.build import ReportResult, build_report

__all__ = ["ReportResult", "build_report"]
