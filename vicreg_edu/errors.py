"""Errors that are the user's to fix (a bad setting, missing data, an unreadable checkpoint).

The command line (:mod:`vicreg_edu.cli`) prints these as one line, ``vicreg-edu: error: ...``,
and exits with status 2; any other exception is a bug and keeps its traceback. Each class also
derives from the built-in exception a Python caller would expect (``ValueError``,
``FileNotFoundError``), so ``except ValueError`` keeps working in notebooks.

Example:
    >>> issubclass(ConfigError, ValueError) and issubclass(ConfigError, UserError)
    True
"""

from __future__ import annotations

import re


class UserError(Exception):
    """Base class: the message says what is wrong and how to fix it."""


class ConfigError(UserError, ValueError):
    """A config field has a bad type, value or name (the message names the field and its range)."""


class DataError(UserError, ValueError):
    """The data is unusable: an unreadable image file, an empty folder, too few images for a batch."""


class DataNotFoundError(UserError, FileNotFoundError):
    """The data folder (or a file in it) is not there; the message says how to get it."""


class CheckpointError(UserError, ValueError):
    """A checkpoint is missing, unreadable, not a vicreg-edu checkpoint, or from another recipe."""


class CheckpointNotFoundError(UserError, FileNotFoundError):
    """No checkpoint at the given path."""


class TrainingDiverged(UserError, FloatingPointError):
    """The loss became NaN/Inf; the message names the step, the last good checkpoint and fixes."""


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def strip_ansi(text: str) -> str:
    r"""``text`` without terminal colour and cursor codes (torch colours some of its error messages).

    >>> strip_ansi("\x1b[1mWeights only load failed\x1b[0m")
    'Weights only load failed'
    """
    return _ANSI.sub("", text)


def one_line(err: BaseException) -> str:
    r"""The message of ``err`` as one line (what ``vicreg-edu: error: ...`` prints).

    An error re-raised from a DataLoader worker carries the worker's traceback; its last line
    (``module.Class: message``) is kept, without the class name.

    >>> one_line(ConfigError("gamma=-1 is out of range:\n gamma must be > 0"))
    'gamma=-1 is out of range: gamma must be > 0'
    """
    lines = [line.strip() for line in strip_ansi(str(err)).splitlines() if line.strip()]
    if any("Original Traceback" in line for line in lines):
        lines = [re.sub(r"^[\w.]+: ", "", lines[-1], count=1)]
    return " ".join(lines) or type(err).__name__
