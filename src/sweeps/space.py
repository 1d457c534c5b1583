"""The search space of a sweep: a YAML file mapping config keys to distributions.

    # configs/sweeps/quickstart.yaml
    model.init_args.optimizer.init_args.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
    model.init_args.backbone.init_args.dropout: {type: float, low: 0.0, high: 0.5}
    data.init_args.batch_size: {type: categorical, choices: [32, 64, 128]}

Types: `float` (`low`, `high`, optional `log` or `step`), `int` (`low`, `high`, optional `log` or `step`),
`categorical` (`choices`). Each trial's values become command-line overrides (`--key=value`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import Trial

from src.errors import UserInputError

#: The keys each type takes (besides `type`), required first.
KEYS = {
    "float": (("low", "high"), ("log", "step")),
    "int": (("low", "high"), ("log", "step")),
    "categorical": (("choices",), ()),
}


@dataclass
class Parameter:
    """One config key of the space and its distribution.

    Args:
        key: The config key, e.g. `model.init_args.optimizer.init_args.lr`.
        distribution: Optuna's distribution of its values.
    """

    key: str
    distribution: BaseDistribution = field(repr=False)

    def override(self, value: Any) -> str:
        """The command-line override setting `value`: `--key=value` (JSON, which the CLI parses as YAML).

        >>> Parameter("a.b", IntDistribution(1, 3)).override(2)
        '--a.b=2'
        >>> Parameter("c", CategoricalDistribution(["x", "y"])).override("x")
        '--c="x"'
        """
        return f"--{self.key}={json.dumps(value)}"

    def suggest(self, trial: Trial) -> Any:
        """The trial's value of this key (Optuna's `suggest_*` for the distribution)."""
        d = self.distribution
        if isinstance(d, CategoricalDistribution):
            return trial.suggest_categorical(self.key, d.choices)
        if isinstance(d, FloatDistribution):
            return trial.suggest_float(self.key, d.low, d.high, log=d.log, step=d.step)
        assert isinstance(d, IntDistribution)
        return trial.suggest_int(self.key, d.low, d.high, log=d.log, step=d.step)


def load_space(path: str | Path) -> list[Parameter]:
    """Read and check a search-space file; a mistake is a `UserInputError` naming the file and the key."""
    path = Path(path)
    try:
        content = yaml.safe_load(path.read_text())
    except FileNotFoundError as err:
        raise UserInputError(f"--space: {path} not found") from err
    except yaml.YAMLError as err:
        raise UserInputError(f"--space: {path} is not valid YAML ({' '.join(str(err).split())})") from err
    if not isinstance(content, dict) or not content:
        raise UserInputError(
            f"--space: {path} must map config keys to distributions, e.g. 'a.b: {{type: int, ...}}'"
        )
    return [parameter(f"{path}: {key}", str(key), spec) for key, spec in content.items()]


def parameter(where: str, key: str, spec: Any) -> Parameter:
    """One entry of the space file as a `Parameter` (`where` starts the error messages)."""
    if not isinstance(spec, dict) or spec.get("type") not in KEYS:
        raise UserInputError(
            f"{where}: needs 'type: float', 'type: int' or 'type: categorical', got {spec!r}"
        )
    kind = spec["type"]
    required, optional = KEYS[kind]
    missing = [k for k in required if k not in spec]
    unknown = sorted(set(spec) - {"type", *required, *optional})
    if missing or unknown:
        problems = [f"missing {', '.join(missing)}"] * bool(missing) + [
            f"unknown {', '.join(unknown)}"
        ] * bool(unknown)
        raise UserInputError(
            f"{where}: {'; '.join(problems)} (a {kind} takes {', '.join(required + optional)})"
        )
    if kind == "categorical":
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise UserInputError(f"{where}: choices must be a non-empty list, got {choices!r}")
        return Parameter(key, CategoricalDistribution(choices))
    low, high = spec["low"], spec["high"]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
        raise UserInputError(f"{where}: low and high must be numbers, got {low!r} and {high!r}")
    if kind == "int" and not all(float(v).is_integer() for v in (low, high)):
        raise UserInputError(f"{where}: an int's low and high must be whole numbers, got {low} and {high}")
    if not low < high:
        raise UserInputError(f"{where}: low must be below high, got low={low}, high={high}")
    log, step = bool(spec.get("log", False)), spec.get("step")
    if log and low <= 0:
        raise UserInputError(f"{where}: a log scale needs low > 0, got {low}")
    if log and step is not None:
        raise UserInputError(f"{where}: log and step cannot be combined")
    if step is not None and not (isinstance(step, (int, float)) and step > 0):
        raise UserInputError(f"{where}: step must be a positive number, got {step!r}")
    if kind == "float":
        return Parameter(key, FloatDistribution(float(low), float(high), log=log, step=step))
    return Parameter(key, IntDistribution(int(low), int(high), log=log, step=int(step or 1)))


def edge_values(distribution: BaseDistribution) -> list[Any]:
    """Every choice, or both ends of the range: the values checked against the config before any trial."""
    if isinstance(distribution, CategoricalDistribution):
        return list(distribution.choices)
    assert isinstance(distribution, (FloatDistribution, IntDistribution))
    return [distribution.low, distribution.high]
