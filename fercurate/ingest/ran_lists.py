"""Old home of the official RAN lists import, now ``fercurate.subsets.official`` (it writes layers and subsets)."""

from fercurate.compat import moved_module

__getattr__ = moved_module(__name__, "fercurate.subsets.official", {
    n: f"fercurate.subsets.list_files:{n}"
    for n in ("LIST_NAMES", "LABEL_ORDERS", "FERPLUS_OCCLUSION_CODES", "ListSpec", "LIST_SPECS", "KNOWN_OTHER_FILES",
              "DATASET_FOLDERS", "ListStats", "occlusion_types")
})
