"""`imgpipe compile`: the pipeline as a Kubeflow Pipelines (YAML) or Vertex AI (JSON) package."""

from __future__ import annotations

import dataclasses
import re
import shlex
from pathlib import Path

import click

from pipeline.cli.options import (
    Destination,
    build_pipeline_config,
    hparams_from_options,
    image_model_options,
    pipeline_options,
)
from pipeline.errors import UserError

# Vertex AI's pipeline-name pattern (aiplatform's _VALID_NAME_PATTERN); Kubeflow accepts it too.
REMOTE_MODEL_NAME = re.compile(r"[a-z][-a-z0-9]{0,127}")
LAYOUTS = {"classes": (False, False), "splits": (False, True), "spans": (True, False),
           "span-splits": (True, True)}  # name: (spans, given train/ and eval/ folders)


def is_local(uri: str) -> bool:
    """A path on this machine, as opposed to gs://, s3://, hdfs:// and other URIs."""
    return "://" not in uri


def cluster_uri(flag: str, value: str, local: bool = False) -> str:
    """A gs:// URI, the one remote scheme TensorFlow 2.16 in the image reads and writes.

    With `local` (compile --for-run-local) an absolute path on this machine instead: the package
    then runs only with `imgpipe kfp run-local`, which reads and writes this machine's files.
    """
    if local:
        if is_local(value):
            return str(Path(value).expanduser().resolve())
        raise UserError(f"{flag} {value}: --for-run-local takes a path on this machine (the "
                        "local run cannot reach a bucket); drop --for-run-local for gs://")
    scheme = value.split("://", 1)[0].lower() if not is_local(value) else ""
    if scheme == "gs" and value[len("gs://"):].strip("/"):
        return value.rstrip("/")
    if scheme:
        raise UserError(f"{flag} {value}: the image's TensorFlow 2.16 reads and writes gs:// "
                        f"only ({scheme}:// needs tensorflow-io, which the image lacks); use a "
                        "gs://BUCKET/... path")
    raise UserError(f"{flag} {value} is a path on this machine, which the pipeline's pods cannot "
                    "see; copy it to a bucket (gsutil -m cp -r) and pass gs://BUCKET/..., see "
                    "docs/kubeflow-vertex.md")


def pod_uri(flag: str, value: str, mounts: tuple) -> str:
    """A gs:// URI, or a path inside the pods under one of the `--pvc` mounts."""
    from pipeline.kubeflow.platform import pod_path

    return pod_path(flag, value, mounts) or cluster_uri(flag, value)


def beam_args(values: tuple[str, ...]) -> tuple[str, ...]:
    """`--beam-pipeline-args`, each a flag or a quoted string of flags, as one tuple."""
    args = tuple(arg for value in values for arg in shlex.split(value))
    wrong = [arg for arg in args if not arg.startswith("--")]
    if wrong:
        raise UserError(f"--beam-pipeline-args {wrong[0]!r} is not a Beam flag; write them as "
                        "--name=value, e.g. --beam-pipeline-args '--runner=DataflowRunner'")
    return args


def remote_weights(value: str) -> str:
    """'imagenet', 'none', or an absolute .h5 path inside the image (not checked here)."""
    if value in ("imagenet", "none"):
        return value
    if not is_local(value):
        raise UserError(f"--weights {value}: the Trainer loads weights from a local file; bake "
                        "the file into the image (docker build --build-arg WEIGHTS=...) and pass "
                        "its path there, /opt/imgpipe/weights/base.h5")
    if not value.startswith("/") or not value.lower().endswith(".h5"):
        raise UserError(f"--weights {value!r}: give the absolute path of the .h5 file inside "
                        "the image, e.g. /opt/imgpipe/weights/base.h5, or imagenet or none")
    return value


def class_names_and_layout(data: str, classes: str | None, layout: str | None
                           ) -> tuple[tuple[str, ...], tuple[bool, bool]]:
    """From `--classes`/`--layout`: the gs:// `--data` is not read on this machine."""
    if classes is not None:
        names = tuple(sorted({name.strip() for name in classes.split(",") if name.strip()}))
        if len(names) < 2:
            raise UserError(f"--classes {classes!r} needs at least two class names, e.g. "
                            "--classes cats,dogs")
        if layout is None:
            raise UserError("--classes skips reading the data, so give its --layout too: "
                            + ", ".join(LAYOUTS))
        return names, LAYOUTS[layout]
    raise UserError(f"--data {data} cannot be read here to find its classes; pass "
                    "--classes a,b and --layout (the folder names, as the data has them)")


