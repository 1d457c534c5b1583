"""Image classification with PyTorch Lightning.

- `src.data`: LightningDataModules (one base class, one thin subclass per dataset).
- `src.models.components`: plain `nn.Module` networks that know nothing of Lightning.
- `src.models`: LightningModules ("systems") that wrap a network with loss, metrics and optimisation.
- `src.callbacks`: Lightning callbacks used by the default trainer.
- `src.cli`: the LightningCLI entry point (`python -m src.cli fit --config ...`).
"""
