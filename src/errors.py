"""Errors caused by the user's input (config, files), reported by the CLI as one line, not a traceback."""


class UserInputError(Exception):
    """A problem with a config value or an input file that the user can fix.

    The message must say what is wrong and name the config key or the file.
    """


def find_user_error(err: BaseException | None) -> UserInputError | None:
    """The `UserInputError` behind `err`, if any (jsonargparse wraps errors raised while instantiating)."""
    while err is not None:
        if isinstance(err, UserInputError):
            return err
        err = err.__cause__ or err.__context__
    return None
