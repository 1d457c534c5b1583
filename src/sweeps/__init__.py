"""Hyperparameter sweeps with Optuna (`python -m src.sweep`): the search space and the study.

- `space.py`: the search space, a YAML file over config keys, checked and sampled;
- `study.py`: trials as in-process runs of the CLI, pruning, storage, and the results (table, best config,
  plots).
"""
