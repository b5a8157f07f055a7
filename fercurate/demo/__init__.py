"""The built-in offline demo: real faces shipped in packages, the four native layouts, the whole pipeline."""

from fercurate.demo.run import DemoResult, run_demo

__all__ = ["DemoResult", "run_demo"]
