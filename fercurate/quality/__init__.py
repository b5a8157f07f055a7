"""Data quality: exact/near duplicates and leakage, non-faces, label noise, and a quality report.

Modules: :mod:`hashing` (content and perceptual hashes), :mod:`index` (multi-index hashing),
:mod:`verify` (aligned thumbnail similarity), :mod:`dups` (duplicate layers and leakage tables),
:mod:`leakage` (leaked samples for ``subsets build --exclude-leaked``), :mod:`nonface`,
:mod:`noise` (vote entropy, confident learning), :mod:`report` (tables + contact sheets).
"""
