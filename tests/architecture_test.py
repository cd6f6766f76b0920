"""The house rules, read from the source's syntax tree: who may import whom, and how a value is
checked against a pattern (docs/development.md).

Each rule names the files that break it, so a change that breaks one says where.
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("pipeline", "components", "trainer", "serving", "benchmarks")
OURS = PACKAGES
# The ways of starting that choose Keras 2 before TensorFlow loads: the CLI's entry point, the
# module files TFX loads itself, the load check's child process, and the benchmarks.
LEGACY_KERAS_SETTERS = {"pipeline/cli/__init__.py", "trainer/run.py", "trainer/transform.py",
                        "trainer/tune.py",
                        "components/load_check/probe.py", "benchmarks/__init__.py",
                        "pipeline/kubeflow/local_run/runner.py"}
# pipeline/'s rooms, and which others each may import (the core: config, pipeline, errors).
PIPELINE_ROOMS = {
    "core": set(),
    "kubeflow": {"core"},
    "results": {"core", "local.layout"},
    "local": {"core", "results"},
    "cli": {"core", "local", "results", "kubeflow", "cli"},
}


@dataclasses.dataclass(frozen=True)
class Import:
    """One import in one file: the module imported from, and the names taken from it."""

    path: str  # relative to the repository, e.g. "pipeline/cli/run.py"
    module: str  # absolute, e.g. "trainer.contract"
    names: tuple[str, ...]  # for `from module import a, b`; () for `import module`
    line: int

    def targets(self) -> list[str]:
        """Every dotted name this import may refer to: the module, and module.name for each."""
        return [self.module, *(f"{self.module}.{name}" for name in self.names)]


def _module_of(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources() -> dict[str, ast.Module]:
    trees = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            trees[path.relative_to(ROOT).as_posix()] = ast.parse(path.read_text(), str(path))
    return trees


SOURCES = _sources()


def _imports() -> list[Import]:
    found = []
    for rel, tree in SOURCES.items():
        package = _module_of(ROOT / rel)
        if not rel.endswith("__init__.py"):
            package = package.rpartition(".")[0]
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found += [Import(rel, alias.name, (), node.lineno) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                module = node.module or ""
                if node.level:  # relative: resolve against this file's package
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    module = ".".join([*base, module] if module else base)
                names = tuple(alias.name for alias in node.names)
                found.append(Import(rel, module, names, node.lineno))
    return [i for i in found if i.module.split(".")[0] in OURS]


IMPORTS = _imports()


def _where(imports: list[Import]) -> list[str]:
    return [f"{i.path}:{i.line} imports {i.module} {list(i.names) or ''}".rstrip()
            for i in imports]


def test_the_sources_are_found_and_parsed():
    assert {"pipeline/cli/__init__.py", "trainer/contract.py", "serving/layout.py",
            "components/serving_pusher/executor.py"} <= set(SOURCES)
    assert any(i.module == "trainer.contract" for i in IMPORTS)


def test_trainer_imports_nothing_of_ours_but_itself():
    wrong = [i for i in IMPORTS if i.path.startswith("trainer/")
             and i.module.split(".")[0] != "trainer"]
    assert not wrong, _where(wrong)


def _trainer_modules(imp: Import) -> set[str]:
    """The trainer modules an import reaches: `from trainer import contract` reaches contract."""
    if imp.module == "trainer":
        return {f"trainer.{name}" for name in imp.names}
    return {".".join(imp.module.split(".")[:2])}


def test_components_and_serving_take_only_the_contract_from_the_trainer():
    wrong = [i for i in IMPORTS if i.path.split("/")[0] in ("components", "serving")
             and i.module.split(".")[0] == "trainer"
             and _trainer_modules(i) != {"trainer.contract"}]
    assert not wrong, _where(wrong)


def test_components_and_serving_stay_out_of_the_pipeline_and_each_other():
    allowed = {("components/serving_pusher/", "serving.layout")}  # the pusher writes the layout
    wrong = []
    for i in IMPORTS:
        room, top = i.path.split("/")[0], i.module.split(".")[0]
        if room == "serving" and top in ("pipeline", "components", "benchmarks"):
            wrong.append(i)
        elif room == "components" and top in ("pipeline", "serving", "benchmarks") and not any(
                i.path.startswith(p) and i.module == m for p, m in allowed):
            wrong.append(i)
    assert not wrong, _where(wrong)


def test_the_serving_client_does_not_import_the_server():
    wrong = [i for i in IMPORTS if i.path.startswith("serving/client/")
             and any(t.startswith("serving.server") for t in i.targets())]
    assert not wrong, _where(wrong)


def test_nothing_outside_the_cli_imports_it():
    wrong = [i for i in IMPORTS if not i.path.startswith("pipeline/cli/")
             and any(t == "pipeline.cli" or t.startswith("pipeline.cli.") for t in i.targets())]
    assert not wrong, _where(wrong)


def _room(module: str) -> str | None:
    """The pipeline room of `pipeline.x.y`: core, local, results, kubeflow or cli."""
    parts = module.split(".")
    if parts[0] != "pipeline":
        return None
    if len(parts) == 1 or parts[1] in ("config", "pipeline", "errors"):
        return "core"
    return parts[1]


def test_the_pipeline_rooms_import_downward_only():
    wrong = []
    for i in IMPORTS:
        here = _room(_module_of(ROOT / i.path))
        if here is None:
            continue
        for target in i.targets():
            there = _room(target)
            if there is None or there == here:
                continue
            allowed = PIPELINE_ROOMS[here]
            if there not in allowed and not any(
                    target == f"pipeline.{a}" or target.startswith(f"pipeline.{a}.")
                    for a in allowed if "." in a):
                wrong.append(i)
                break
    assert not wrong, _where(wrong)


def _module_names(tree: ast.Module) -> set[str]:
    """Names bound in a file to a module of ours: `import a.b as m`, `from a import b`."""
    bound = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in OURS:
                    bound.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in OURS:
            for alias in node.names:
                if (ROOT / (node.module or "").replace(".", "/") / f"{alias.name}.py").exists() \
                        or (ROOT / (node.module or "").replace(".", "/") / alias.name).is_dir():
                    bound.add(alias.asname or alias.name)
    return bound


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_no_module_imports_or_reaches_into_another_modules_private_names():
    wrong = [f"{i.path}:{i.line} imports {name} from {i.module}" for i in IMPORTS
             for name in i.names if _private(name)]
    for rel, tree in SOURCES.items():
        modules = _module_names(tree)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and _private(node.attr)
                    and isinstance(node.value, ast.Name) and node.value.id in modules):
                wrong.append(f"{rel}:{node.lineno} uses {node.value.id}.{node.attr}")
    assert not wrong, wrong


def test_keras_2_is_chosen_only_where_a_process_starts():
    setters = {rel for rel, tree in SOURCES.items() for node in ast.walk(tree)
               if isinstance(node, ast.Constant) and node.value == "TF_USE_LEGACY_KERAS"}
    assert setters == LEGACY_KERAS_SETTERS
    side_effect_imports = [i for i in IMPORTS if i.module == "trainer" and not i.names]
    assert not side_effect_imports, _where(side_effect_imports)


def test_the_contract_imports_no_tensorflow():
    tree = SOURCES["trainer/contract.py"]
    modules = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
               for alias in node.names}
    modules |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert modules <= {"__future__", "logging"}, modules


def _patterns(tree: ast.Module) -> list[tuple[int, str]]:
    """(line, pattern) of every literal pattern given to `re.compile/match/search/fullmatch`."""
    found = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "re"
                and node.func.attr in ("compile", "match", "search", "fullmatch") and node.args
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.append((node.lineno, node.args[0].value))
    return found


def test_no_pattern_is_anchored_with_a_dollar_that_lets_a_trailing_newline_through():
    # `$` also matches before a final newline, so `^name$` with `.match` accepts "clf\n";
    # a whole value is checked with `.fullmatch` (or `\Z`).
    anchored = [f"{path}:{line} {pattern!r}" for path, tree in SOURCES.items()
                for line, pattern in _patterns(tree)
                if pattern.endswith("$") and not pattern.endswith("\\$")]
    assert anchored == []
    assert _patterns(ast.parse('import re\nre.compile(r"^a$")')) == [(2, "^a$")]


def _prefix_matches(trees: dict[str, ast.Module]) -> list[str]:
    """`NAME.match(...)` calls where NAME is a module-level pattern not anchored with '^'."""
    unanchored = {target.id for tree in trees.values() for node in tree.body
                  if isinstance(node, ast.Assign) and len(node.targets) == 1
                  and isinstance(target := node.targets[0], ast.Name)
                  and any(pattern and not pattern.startswith("^")
                          for _, pattern in _patterns(ast.Module([node], [])))}
    return [f"{path}:{node.lineno} {node.func.value.id}.match"
            for path, tree in trees.items() for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == "match" and isinstance(node.func.value, ast.Name)
            and node.func.value.id in unanchored]


def test_a_pattern_written_for_fullmatch_is_not_read_with_match():
    # Patterns for whole values are written without '^...$' and read with `.fullmatch`;
    # `.match` would accept any value that merely starts like one.
    assert _prefix_matches(SOURCES) == []
    example = ast.parse('import re\nNAME = re.compile(r"[a-z]+")\nNAME.match(x)')
    assert _prefix_matches({"example.py": example}) == ["example.py:3 NAME.match"]
