"""The AWS API calls a Lambda handler can reach, found by reading its code.

Starting from every function of `lambdas/<module>.py`, names are followed through
petal's and the handlers' own modules (imports, module attributes, classes), and every
boto3 client method call on the way is collected: `ec2.run_instances(...)`,
`ec2.get_paginator("describe_snapshots")`, `ec2.get_waiter("snapshot_completed")`,
DynamoDB Table methods. botocore's service models (installed, offline) turn method
names into IAM actions.

It over-approximates (a function that is referenced counts as called), which is what a
permission check wants: a call that can happen must be allowed.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import botocore.session
from botocore import xform_name
from botocore.exceptions import DataNotFoundError

from tests.infra.conftest import REPO_ROOT

# botocore service name -> IAM service prefix, for the services petal talks to.
SERVICES = {
    "ec2": "ec2",
    "ssm": "ssm",
    "stepfunctions": "states",
    "dynamodb": "dynamodb",
    "s3": "s3",
    "logs": "logs",
    "sts": "sts",
    "kms": "kms",
    "iam": "iam",
}
LOCAL_PACKAGES = ("lambdas", "petal")
# boto3 conveniences that are not operations of the service model.
EXTRA_METHODS = {
    "batch_writer": {"dynamodb:BatchWriteItem"},
    "download_file": {"s3:GetObject"},
    "upload_file": {"s3:PutObject"},
}
# Client helpers whose first argument names an operation or a waiter.
OPERATION_ARGUMENT = {"get_paginator", "can_paginate"}
WAITER_ARGUMENT = {"get_waiter"}
# Methods Python calls implicitly once a class is in use.
SPECIAL_METHODS = (
    "__init__",
    "__post_init__",
    "__enter__",
    "__exit__",
    "__call__",
    "__iter__",
    "__next__",
    "__str__",
)
# What AWS also authorises when a call is made (tag-on-create, role passing).
_EBS_KMS = {
    "kms:DescribeKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:Decrypt",
    "kms:CreateGrant",
}
IMPLIED: dict[str, set[str]] = {
    # The root volume is encrypted with the default EBS key, customer managed or not.
    "ec2:RunInstances": {"ec2:CreateTags", "iam:PassRole", *_EBS_KMS},
    # With a customer managed key, EBS uses it on the caller's behalf.
    "ec2:CreateVolume": {"ec2:CreateTags", *_EBS_KMS},
    "ec2:AttachVolume": _EBS_KMS,
    "ec2:CreateSnapshot": {"ec2:CreateTags"},
    "ec2:CopySnapshot": {"ec2:CreateTags"},
    # GetObject with a VersionId is authorised as GetObjectVersion.
    "s3:GetObject": {"s3:GetObjectVersion"},
}


@cache
def _session() -> botocore.session.Session:
    return botocore.session.get_session()


@cache
def operation_index() -> dict[str, frozenset[str]]:
    """Client method name -> IAM actions it may be (a name can exist in two services)."""
    index: dict[str, set[str]] = defaultdict(set)
    for service, prefix in SERVICES.items():
        model = _session().get_service_model(service)
        for operation in model.operation_names:
            index[xform_name(operation)].add(f"{prefix}:{operation}")
    for name, actions in EXTRA_METHODS.items():
        index[name].update(actions)
    return {k: frozenset(v) for k, v in index.items()}


@cache
def waiter_index() -> dict[str, frozenset[str]]:
    index: dict[str, set[str]] = defaultdict(set)
    for service, prefix in SERVICES.items():
        try:
            model = _session().get_waiter_model(service)
        except DataNotFoundError:
            continue
        for name in model.waiter_names:
            operation = model.get_waiter(name).operation
            index[xform_name(name)].add(f"{prefix}:{operation}")
    return {k: frozenset(v) for k, v in index.items()}


def module_path(module: str) -> Path | None:
    base = REPO_ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def is_local(module: str) -> bool:
    return module.split(".")[0] in LOCAL_PACKAGES


@dataclass
class ModuleInfo:
    name: str
    tree: ast.Module
    # local alias -> (module, attribute or None for the module itself)
    imports: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    definitions: dict[str, ast.AST] = field(default_factory=dict)
    # class name -> method name -> definition
    methods: dict[str, dict[str, ast.AST]] = field(default_factory=dict)
    init: list[ast.stmt] = field(default_factory=list)


@cache
def load(module: str) -> ModuleInfo | None:
    path = module_path(module)
    if path is None:
        return None
    info = ModuleInfo(module, ast.parse(path.read_text(), str(path)))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in info.tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            info.definitions[node.name] = node
            if isinstance(node, ast.ClassDef):
                info.methods[node.name] = {
                    item.name: item
                    for item in node.body
                    if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
                }
        else:
            info.init.append(node)
    for found in ast.walk(info.tree):
        if isinstance(found, ast.Import):
            for alias in found.names:
                if is_local(alias.name):
                    if alias.asname:
                        info.imports[alias.asname] = (alias.name, None)
                    else:
                        top = alias.name.split(".")[0]
                        info.imports[top] = (top, None)
        elif isinstance(found, ast.ImportFrom):
            source = found.module or ""
            if found.level:
                parts = package.split(".")[: len(package.split(".")) - found.level + 1]
                source = ".".join([*parts, *([source] if source else [])])
            if not is_local(source):
                continue
            for alias in found.names:
                target = alias.asname or alias.name
                submodule = f"{source}.{alias.name}"
                if module_path(submodule):
                    info.imports[target] = (submodule, None)
                else:
                    info.imports[target] = (source, alias.name)
    return info


@dataclass
class Reach:
    calls: dict[str, frozenset[str]] = field(default_factory=dict)
    seen: set[tuple[str, str]] = field(default_factory=set)
    # Attribute names used anywhere in reached code, and the classes reached: a method
    # counts as reached when its class is and its name is used (`table.put_build()`).
    attributes: set[str] = field(default_factory=set)
    classes: set[tuple[str, str]] = field(default_factory=set)
    modules: set[str] = field(default_factory=set)


def _resolve_attribute(info: ModuleInfo, node: ast.Attribute) -> tuple[str, str] | None:
    """`mod.name` where `mod` is a local module alias -> (module, name)."""
    chain: list[str] = [node.attr]
    value: ast.expr = node.value
    while isinstance(value, ast.Attribute):
        chain.append(value.attr)
        value = value.value
    if not isinstance(value, ast.Name) or value.id not in info.imports:
        return None
    module, attr = info.imports[value.id]
    if attr is not None:
        return None
    parts = list(reversed(chain))
    # `petal.aws.ec2_builder.run_builder` via `import petal`: walk down submodules.
    while len(parts) > 1 and module_path(f"{module}.{parts[0]}"):
        module = f"{module}.{parts.pop(0)}"
    return module, parts[0]


def _visit(
    reach: Reach, module: str, nodes: Iterable[ast.AST], queue: list[tuple[str, str]]
) -> None:
    info = load(module)
    assert info is not None
    operations = operation_index()
    for root in nodes:
        for node in ast.walk(root):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                if node.id in info.imports:
                    target_module, attr = info.imports[node.id]
                    if attr is not None:
                        queue.append((target_module, attr))
                elif node.id in info.definitions:
                    queue.append((module, node.id))
            elif isinstance(node, ast.Attribute):
                local = _resolve_attribute(info, node)
                if local:
                    queue.append(local)
                else:
                    reach.attributes.add(node.attr)
            if isinstance(node, ast.Call):
                # A client method handed on as a callable: `_send(sfn.send_task_success)`.
                for value in [*node.args, *(k.value for k in node.keywords)]:
                    if (
                        isinstance(value, ast.Attribute)
                        and value.attr in operations
                        and not _resolve_attribute(info, value)
                    ):
                        reach.calls[value.attr] = operations[value.attr]
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                if _resolve_attribute(info, node.func):
                    continue
                method = node.func.attr
                if method in operations:
                    reach.calls[method] = operations[method]
                argument = _first_string(node)
                if method in OPERATION_ARGUMENT and argument in operations:
                    reach.calls[argument] = operations[argument]
                if method in WAITER_ARGUMENT and argument in waiter_index():
                    reach.calls[f"waiter:{argument}"] = waiter_index()[argument]


def _first_string(call: ast.Call) -> str | None:
    if call.args and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str):
        return call.args[0].value
    return None


def reachable_calls(handler_module: str) -> dict[str, frozenset[str]]:
    """AWS client method -> candidate IAM actions, for `lambdas.<handler_module>`."""
    return reach_of(handler_module).calls


@cache
def reach_of(handler_module: str) -> Reach:
    start = f"lambdas.{handler_module}"
    info = load(start)
    if info is None:
        raise FileNotFoundError(f"{start} does not exist")
    reach = Reach()
    queue: list[tuple[str, str]] = [(start, name) for name in info.definitions]
    initialised: set[str] = set()

    def initialise(module: str) -> None:
        if module not in initialised:
            initialised.add(module)
            reach.modules.add(module)
            loaded = load(module)
            if loaded is not None:
                _visit(reach, module, loaded.init, queue)

    initialise(start)
    while True:
        while queue:
            module, name = queue.pop()
            if (module, name) in reach.seen:
                continue
            reach.seen.add((module, name))
            loaded = load(module)
            if loaded is None:
                continue
            initialise(module)
            class_name, _, method = name.partition(".")
            if method:
                definition = loaded.methods.get(class_name, {}).get(method)
                if definition is not None:
                    _visit(reach, module, [definition], queue)
            elif name in loaded.methods:
                reach.classes.add((module, name))
                node = loaded.definitions[name]
                assert isinstance(node, ast.ClassDef)
                body = [n for n in node.body if not isinstance(n, ast.FunctionDef)]
                _visit(reach, module, [*node.decorator_list, *node.bases, *body], queue)
                for special in SPECIAL_METHODS:
                    queue.append((module, f"{name}.{special}"))
            elif name in loaded.definitions:
                _visit(reach, module, [loaded.definitions[name]], queue)
            elif name in loaded.imports:
                target_module, attr = loaded.imports[name]
                queue.append((target_module, attr) if attr else (target_module, ""))
        for module, class_name in sorted(reach.classes):
            loaded = load(module)
            assert loaded is not None
            for method in loaded.methods[class_name]:
                if (
                    method in reach.attributes
                    and (module, f"{class_name}.{method}") not in reach.seen
                ):
                    queue.append((module, f"{class_name}.{method}"))
        if not queue:
            break
    return reach


def implied_actions(actions: Iterable[str]) -> set[str]:
    implied: set[str] = set()
    for action in actions:
        implied |= IMPLIED.get(action, set())
    return implied


def iter_candidates(calls: dict[str, frozenset[str]]) -> Iterator[str]:
    for actions in calls.values():
        yield from actions


def _type_checking_only(tree: ast.Module) -> set[int]:
    """ids of import nodes under `if TYPE_CHECKING:` (never executed)."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return skipped


