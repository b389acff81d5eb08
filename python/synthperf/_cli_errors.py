"""The one error handler of every ``synthperf`` command (issue 14 item 1, issue 17).

A user mistake ends a command with one line on stderr, ``error: <message>``, and no traceback:

- ``ValueError`` / ``TypeError`` (bad options or configs, including ``ConfigError``) and
  ``FileNotFoundError`` (a path given that does not exist): exit status 2, the usage-error status;
- ``synthperf._io.CheckpointError`` (a corrupt, truncated or foreign file), ``OSError``
  (permissions, read-only or full disk) and ``ImportError`` (a missing extra): exit status 1.

Messages raised by library functions name Python arguments (``classifier=``, ``class_counts``);
the handler rewrites them to the command's flags (``--classifier``, ``--class-counts``) using
the running click command's parameters. Anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import functools
import re
from typing import Callable, TypeVar

import typer

__all__ = ["user_errors", "fail", "flag_names"]

F = TypeVar("F", bound=Callable)
USAGE_ERRORS = (ValueError, TypeError)
ENVIRONMENT_ERRORS = (OSError, ImportError)


def fail(message: object, code: int = 2) -> None:
    """Print ``error: <message>`` on stderr and end the command with ``code``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=code)


def flag_names() -> dict[str, str]:
    """{python parameter name: its longest option flag} of the running click command ({} outside one)."""
    ctx = _current_context()
    if ctx is None or ctx.command is None:
        return {}
    out = {}
    for p in ctx.command.params:
        flags = [o for o in getattr(p, "opts", []) if o.startswith("--")]
        if p.name and flags:
            out[p.name] = max(flags, key=len)
    return out


def _current_context():
    """The running click context, from the click typer uses (typer >= 0.26 vendors it)."""
    try:
        from typer._click.globals import get_current_context
    except ImportError:  # typer with click as a dependency
        from click import get_current_context
    return get_current_context(silent=True)


def _with_flags(message: str, flags: dict[str, str]) -> str:
    """Rewrite Python argument names in ``message`` to their flags (longest names first)."""
    for name, flag in sorted(flags.items(), key=lambda kv: -len(kv[0])):
        if "_" in name:  # an identifier with an underscore is never an English word
            message = re.sub(rf"(?<![\w.-]){re.escape(name)}=?(?![\w-])", flag, message)
        else:  # a plain word: only where it is used as an argument name
            message = re.sub(rf"(?<![\w.-]){re.escape(name)}=(?!\w)", flag, message)
            message = re.sub(rf"(?<![\w.-]){re.escape(name)}(?= (must|should|has to) )", flag, message)
    return message


def user_errors(fn: F) -> F:
    """Decorator for a typer command: user errors become ``error: ...`` (see the module doc)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from ._io import CheckpointError

        try:
            return fn(*args, **kwargs)
        except CheckpointError as exc:  # a damaged or foreign file: not a command-line mistake
            fail(_with_flags(str(exc), flag_names()), code=1)
        except (*USAGE_ERRORS, FileNotFoundError) as exc:  # a named path that does not exist: usage
            fail(_with_flags(str(exc), flag_names()), code=2)
        except ENVIRONMENT_ERRORS as exc:
            fail(_with_flags(str(exc), flag_names()), code=1)

    return wrapper  # type: ignore[return-value]
