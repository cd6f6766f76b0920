# syntax=docker/dockerfile:1
# The image every component of a compiled pipeline runs: imgpipe compile --image IMAGE.
#   docker build -t IMAGE .
#   docker build -t IMAGE --build-arg WEIGHTS=build/demo/base_weights.h5 .  (baked-in weights)
# tensorflow/tfx:1.16.0 is TensorFlow's GPU Deep Learning Container (Python 3.10, CUDA) with
# TFX, and Beam's worker boot as its ENTRYPOINT: leave that entrypoint, so this image also
# serves as Dataflow's --sdk_container_image. Kubeflow and Vertex AI set their own command.
FROM tensorflow/tfx:1.16.0

# TF Transform 1.16 and the Trainer are Keras 2 (tf_keras). TFX's container entrypoint imports
# TensorFlow before any project module can make that choice, so it is made here.
# PYTHONPATH: the source tree below is importable as is, whatever the wheel's package list holds.
ENV TF_USE_LEGACY_KERAS=1 \
    PYTHONPATH=/opt/imgpipe \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /opt/imgpipe
COPY pyproject.toml README.md ./
COPY pipeline ./pipeline
COPY components ./components
COPY trainer ./trainer
COPY serving ./serving

# The base image holds TFX 1.16 and its stack; --no-deps keeps those versions (replacing Beam
# would leave the base's Beam worker boot, the ENTRYPOINT, on another version), and the check
# below proves they are the versions pyproject.toml pins and the tests ran on. The executors'
# runtime dependencies beyond TFX's: Pillow (the image ExampleGen reads image headers with it;
# DataAudit hashes images with it), faiss-cpu and cleanlab (DataAudit), pinned as pyproject.toml.
RUN pip install --no-deps . && pip install "pillow>=10" faiss-cpu==1.15.1 cleanlab==2.9.0

# So the build fails, in one line, when the base image's stack is not the one the tests ran on:
# these pins equal pyproject.toml's (tests/dockerfile_test.py checks they stay equal). The
# Trainer's CUDA is the base TensorFlow's build: 12.3 with cuDNN 8 for TF 2.16.
RUN python -c "import importlib.metadata as m, sys, tensorflow as tf; \
PINS = {'tfx': '1.16.0', 'apache-beam': '2.61.0', 'tensorflow': '2.16.2', 'tf-keras': '2.16.0', 'kfp': '2.5.0', 'kfp-pipeline-spec': '0.2.2', 'tensorflow-serving-api': '2.16.1'}; \
CUDA = '12.3'; \
bad = [f'{n} {m.version(n)} (pyproject.toml pins {v})' for n, v in PINS.items() if m.version(n) != v]; \
cuda = tf.sysconfig.get_build_info().get('cuda_version'); \
bad += [f'TensorFlow built for CUDA {cuda} (docs say {CUDA})'] if cuda != CUDA else []; \
sys.exit('imgpipe image: the base image has ' + '; '.join(bad) + '; change FROM or the pins together') if bad else None"

# Optional pretrained base weights, copied from the build context at build time, so no run ever
# downloads weights: compile with --weights /opt/imgpipe/weights/base.h5. Without WEIGHTS the
# folder stays empty and the pipeline needs --weights none or --weights imagenet.
ARG WEIGHTS=""
ARG WEIGHTS_SHA256=""
RUN --mount=type=bind,source=.,target=/context \
    mkdir -p /opt/imgpipe/weights && \
    if [ -n "$WEIGHTS" ]; then \
      cp "/context/$WEIGHTS" /opt/imgpipe/weights/base.h5 && \
      if [ -n "$WEIGHTS_SHA256" ]; then \
        echo "$WEIGHTS_SHA256  /opt/imgpipe/weights/base.h5" | sha256sum -c - ; \
      fi ; \
    fi

# A missing module fails the build here, not a pipeline run later: every executor, the Trainer's
# and Transform's modules, the gate's TFMA metric the Evaluator loads by module name, and the
# custom artifact type Kubeflow V2 imports by its TYPE_NAME.
RUN python -c "import components, trainer.run, trainer.transform; \
import components.image_example_gen.executor, components.data_validation.executor; \
import components.load_check.executor, components.serving_pusher.executor; \
import components.model_gate.paired; \
assert components.DataVerdict.TYPE_NAME == 'components.DataVerdict'"
