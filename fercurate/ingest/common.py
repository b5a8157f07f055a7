"""Old home of what every ingestor shares; its names now live in rejects, paths, files and result."""

from fercurate.compat import moved_module

__getattr__ = moved_module(__name__, "fercurate.ingest.result", {
    **{n: f"fercurate.ingest.rejects:{n}" for n in ("Rejects", "printable", "is_utf8_name", "non_utf8_reason")},
    **{n: f"fercurate.ingest.paths:{n}" for n in ("unsafe_path_reason", "as_string_array", "check_paths",
                                                  "first_duplicates", "require_dir")},
    **{n: f"fercurate.ingest.files:{n}" for n in ("MISSING", "FILE", "FOLDER", "OUTSIDE", "BROKEN_LINK", "FileScan",
                                                  "scan_files", "existing_files", "oversized_images",
                                                  "verify_images")},
})