def _imports(info: ModuleInfo) -> Iterator[str]:
    """Every module `info` imports when it runs (absolute names; not TYPE_CHECKING)."""
    skipped = _type_checking_only(info.tree)
    path = module_path(info.name)
    package = (
        info.name
        if path is not None and path.name == "__init__.py"
        else (info.name.rpartition(".")[0])
    )
    for node in ast.walk(info.tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*parts, *([source] if source else [])])
            yield source
            for alias in node.names:
                if is_local(source) and module_path(f"{source}.{alias.name}"):
                    yield f"{source}.{alias.name}"


def third_party_imports(handler_module: str) -> dict[str, set[str]]:
    """Top-level package -> importing modules, over everything the handler imports."""
    found: dict[str, set[str]] = defaultdict(set)
    queue = [f"lambdas.{handler_module}"]
    seen: set[str] = set()
    while queue:
        module = queue.pop()
        if module in seen:
            continue
        seen.add(module)
        info = load(module)
        if info is None:
            continue
        # Importing a.b.c runs a/__init__.py and a/b/__init__.py first.
        parts = module.split(".")
        queue.extend(".".join(parts[:n]) for n in range(1, len(parts)))
        for name in _imports(info):
            top = name.split(".")[0]
            if is_local(name):
                queue.append(name)
            elif top not in sys.stdlib_module_names and top != "__future__":
                found[top].add(module)
    return found
