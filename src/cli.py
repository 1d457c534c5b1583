"""Command line: `python -m src.cli {fit,validate,test,predict} --config configs/<x>.yaml [--key value ...]`.

What every run does is in `src.lightning_cli`; this command turns a user's mistake into one `error:` line.
"""

from __future__ import annotations

import sys

from jsonargparse import ArgumentError
from lightning.pytorch.utilities.exceptions import MisconfigurationException, SIGTERMException

from src.callbacks.fault_tolerance import SIGTERM_EXIT_STATUS
from src.errors import describe_config_error, exit_on_user_error
from src.lightning_cli import cli_main


def main() -> None:
    """Entry point of `python -m src.cli`: a user's mistake ends with one `error:` line and a non-zero status.

    Exit status 2: a bad config (unknown key, wrong type, a class_path that does not import, a trainer
    setting this machine cannot run, such as a GPU preset without a GPU); 1: a bad input file or value
    found later (data, checkpoint, output folder, a NaN loss); 143: stopped by SIGTERM after saving
    `last.ckpt`.
    """
    with exit_on_user_error():
        try:
            cli_main(exit_on_error=False)
        except ArgumentError as err:
            print(f"error: {describe_config_error(str(err))}", file=sys.stderr)
            sys.exit(2)
        except MisconfigurationException as err:  # e.g. a GPU preset on a machine without a GPU
            print(f"error: trainer: {' '.join(str(err).split())}", file=sys.stderr)
            sys.exit(2)
        except SIGTERMException:
            sys.exit(SIGTERM_EXIT_STATUS)


if __name__ == "__main__":
    main()
