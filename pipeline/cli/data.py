"""`imgpipe sample-data` and `pretrain-base`: a synthetic dataset, and base weights made here."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.cli.options import INPUT_SCALING_CHOICES
from pipeline.errors import UserError


@click.command("sample-data")
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
    from pipeline.local.sample_data import SHAPES, write_sample_data

    names = tuple(s.strip() for s in shapes.split(",")) if shapes else SHAPES[:classes]
    unknown = [n for n in names if n not in SHAPES]
    if unknown:
        raise UserError(f"unknown shape(s) {', '.join(unknown)} in --shapes; "
                        f"choose from {', '.join(SHAPES)}")
    if len(set(names)) < 2:
        raise UserError("--shapes needs at least two different shapes")
    try:
        report = write_sample_data(out, names, per_class, size, seed)
    except OSError as error:
        from pipeline.local.disk_space import command_disk_full_error, is_disk_full

        if not is_disk_full(error):
            raise
        raise command_disk_full_error(error, "sample-data", out, f"run the same command again: "
                                      f"{out} holds part of the images, which it rewrites "
                                      "whole") from None
    click.echo(f"wrote {report.jpeg_files} JPEG and {report.png_files} PNG images of "
               f"{size}x{size} px in {len(names)} classes ({', '.join(names)}) to {out}")


@click.command("pretrain-base")
@click.option("--data", "data_dir", required=True, type=click.Path(path_type=Path),
              help="Source dataset: a folder of class folders.")
@click.option("--output", "weights_path", required=True, type=click.Path(path_type=Path),
              help="Weights file to write (.h5).")
@click.option("--image-size", default=150, show_default=True, type=click.IntRange(75, 1024))
@click.option("--epochs", default=10, show_default=True, type=click.IntRange(1, 1000))
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(1, 4096))
@click.option("--cut-layer", default="mixed7", show_default=True)
@click.option("--input-scaling", default="inception", show_default=True,
              type=click.Choice(INPUT_SCALING_CHOICES[1:]),
              help="How the images are fed while pretraining (see `run --input-scaling`); "
                   "recorded in the .h5 file, so `run` feeds the base the same way.")
def pretrain_base(data_dir: Path, weights_path: Path, image_size: int, epochs: int,
                  batch_size: int, cut_layer: str, input_scaling: str) -> None:
    """Pretrain InceptionV3 on a source dataset into a no-top weights file (ImageNet's stand-in)."""
    from pipeline.local.dataset import scan_dataset

    if weights_path.suffix.lower() != ".h5":
        raise UserError(f"--output {weights_path} must end in .h5 (Keras' HDF5 weights format)")
    scan = scan_dataset(data_dir)
    from trainer.tools.pretrain import pretrain_base as run_pretraining

    click.echo(f"pretraining InceptionV3 up to {cut_layer} on {scan.image_count} images in "
               f"{len(scan.class_names)} classes at {image_size} px for {epochs} epochs, fed "
               f"under input scaling {input_scaling}")
    result = run_pretraining(data_dir, weights_path, image_size, epochs, batch_size, cut_layer,
                             input_scaling=input_scaling)
    click.echo(f"source-task validation accuracy {result.val_accuracy:.3f} on "
               f"{result.val_images} images; wrote {result.weights_path} (input scaling "
               f"{result.input_scaling} recorded in it)")
