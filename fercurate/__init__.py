"""fercurate: curate facial-expression datasets for the conditions that break recognisers.

The Python API mirrors the CLI: ``fercurate.ingest.ferplus.ingest(...)`` is ``fercurate ingest
ferplus``, ``fercurate.info.manifest_info(...)`` is ``fercurate info``, and so on.
"""

from fercurate.manifest import Manifest, read_manifest, write_manifest
from fercurate.schema import CANONICAL_LABELS, SCHEMA_VERSION

__version__ = "0.1.0"
__all__ = ["CANONICAL_LABELS", "SCHEMA_VERSION", "Manifest", "read_manifest", "write_manifest", "__version__"]
