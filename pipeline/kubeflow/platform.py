"""Kubeflow's platform spec: PVC mounts and the GPU node selector, written and checked.

A Kubeflow package is two YAML documents: the PipelineSpec and, when a step needs something of
Kubernetes, a PlatformSpec whose `platforms.kubernetes.deploymentSpec.executors` maps executor
labels to a `KubernetesExecutorConfig` (kfp-kubernetes' proto). What the backend does with it:
- its compiler reads each entry with a strict `protojson.Unmarshal` into that proto
  (backend/src/v2/compiler/argocompiler/spec_patch.go, `unmarshalKubernetesExecutorConfig`), so an
  unknown field refuses the run;
- it looks entries up by executor label only (backend/src/v2/compiler/visitor.go): an entry under
  any other key is silently ignored, and the step would run without its volume;
- its driver mounts each `pvcMount` by claim name and `mountPath` and fails without either
  (backend/src/v2/driver/k8s.go, `makeVolumeMountPatch`); Kubernetes names a claim as a DNS-1123
  subdomain and takes absolute mount paths only.
PVCs are mounted with the `constant` claim name: deprecated in kfp-kubernetes 2.x for
`pvcNameParameter` but still read by the newest driver, and the only form older backends (and the
kfp-kubernetes 1.0 proto this checks against) know.
"""

from __future__ import annotations

import dataclasses
import posixpath
import re
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import json_format
from kfp.kubernetes import kubernetes_executor_config_pb2

from pipeline.errors import UserError

KFP_COMPILER_SPEC_PATCH = ("kubeflow/pipelines backend/src/v2/compiler/argocompiler/"
                           "spec_patch.go")
KFP_VISITOR = "kubeflow/pipelines backend/src/v2/compiler/visitor.go"
KFP_DRIVER_K8S = "kubeflow/pipelines backend/src/v2/driver/k8s.go"
# Kubernetes object names (a PVC's too): a DNS-1123 subdomain, at most 253 characters.
DNS_1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
GKE_ACCELERATOR_LABEL = "cloud.google.com/gke-accelerator"


@dataclasses.dataclass(frozen=True)
class PvcMount:
    """A PersistentVolumeClaim mounted at `mount_path` in every step's container."""

    claim: str
    mount_path: str

    @classmethod
    def parse(cls, value: str) -> PvcMount:
        """`CLAIM:/mount/path`, as `--pvc` takes it; one clear line when it is not that."""
        claim, sep, mount_path = value.partition(":")
        if not sep or not claim or not mount_path:
            raise UserError(f"--pvc {value!r}: write CLAIM:/MOUNT/PATH, e.g. "
                            "--pvc images:/mnt/images")
        if len(claim) > 253 or not DNS_1123_SUBDOMAIN.fullmatch(claim):
            raise UserError(f"--pvc {value!r}: {claim!r} is not a Kubernetes claim name "
                            "(lowercase letters, digits, '-' and '.')")
        if not mount_path.startswith("/") or posixpath.normpath(mount_path) == "/":
            raise UserError(f"--pvc {value!r}: the mount path must be an absolute folder other "
                            "than /, e.g. /mnt/images")
        return cls(claim, posixpath.normpath(mount_path))

    def holds(self, path: str) -> bool:
        """Whether `path` (a path in the pod) lies under this mount."""
        normal = posixpath.normpath(path)
        return normal == self.mount_path or normal.startswith(self.mount_path + "/")


def check_mounts(mounts: tuple[PvcMount, ...]) -> None:
    """Refuses two claims at one mount path, or one mount path inside another."""
    for i, first in enumerate(mounts):
        for second in mounts[i + 1:]:
            if first.holds(second.mount_path) or second.holds(first.mount_path):
                raise UserError(f"--pvc {first.claim}:{first.mount_path} and "
                                f"{second.claim}:{second.mount_path} overlap; mount each claim "
                                "at its own folder")


