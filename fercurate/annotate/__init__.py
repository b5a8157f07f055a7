"""Occlusion labelling in the FiftyOne App: dataset sync, App launch, pull, status and suggestions.

``ensure_dataset`` builds the persistent App dataset from a manifest, ``launch`` opens it with the
packaged labelling plugin, ``pull`` merges the App's labels into ``annotations/<name>.occlusion.parquet``
and ``status`` reports progress and inter-annotator agreement. FiftyOne is imported lazily.
"""
