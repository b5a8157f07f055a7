"""Data quality: exact/near duplicates and leakage, non-faces, label noise.

Modules: :mod:`hashing` (content and perceptual hashes, cached as the ``hashes`` layer),
:mod:`index` (multi-index hashing: Hamming-radius search without all pairs), :mod:`verify`
(aligned band-pass similarity that confirms near-duplicate candidates), :mod:`dups` (duplicate
layers, leakage tables), :mod:`leakage` (leaked samples for ``subsets build --exclude-leaked``),
:mod:`nonface`, :mod:`noise` (vote entropy, confident learning), :mod:`sheets` (contact sheets),
:mod:`tables`. The checks import no report, App or model: their HTML page is
:mod:`fercurate.report.quality_page`, their FiftyOne saved views :mod:`fercurate.annotate.review`,
and model probabilities come in from the caller (``quality noise --model`` passes the RAN's).
"""
