"""Synthetic masked / occluded variants of a manifest, placed from facial landmarks, with provenance.

Start with :func:`fercurate.synth.runner.run` (``fercurate synth mask|occlude``) and
:func:`fercurate.synth.preview.contact_sheet` (``fercurate synth preview``). The pieces:
``placement`` (68 landmarks per face, with a labelled fallback), ``outline`` (mask outline, face
frame, coverage), ``masks`` / ``occluders`` (drawing), ``templates`` (MaskTheFace-style RGBA
templates), ``warp`` (thin-plate splines, compositing), ``pipeline`` (per-image work in workers),
``seeds`` (per-sample seeds), ``shapes`` (68-point index groups, mean face, crop prior),
``mesh_correction`` (the mesh's 68 points on small faces, moved towards the iBUG convention);
``refit`` (offline refitting of the shipped ``face_shapes.json`` / ``mesh_offsets.json``, imported by
none of the others).
"""