def pod_path(flag: str, value: str, mounts: tuple[PvcMount, ...]) -> str | None:
    """`value` normalized when it is a path on one of the `mounts`; None when it is not a path."""
    if "://" in value:
        return None
    if value.startswith("/") and any(mount.holds(value) for mount in mounts):
        return posixpath.normpath(value)
    where = f" (mounted: {', '.join(m.mount_path for m in mounts)})" if mounts else ""
    raise UserError(f"{flag} {value} is a path on this machine, which the pipeline's pods cannot "
                    f"see{where}; copy it to a bucket (gsutil -m cp -r) and pass gs://BUCKET/..., "
                    "or mount a claim that holds it (--pvc CLAIM:/MOUNT/PATH, Kubeflow only), "
                    "see docs/kubeflow-vertex.md")


def build_platform(executor_labels: list[str], mounts: tuple[PvcMount, ...],
                   gpu_executor: str | None = None, gpu_type: str | None = None
                   ) -> dict[str, Any] | None:
    """The PlatformSpec document: every executor mounts `mounts`; `gpu_executor` gets a GKE node
    selector for `gpu_type`. None when there is nothing to say."""
    executors: dict[str, Any] = {}
    for label in executor_labels:
        config: dict[str, Any] = {}
        if mounts:
            config["pvcMount"] = [{"constant": m.claim, "mountPath": m.mount_path}
                                  for m in mounts]
        if label == gpu_executor and gpu_type:
            config["nodeSelector"] = {"labels": {GKE_ACCELERATOR_LABEL: gpu_type}}
        if config:
            executors[label] = config
    if not executors:
        return None
    return {"platforms": {"kubernetes": {"deploymentSpec": {"executors": executors}}}}


def read_platform(path: Path) -> dict[str, Any] | None:
    """The PlatformSpec document of a Kubeflow package (its second YAML document), if any."""
    documents = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    return documents[1] if len(documents) > 1 and isinstance(documents[1], dict) else None


def check_platform(path: Path, executor_labels: set[str]) -> None:
    """Refuses, in one line, a package whose platform spec the backend would refuse or ignore."""
    problems = platform_problems(read_platform(path), executor_labels)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise UserError(f"{path} is not a valid kubeflow pipeline: {problems[0]}{more}; "
                        "recompile it with 'imgpipe compile --target kubeflow'")


def platform_problems(platform: dict[str, Any] | None, executor_labels: set[str]) -> list[str]:
    """Why the backend would refuse or ignore a PlatformSpec document, one sentence each."""
    if platform is None:
        return []
    try:
        executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    except (KeyError, TypeError):
        return ["its platform spec has no platforms.kubernetes.deploymentSpec.executors"]
    problems = []
    for label, config in sorted(executors.items()):
        if label not in executor_labels:
            problems.append(f"its platform spec names executor {label!r}, which the pipeline "
                            f"does not have, so the backend ignores it ({KFP_VISITOR})")
            continue
        try:
            parsed = json_format.ParseDict(
                config, kubernetes_executor_config_pb2.KubernetesExecutorConfig())
        except json_format.ParseError as error:
            problems.append(f"executor {label}'s Kubernetes config is not a "
                            f"KubernetesExecutorConfig ({str(error).splitlines()[0]}) "
                            f"({KFP_COMPILER_SPEC_PATCH})")
            continue
        for mount in parsed.pvc_mount:
            claim = mount.constant
            if not claim or not mount.mount_path:
                problems.append(f"executor {label} mounts a volume without a claim name or "
                                f"mount path ({KFP_DRIVER_K8S})")
            elif not DNS_1123_SUBDOMAIN.fullmatch(claim) or not mount.mount_path.startswith("/"):
                problems.append(f"executor {label} mounts {claim!r} at {mount.mount_path!r}, "
                                "which Kubernetes refuses (a DNS-1123 claim name, an absolute "
                                f"path) ({KFP_DRIVER_K8S})")
    return problems
