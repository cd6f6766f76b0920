"""The local run's stand-in for the backend's ML Metadata: artifacts, executions and the cache.

One JSON file under the pipeline root, kept across runs, so a second run finds the first run's
cached executions and its blessed model, as the backend's metadata store would. Resolver tasks'
queries are evaluated here: the two forms TFX's step builder compiles (tensorflow/tfx
`tfx/orchestration/kubeflow/v2/step_builder.py`, `_build_latest_artifact_resolver` and
`_build_resolver_for_latest_model_blessing` / `_build_resolver_for_latest_blessed_model`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import json_format

from pipeline.errors import UserError
from pipeline.kubeflow.local_run.executor_input import RuntimeArtifact, artifact_name

STORE_FILE = ".run-local/store.json"
# One clause of a resolver query, as step_builder.py writes them.
_CLAUSE = re.compile(r'(schema_title|name)="([^"]*)"|state=(LIVE)'
                     r'|metadata\.(\w+)\.(number_value|string_value)=("[^"]*"|[-0-9.]+)')
# The model resolver's filter names its input's metadata: name="{{$.inputs...metadata['k']}}".
_INPUT_METADATA = re.compile(r"\{\{\$\.inputs\.artifacts\['(\w+)'\]\.metadata\['(\w+)'\]\}\}")


def schema_title(artifact_type: dict[str, Any]) -> str:
    """`tfx.Model` from an ArtifactTypeSchema's `schemaTitle` or its instance schema's title."""
    if "schemaTitle" in artifact_type:
        return artifact_type["schemaTitle"]
    return (yaml.safe_load(artifact_type.get("instanceSchema") or "{}") or {}).get("title", "")


@dataclasses.dataclass
class Execution:
    """One task of one run: its state, cache key and output artifacts' ids by key."""

    run: str
    task: str
    state: str  # COMPLETE, CACHED, FAILED
    fingerprint: str
    outputs: dict[str, list[int]]
    seconds: float


class ArtifactStore:
    """Artifacts and executions of one pipeline root, read at start and written after each task."""

    def __init__(self, root: str, pipeline: str) -> None:
        self.path = Path(root) / STORE_FILE
        self.pipeline = pipeline
        self._data: dict[str, Any] = {"artifacts": [], "executions": []}
        if self.path.exists():
            try:
                self._data = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as error:
                raise UserError(f"the local run's store {self.path} is unreadable ({error}); "
                                "remove it to start over (runs then reuse nothing)") from None

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".partial")
        try:
            partial.write_text(json.dumps(self._data, indent=1, sort_keys=True),
                               encoding="utf-8")
        except OSError:
            partial.unlink(missing_ok=True)  # the store as it was is kept whole
            raise
        os.replace(partial, self.path)

    def reserve_id(self) -> int:
        """A new artifact id; Vertex AI registers an output before its task runs."""
        self._data["next_id"] = self._data.get("next_id", 1) + 1
        return self._data["next_id"] - 1

    def record_artifact(self, artifact_id: int, run: str, task: str, key: str,
                        artifact: RuntimeArtifact) -> None:
        """An output as the backend records it: LIVE, its URI, type and final metadata."""
        self._data["artifacts"].append({
            "id": artifact_id, "pipeline": self.pipeline, "run": run, "task": task, "key": key,
            "uri": artifact.uri, "state": "LIVE", "created": time.time(),
            "type": json_format.MessageToDict(artifact.type),
            "metadata": json_format.MessageToDict(artifact.metadata)})

    def artifact(self, artifact_id: int) -> dict[str, Any]:
        return next(a for a in self._data["artifacts"] if a["id"] == artifact_id)

    def runtime_artifact(self, backend: str, artifact_id: int) -> RuntimeArtifact:
        """metadata/converter.go toRuntimeArtifact: name, URI, type and all of its metadata."""
        record = self.artifact(artifact_id)
        artifact = RuntimeArtifact(name=artifact_name(backend, artifact_id), uri=record["uri"])
        json_format.ParseDict(record["type"], artifact.type)
        json_format.ParseDict(record["metadata"], artifact.metadata)
        return artifact

    def record_execution(self, execution: Execution) -> None:
        self._data["executions"].append({"pipeline": self.pipeline,
                                         **dataclasses.asdict(execution)})

    def cached(self, fingerprint: str) -> Execution | None:
        """The latest completed execution of this pipeline with this cache key.

        As KFP's cache (`GetExecutionCache(fingerprint, "pipeline/"+name, ...)`): scoped to the
        pipeline, a failed execution never serves.
        """
        for record in reversed(self._data["executions"]):
            if (record["pipeline"] == self.pipeline and record["fingerprint"] == fingerprint
                    and record["state"] == "COMPLETE"):
                fields = {f.name for f in dataclasses.fields(Execution)}
                return Execution(**{k: v for k, v in record.items() if k in fields})
        return None

    def query(self, backend: str, filter_: str, inputs: dict[str, RuntimeArtifact]
              ) -> int | None:
        """The latest LIVE artifact of this pipeline a resolver filter selects, or None.

        `inputs` are the resolver task's input artifacts, for the placeholders in its filter;
        a placeholder whose input is missing selects nothing (the upstream resolver found none).
        """
        def fill(match: re.Match) -> str:
            artifact = inputs.get(match.group(1))
            value = artifact.metadata.fields.get(match.group(2)) if artifact else None
            if value is None:
                raise LookupError
            return str(json_format.MessageToDict(value))

        try:
            filter_ = _INPUT_METADATA.sub(fill, filter_)
        except LookupError:
            return None
        checks = []
        for clause in filter_.split(" AND "):
            match = _CLAUSE.fullmatch(clause.strip())
            if not match:
                raise UserError(f"resolver filter clause {clause!r} is not one TFX compiles; the "
                                "local run evaluates schema_title, state, name and metadata "
                                "number or string values")
            checks.append(match)
        matches = [record for record in self._data["artifacts"]
                   if record["pipeline"] == self.pipeline
                   and all(_holds(backend, record, check) for check in checks)]
        return max(matches, key=lambda r: (r["created"], r["id"]))["id"] if matches else None


def _holds(backend: str, record: dict[str, Any], check: re.Match) -> bool:
    field, text, state, key, kind, value = check.groups()
    if field == "schema_title":
        return schema_title(record["type"]) == text
    if field == "name":
        return artifact_name(backend, record["id"]) == text
    if state:
        return record["state"] == state
    actual = record["metadata"].get(key)
    if kind == "number_value":
        return isinstance(actual, int | float) and actual == float(value)
    return isinstance(actual, str) and json.dumps(actual) == value
