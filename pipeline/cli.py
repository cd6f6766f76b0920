"""`imgpipe`: the command-line tool.

Heavy modules (TensorFlow, TFX) are imported inside the commands that need them, so `--help` and
argument errors answer at once.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import click

from pipeline.errors import UserError

MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Train, validate and push image classifiers with TFX, by transfer learning."""


@cli.command("sample-data")
@click.argument("out", type=click.Path(path_type=Path, file_okay=False))
@click.option("--classes", default=2, show_default=True, type=click.IntRange(2, 8),
              help="How many classes (shapes), taken in order from the list of shapes.")
@click.option("--shapes", default=None,
              help="Comma-separated shape names instead of --classes, e.g. triangle,cross.")
@click.option("--per-class", default=100, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--size", default=150, show_default=True, type=click.IntRange(16, 4096),
              help="Image width and height in pixels.")
@click.option("--seed", default=0, show_default=True, type=int)
def sample_data(out: Path, classes: int, shapes: str | None, per_class: int, size: int,
                seed: int) -> None:
    """Write a deterministic synthetic dataset: OUT/<shape>/*.jpg|png."""
    from pipeline.sample_data import SHAPES, write_sample_data

    names = tuple(s.strip() for s in shapes.split(",")) if shapes else SHAPES[:classes]
    unknown = [n for n in names if n not in SHAPES]
    if unknown:
        raise UserError(f"unknown shape(s) {', '.join(unknown)} in --shapes; "
                        f"choose from {', '.join(SHAPES)}")
    if len(set(names)) < 2:
        raise UserError("--shapes needs at least two different shapes")
    report = write_sample_data(out, names, per_class, size, seed)
    click.echo(f"wrote {report.jpeg_files} JPEG and {report.png_files} PNG images of "
               f"{size}x{size} px in {len(names)} classes ({', '.join(names)}) to {out}")


@cli.command("pretrain-base")
@click.option("--data", "data_dir", required=True, type=click.Path(path_type=Path),
              help="Source dataset: a folder of class folders.")
@click.option("--output", "weights_path", required=True, type=click.Path(path_type=Path),
              help="Weights file to write (.h5).")
@click.option("--image-size", default=150, show_default=True, type=click.IntRange(75, 1024))
@click.option("--epochs", default=10, show_default=True, type=click.IntRange(1, 1000))
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(1, 4096))
@click.option("--cut-layer", default="mixed7", show_default=True)
def pretrain_base(data_dir: Path, weights_path: Path, image_size: int, epochs: int,
                  batch_size: int, cut_layer: str) -> None:
    """Pretrain InceptionV3 on a source dataset into a no-top weights file (ImageNet's stand-in)."""
    from pipeline.dataset import scan_dataset

    if weights_path.suffix.lower() != ".h5":
        raise UserError(f"--output {weights_path} must end in .h5 (Keras' HDF5 weights format)")
    scan = scan_dataset(data_dir)
    from trainer.pretrain import pretrain_base as run_pretraining

    click.echo(f"pretraining InceptionV3 up to {cut_layer} on {scan.image_count} images in "
               f"{len(scan.class_names)} classes at {image_size} px for {epochs} epochs")
    result = run_pretraining(data_dir, weights_path, image_size, epochs, batch_size, cut_layer)
    click.echo(f"source-task validation accuracy {result.val_accuracy:.3f} on "
               f"{result.val_images} images; wrote {result.weights_path}")


def _quiet_tensorflow() -> None:
    """TensorFlow's C++ start-up chatter and known-harmless warnings stay out of the terminal."""
    import warnings

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=UserWarning)


def main() -> None:
    """Console entry point: user errors are one line on stderr and exit code 2."""
    _quiet_tensorflow()
    from pipeline.compile_command import compile_pipeline  # noqa: F401  (`imgpipe compile`)
    from pipeline.inspect_command import inspect_model  # noqa: F401  (`imgpipe inspect-model`)
    from pipeline.kfp_commands import kfp_group  # noqa: F401  (kfp submit|schedule, vertex)
    from pipeline.run_command import run  # noqa: F401  (registers `imgpipe run`)
    from pipeline.schedule import schedule  # noqa: F401  (`imgpipe schedule`)
    from pipeline.serve_command import serve  # noqa: F401  (`imgpipe serve`, `serving-config`)
    from pipeline.serving_commands import predict  # noqa: F401  (`imgpipe predict`, `status`)
    from pipeline.tensorboard_command import tensorboard  # noqa: F401  (`imgpipe tensorboard`)

    try:
        code = cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("imgpipe: aborted", err=True)
        code = 130
    except click.ClickException as error:
        click.echo(f"imgpipe: error: {error.format_message()}", err=True)
        code = 2
    except UserError as error:
        click.echo(f"imgpipe: error: {error}", err=True)
        code = 2
    sys.stdout.flush()
    sys.stderr.flush()
    if "tensorflow" in sys.modules:
        # TensorFlow's function objects print "Exception ignored in ... __del__" when the
        # interpreter tears them down; everything has been written, so leave without teardown.
        os._exit(code if isinstance(code, int) else 0)
    sys.exit(code if isinstance(code, int) else 0)
