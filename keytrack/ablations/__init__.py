"""The experiments: every table of keytrack, made from specs of ``keytrack/experiments/ablations/`` by one
runner. Modules below are those of this package (``keytrack.ablations.<name>``):

* :mod:`.evaluate`: the one evaluate path (a tracker on an evaluation set, scored, cached);
* :mod:`.runner` (``keytrack ablate NAME``): tracking-time specs expanded into the cells of :mod:`.cells`
  and training specs (one network per row), with :mod:`.notes` and :mod:`.claims`;
* :mod:`.runs`, :mod:`.profile`, :mod:`.training`, :mod:`.options`, :mod:`.plots`: the run cache and
  statistics, the data, trained networks reused, options, plots;
* plug-ins that stay code: :mod:`.toks` (Table 2), :mod:`.matcher_variants` (choices on validation
  videos) and :mod:`.sweep` (W&B sweeps without a server, into Figure 7's training spec).

This is the application layer: it may import the library core (``keytrack`` less this package,
``keytrack.lightning`` and ``keytrack.datamodules``) and the Lightning layer, never the other way
round. See ``docs/ablations.md``.
"""