@click.command("compile")
@click.option("--target", required=True, type=click.Choice(["kubeflow", "vertex"]),
              help="kubeflow: a YAML PipelineSpec, schema 2.1.0; vertex: a JSON PipelineJob, "
                   "schema 2.0.0.")
@click.option("--image", required=True,
              help="The container image every component runs (built from the Dockerfile).")
@click.option("--pipeline-root", required=True,
              help="Where runs write artifacts: gs://bucket/imgpipe/root (the image's "
                   "TensorFlow writes gs:// only).")
@click.option("--output", "output_file", required=True, type=click.Path(path_type=Path),
              help="The package to write: .yaml for kubeflow, .json for vertex.")
@click.option("--data", "data_uri", required=True,
              help="The images, as gs://bucket/images, or a folder on a claim given with --pvc "
                   "(a path on this machine is refused: the pods cannot see it).")
@click.option("--pvc", "pvc_values", multiple=True,
              help="Kubeflow only: mount a PersistentVolumeClaim in every step, CLAIM:/MOUNT/PATH "
                   "(repeatable); --data and --serving-dir may then be folders under it.")
@click.option("--classes", default=None,
              help="Class names a,b (gs:// --data is not read here; the Trainer takes the names "
                   "from the curated schema at run time).")
@click.option("--layout", type=click.Choice(list(LAYOUTS)), default=None,
              help="With --classes: DATA/<class>/, DATA/train|eval/<class>/, "
                   "DATA/span-<N>/<class>/ or DATA/span-<N>/train|eval/<class>/.")
@click.option("--serving-dir", default=None,
              help="TF Serving's base path, gs:// or under a --pvc mount; models go to "
                   "<dir>/<model-name>/<version> [default: PIPELINE_ROOT/serving].")
@click.option("--model-name", default="image-classifier", show_default=True,
              help="Pipeline and TF Serving model name (lowercase letters, digits, '-').")
@click.option("--beam-pipeline-args", "beam_values", multiple=True,
              help="Beam flags for ExampleGen, StatisticsGen, Transform and Evaluator; repeat it "
                   "or quote several, e.g. '--runner=DataflowRunner --region=europe-west4'.")
@click.option("--gpus", default=0, show_default=True, type=click.IntRange(0, 16),
              help="GPUs the Trainer asks for (0: none).")
@click.option("--gpu-type", default="nvidia-tesla-t4", show_default=True,
              help="The GPU model, in GKE's spelling.")
@click.option("--trainer-memory", default="16G", show_default=True,
              help="Memory of the Trainer, e.g. 32G: the limit, and on Kubeflow the request too.")
@click.option("--trainer-cpus", default=4.0, show_default=True,
              type=click.FloatRange(0, min_open=True),
              help="vCPUs of the Trainer: the limit, and on Kubeflow the request too.")
@click.option("--beam-memory", default="8G", show_default=True,
              help="Memory of each Beam step (ExampleGen, StatisticsGen, Transform, Evaluator): "
                   "the limit, and on Kubeflow the request too.")
@click.option("--beam-cpus", default=2.0, show_default=True,
              type=click.FloatRange(0, min_open=True),
              help="vCPUs of each Beam step: the limit, and on Kubeflow the request too.")
@click.option("--for-run-local", is_flag=True,
              help="Paths on this machine for --data, --pipeline-root and --serving-dir: a "
                   "package to test with 'imgpipe kfp run-local' only (no cluster sees them).")
