"""The occlusion scorer: a network that says how likely a face is occluded, and by which type.

It serves the labelling queue (:mod:`fercurate.annotate.suggest` turns its scores into suggestions)
and never imports :mod:`fercurate.annotate`. Modules:

* ``config``: :class:`~fercurate.scorer.config.ScorerConfig`, how the scorer is trained;
* ``faces``: the 48 px grey face crops it sees (from :mod:`fercurate.faces.store`);
* ``synthetic``: pre-training batches with occluders painted by :mod:`fercurate.synth.occluders`;
* ``model``: the small CNN, or a trained expression model's ResNet-18, with its two heads;
* ``targets``: training targets from occlusion labels;
* ``train``: pre-training, fine-tuning and scoring; ``estimate``: the expected training time;
* ``cache``: pre-trained weights kept for a re-run on the same faces.
"""
