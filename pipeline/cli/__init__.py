"""`imgpipe`: the command-line tool.

Commands are loaded lazily (`LazyGroup`), one module per command group, and import TensorFlow
and TFX inside their bodies, so `--help` and argument errors answer at once.
"""

from __future__ import annotations

import os
import sys

import click

from pipeline.cli.lazy import LazyGroup
from pipeline.errors import UserError

COMMANDS = {
    "sample-data": "pipeline.cli.data:sample_data",
    "pretrain-base": "pipeline.cli.data:pretrain_base",
    "run": "pipeline.cli.run:run",
    "compile": "pipeline.cli.compile:compile_pipeline",
    "schedule": "pipeline.cli.schedule:schedule",
    "kfp": "pipeline.cli.kfp:kfp_group",
    "vertex": "pipeline.cli.kfp:vertex_group",
    "serve": "pipeline.cli.serve:serve",
    "serving-config": "pipeline.cli.serve:serving_config",
    "predict": "pipeline.cli.client:predict",
    "status": "pipeline.cli.client:status",
    "inspect-model": "pipeline.cli.inspect:inspect_model",
    "tensorboard": "pipeline.cli.tensorboard:tensorboard",
}


@click.group(cls=LazyGroup, lazy_subcommands=COMMANDS,
             context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Train, validate and push image classifiers with TFX, by transfer learning."""


def _prepare_environment() -> None:
    """Keras 2 for TensorFlow, and its start-up chatter and known-harmless warnings kept quiet.

    TF Transform 1.16 and the Trainer are Keras 2 (`tf_keras`); TensorFlow picks the Keras it
    exposes as `tf.keras` from TF_USE_LEGACY_KERAS, so it is set before any command imports it.
    """
    import warnings

    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=UserWarning)


def _command_name() -> str:
    """The command as typed, without its options: "sample-data", "kfp run-local"."""
    words = sys.argv[1:3]
    if words and words[0] in ("kfp", "vertex") and len(words) == 2 \
            and not words[1].startswith("-"):
        return " ".join(words)
    return words[0] if words else "command"


def main() -> None:
    """Console entry point: user errors are one line on stderr and exit code 2."""
    _prepare_environment()
    try:
        code = cli.main(standalone_mode=False)
    except click.exceptions.Abort as abort:
        # Ctrl-C (SIGINT), or SIGTERM/SIGHUP during a run (pipeline.local.interrupt.Stopped).
        cause = abort.__cause__ or abort.__context__
        name, code = getattr(cause, "signal_name", "SIGINT"), getattr(cause, "exit_code", 130)
        note = getattr(cause, "note", "")
        click.echo(f"imgpipe: stopped by {name}{'; ' + note if note else ''}", err=True)
    except click.ClickException as error:
        click.echo(f"imgpipe: error: {error.format_message()}", err=True)
        code = 2
    except UserError as error:
        click.echo(f"imgpipe: error: {error}", err=True)
        code = 2
    except Exception as error:
        from pipeline.local.disk_space import command_disk_full_error, is_disk_full

        if not is_disk_full(error):
            raise
        click.echo(f"imgpipe: error: {command_disk_full_error(error, _command_name())}",
                   err=True)
        code = 2
    sys.stdout.flush()
    sys.stderr.flush()
    if "tensorflow" in sys.modules:
        # TensorFlow's function objects print "Exception ignored in ... __del__" when the
        # interpreter tears them down; everything has been written, so leave without teardown.
        os._exit(code if isinstance(code, int) else 0)
    sys.exit(code if isinstance(code, int) else 0)
