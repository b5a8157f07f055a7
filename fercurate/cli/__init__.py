"""The ``fercurate`` command line: a thin typer layer, every command is also a library call.

Each area lives in its own module (``fercurate.cli.<area>``) with a ``register(app)`` function;
heavy libraries (torch, fiftyone, mediapipe) are imported inside commands so ``--help`` is instant.
"""

from __future__ import annotations

import errno
import os
import importlib
import logging

import typer
from typer.core import TyperGroup

from fercurate.errors import FercurateError

INTERRUPTED_EXIT = 130  # 128 + SIGINT, as a shell reports a command stopped by Ctrl-C


_ENVIRONMENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS})


class FercurateGroup(TyperGroup):
    """Turns library errors into one ``error: ...`` line and the error's exit code (no traceback), and
    Ctrl-C into one ``interrupted: ...`` line saying what was kept (exit code 130)."""

    def invoke(self, ctx: typer.Context):  # noqa: ANN201 - click's signature
        from fercurate.images import MAX_PIXELS_ENV

        limit = os.environ.get(MAX_PIXELS_ENV)  # --max-pixels holds for this command only (in-process calls too)
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as exc:
            from fercurate.interrupts import kept

            typer.secho(f"interrupted: {kept()}", err=True, fg="yellow")
            raise typer.Exit(INTERRUPTED_EXIT) from exc
        except FercurateError as exc:
            typer.secho(f"error: {exc}", err=True, fg="red")
            raise typer.Exit(exc.exit_code) from exc
        except OSError as exc:  # a full disk or a permission error outside fercurate's own writers
            if exc.errno not in _ENVIRONMENT_ERRNOS:
                raise
            typer.secho(f"error: {exc.filename or 'a file'}: {exc.strerror}", err=True, fg="red")
            raise typer.Exit(1) from exc
        finally:
            if limit is None:
                os.environ.pop(MAX_PIXELS_ENV, None)
            else:
                os.environ[MAX_PIXELS_ENV] = limit


class _Notes(logging.Handler):
    """fercurate's library notes (warnings logged by its modules) as ``note: ...`` lines on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        typer.secho(f"note: {record.getMessage()}", err=True, fg="yellow")


def _show_notes() -> None:
    log = logging.getLogger("fercurate")
    if not any(isinstance(h, _Notes) for h in log.handlers):
        log.addHandler(_Notes(logging.WARNING))
        log.propagate = False


def new_app(help: str, **kwargs) -> typer.Typer:  # noqa: A002 - typer's name
    """A typer app (or sub-app) with fercurate's conventions."""
    return typer.Typer(
        cls=FercurateGroup,
        help=help,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode="rich",
        **kwargs,
    )


app = new_app(
    "Curate facial-expression datasets for pose and occlusion.\n\n"
    "Ingest AffectNet / FERPlus / RAF-DB / SFEW into Parquet manifests, estimate head pose, label "
    "occlusion in the FiftyOne App, build Pose/Occlusion subsets, make synthetic masked variants, "
    "and train/evaluate the Region Attention Network (RAN)."
)

@app.callback()
def _root(
    max_pixels: int = typer.Option(
        None, "--max-pixels", min=1, metavar="N",
        help="Refuse images over N pixels, read from the file header before any decode (default 50,000,000; "
             "also $FERCURATE_MAX_PIXELS). Applies to every command: e.g. fercurate --max-pixels 100000000 pose ...",
    ),
) -> None:
    """Options for every command."""
    _show_notes()
    if max_pixels is not None:
        from fercurate.images import set_max_pixels

        set_max_pixels(max_pixels)


# Each module registers its commands on ``app``; order here is the order in ``--help``.
COMMAND_MODULES: tuple[str, ...] = (
    "demo",
    "ingest",
    "info",
    "ran_lists",
    "pose",
    "subsets",
    "annotate",
    "synth",
    "train",
    "eval",
    "quality",
)

for _module in COMMAND_MODULES:
    importlib.import_module(f"fercurate.cli.{_module}").register(app)


def main() -> None:
    """Console-script entry point."""
    app()