@image_model_options
@pipeline_options
def compile_pipeline(target: str, image: str, pipeline_root: str,
                     output_file: Path, data_uri: str, pvc_values: tuple[str, ...],
                     classes: str | None, layout: str | None,
                     serving_dir: str | None, model_name: str, beam_values: tuple[str, ...],
                     gpus: int, gpu_type: str, trainer_memory: str, trainer_cpus: float,
                     beam_memory: str, beam_cpus: float, for_run_local: bool,
                     weights: str | None, **options) -> None:
    """Compile the pipeline for Kubeflow Pipelines or Vertex AI, and check the package."""
    if not REMOTE_MODEL_NAME.fullmatch(model_name):
        raise UserError(f"--model-name {model_name!r}: Vertex AI and Kubeflow pipeline names are "
                        "lowercase letters, digits and '-', starting with a letter")
    if weights is None:
        raise UserError("compile needs --weights: the path of the .h5 file baked into the image "
                        "(/opt/imgpipe/weights/base.h5), none, or imagenet (downloaded by the "
                        "Trainer at run time)")
    weights = remote_weights(weights)
    if not image.strip() or any(c.isspace() for c in image):
        raise UserError(f"--image {image!r} is not an image reference, e.g. "
                        "europe-docker.pkg.dev/PROJECT/imgpipe/imgpipe:1")
    from pipeline.kubeflow.platform import PvcMount, check_mounts

    if pvc_values and target != "kubeflow":
        raise UserError("--pvc is for --target kubeflow: Vertex AI steps mount no Kubernetes "
                        "volumes; give --data as gs://BUCKET/... (see docs/kubeflow-vertex.md)")
    mounts = tuple(PvcMount.parse(value) for value in pvc_values)
    check_mounts(mounts)
    # The root stays gs://, never a PVC path: KFP's object store takes gs://, s3://, minio://
    # roots only (kubeflow/pipelines backend/src/v2/objectstore/config.go, ParseBucketPathToConfig).
    pipeline_root = cluster_uri("--pipeline-root", pipeline_root, for_run_local)
    if for_run_local:  # every path on this machine, for imgpipe kfp run-local
        data_uri = cluster_uri("--data", data_uri, for_run_local)
        if serving_dir is not None:
            serving_dir = cluster_uri("--serving-dir", serving_dir, for_run_local)
    else:
        data_uri = pod_uri("--data", data_uri, mounts)
        if serving_dir is not None:
            serving_dir = pod_uri("--serving-dir", serving_dir, mounts)
    names, (spans, given_splits) = class_names_and_layout(data_uri, classes, layout)
    if target == "kubeflow" and spans:
        raise UserError("--target kubeflow cannot read span-<N> folders: Kubeflow Pipelines "
                        "does not run TFX's ExampleGen driver, which picks the span; use "
                        "--target vertex, or give Kubeflow a folder without spans")
    hparams = hparams_from_options(names, weights, options)
    # A Trainer promised GPUs refuses to train on the CPU (trainer/devices.py, GpuMissingError).
    hparams = dataclasses.replace(hparams, devices=dataclasses.replace(hparams.devices,
                                                                        require_gpus=gpus))
    from pipeline.kubeflow.spec import StepResources, normalize_gpu_type, parse_memory_gb

    resources = StepResources(gpus=gpus, gpu_type=normalize_gpu_type(gpu_type),
                              memory_gb=parse_memory_gb(trainer_memory), cpus=trainer_cpus)
    beam_resources = StepResources(memory_gb=parse_memory_gb(beam_memory, "--beam-memory"),
                                   cpus=beam_cpus)
    args = beam_args(beam_values)

    from pipeline.kubeflow.compile import RemotePaths, RemoteTarget, compile_package

    data_root = data_uri
    paths = RemotePaths(pipeline_root.rstrip("/"), serving_dir)
    destination = Destination(pipeline_name=model_name, pipeline_root=paths.pipeline_root,
                              data_root=data_root,
                              serving_model_dir=paths.serving_model_dir(model_name))
    config = build_pipeline_config(destination, hparams, options, spans=spans,
                                   given_splits=given_splits, beam_pipeline_args=args)
    package = compile_package(config, RemoteTarget(target, image, resources, beam_resources,
                                                   mounts), output_file)
    click.echo(f"wrote {package.path}: {package.task_count} tasks for {target}, image {image}, "
               f"classes {', '.join(names)}")
    click.echo(f"pipeline root {config.pipeline_root}; models pushed to "
               f"{config.serving_model_dir}")
    for change in package.changes:
        click.echo(f"for kubeflow: {change}")
    if for_run_local:
        click.echo(f"paths on this machine: run it with 'imgpipe kfp run-local {package.path}'; "
                   "recompile without --for-run-local for a cluster")
