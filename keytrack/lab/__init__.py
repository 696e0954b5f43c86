"""The experiment machinery every table of keytrack is made with (ablations, tracker comparisons, sweeps).

* :mod:`keytrack.lab.runs`: the cache of runs (one JSON file per run, failures recorded, never fatal) and the
  statistics over runs (mean ± std over seeds, paired differences, the bootstrap over videos and seeds);
* :mod:`keytrack.lab.profile`: where the data comes from (the synthetic default or a PoseTrack18-layout folder);
* :mod:`keytrack.lab.training`: a matching network trained, or the finished run of the same configuration reused;
* :mod:`keytrack.lab.scoring`: tracking a cell and scoring it with poseval's protocol and keypoint HOTA;
* :mod:`keytrack.lab.cells`: grids of tracking cells and their options (``keytrack ablate``'s command line);
* :mod:`keytrack.lab.options`: options dataclasses that are also command lines;
* :mod:`keytrack.lab.plots`: line plots with error bars;
* :mod:`keytrack.lab.sweep` / :mod:`keytrack.lab.sweep_table`: W&B sweep YAMLs run by ``wandb agent`` or offline.

The paper's ablations themselves (specs, their runner, the plug-ins that stay code) are in ``ablations/``,
which this package never imports.
"""
