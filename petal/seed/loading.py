"""Reading a seed: `load_seed` / `parse_seed` turn a file (or the inline mapping of a
build request) into a validated, normalised `Seed`, or raise `SeedError` listing every
problem with its line, field path and what is allowed.

The JSON Schema in petal/schemas/seed.schema.json is the structural truth (editors use
it too); the checks here are those a schema cannot express: the Spack spec grammar,
instance-type architecture, EBS ratios.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Iterator, Mapping
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from petal.identifiers import GP3_IOPS_PER_GIB
from petal.platforms import (
    DEFAULT_INSTANCE_TYPES,
    Architecture,
    builder_image_advice,
    instance_architecture,
    needs_builder_image,
)
from petal.seed.model import (
    COMPILER_PACKAGES,
    GP3_MIBPS_PER_IOPS,
    MAX_PACKAGES,
    MAX_SEED_BYTES,
    Build,
    Cluster,
    HeadNode,
    Mirror,
    Queue,
    Seed,
    SeedError,
    Software,
    Volume,
)
from petal.seed.spack_packages import seed_package_problems
from petal.seed.spack_spec import GRAMMAR_HINT, Spec, SpecError, parse_spec
from petal.validation import Problem, kind_of, load_schema, locate
from petal.validation import problems as schema_problems

if TYPE_CHECKING:
    from petal.yaml_source import YamlDocument

SEED_SCHEMA = "seed.schema.json"


# Fields a build request or the command line may set instead of the seed's own, as
# "field" or "section.field" paths; they are applied before validation, so the seed
# is checked as it will be built (a rocky9 override needs a builder image, say).
Overrides = Mapping[str, Any]


def load_seed(path: str | Path, overrides: Overrides | None = None) -> Seed:
    """Read and validate a seed file; raises SeedError (also for unreadable files)."""
    source = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as error:
        raise SeedError(source, [Problem("", f"cannot be read: {error.strerror}")]) from None
    return parse_seed(raw, source, overrides)


def parse_seed(
    text: str | bytes, source: str = "<seed>", overrides: Overrides | None = None
) -> Seed:
    # surrogatepass: a lone surrogate is then reported as "not UTF-8", not raised.
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    # The size alone decides: refused before a byte is parsed.
    check_seed_size(len(raw), source)
    # Here, not at import: PyYAML (about 70 ms of a Lambda cold start, which compiles it
    # from source) is loaded by the calls that parse a seed's text, not by every importer.
    from petal.yaml_source import YamlSourceError, load_yaml_document

    try:
        document = load_yaml_document(raw)
    except YamlSourceError as error:
        raise SeedError(source, [Problem(error.path, str(error), error.line)]) from None
    return _validate(document, source, overrides)


def check_seed_size(size: int, source: str, *, as_json: bool = False) -> None:
    """Raise SeedError when a seed of `size` bytes is over MAX_SEED_BYTES."""
    if size <= MAX_SEED_BYTES:
        return
    what = " as JSON (how petal build sends it to the build pipeline)" if as_json else ""
    message = (
        f"is {size:,} bytes{what}; a seed may be at most {MAX_SEED_BYTES:,} bytes "
        f"({MAX_SEED_BYTES // 1024} KiB, so that every seed fits in a build's Step Functions "
        "input, inline or from S3 alike): remove comments and aliases, or split the "
        "packages into several seeds"
    )
    raise SeedError(source, [Problem("", message)])


def parse_seed_mapping(
    data: Any, source: str = "<seed>", overrides: Overrides | None = None
) -> Seed:
    """Validate a seed given as already-parsed data (the `seed` of a build request)."""
    from petal.yaml_source import YamlDocument

    return _validate(YamlDocument(data=data), source, overrides)


def _validate(document: YamlDocument, source: str, overrides: Overrides | None = None) -> Seed:
    data = document.data
    if not isinstance(data, dict):
        problem = Problem("", f"must be a YAML mapping of fields, not {kind_of(data)}", 1)
        raise SeedError(source, [problem])
    # The document keeps its line numbers: a problem is still shown at its line.
    data = _overridden(data, overrides or {})
    # As the pipeline gets it; a file within the limit can still grow through aliases.
    check_seed_size(len(json.dumps(data)), source, as_json=True)
    located = locate(schema_problems(data, SEED_SCHEMA) + _semantic_problems(data), document)
    if any(p.severity == "error" for p in located):
        raise SeedError(source, located)
    return _build_seed(data, tuple(located))


def _overridden(data: dict[str, Any], overrides: Overrides) -> dict[str, Any]:
    result = dict(data)
    for path, value in overrides.items():
        section, _, field = path.partition(".")
        if not field:
            result[section] = value
            continue
        current = result.get(section, {})
        # A section that is not a mapping is left for the schema to report.
        if isinstance(current, dict):
            result[section] = {**current, field: value}
    return result


# --- checks a schema cannot express -------------------------------------------------


def _semantic_problems(data: dict[str, Any]) -> list[Problem]:
    problems: list[Problem] = []
    software = _mapping(data.get("software"))
    packages = software.get("packages")
    if isinstance(packages, list) and len(packages) > MAX_PACKAGES:
        # The schema reports the count; parsing thousands of specs would only delay that.
        software = {**software, "packages": []}
    for path, spec in _strings(software.get("compilers"), "software.compilers"):
        problems += _spec_problems(path, spec, compiler=True)
    for path, spec in _strings(software.get("packages"), "software.packages"):
        problems += _spec_problems(path, spec, compiler=False)
    problems += seed_package_problems(software, _parsed)  # names, versions of Spack
    problems += _duplicate_warnings(software.get("packages"), "software.packages")
    problems += _duplicate_warnings(software.get("compilers"), "software.compilers")
    problems += _unique_names(software.get("mirrors"), "software.mirrors")

    arch = data.get("architecture", "x86_64")
    build = _mapping(data.get("build"))
    os_name = data.get("os")
    if isinstance(os_name, str) and needs_builder_image(os_name) and "image" not in build:
        message = f"{os_name} needs build.image: {builder_image_advice(os_name)}"
        problems.append(Problem("os", message))
    cluster = _mapping(data.get("cluster"))
    head = _mapping(cluster.get("head_node"))
    queues: list[Any] = cluster["queues"] if isinstance(cluster.get("queues"), list) else []
    typed: list[tuple[str, Any]] = [
        ("build.instance_type", build.get("instance_type")),
        ("cluster.head_node.instance_type", head.get("instance_type")),
    ]
    typed += [
        (f"cluster.queues[{i}].instance_type", _mapping(q).get("instance_type"))
        for i, q in enumerate(queues)
    ]
    if arch in ("x86_64", "arm64"):
        for path, instance_type in typed:
            problems += _architecture_problems(path, instance_type, arch)

    volume = _mapping(data.get("volume"))
    problems += _volume_problems(volume)
    for index, queue in enumerate(queues):
        q = _mapping(queue)
        low, high = q.get("min_count", 0), q.get("max_count", 10)
        if isinstance(low, int) and isinstance(high, int) and low > high:
            message = (
                f"min_count {low} is above max_count {high}: lower min_count or raise max_count"
            )
            problems.append(Problem(f"cluster.queues[{index}].min_count", message))
    problems += _unique_names(queues, "cluster.queues")
    return problems


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, str):
                yield f"{path}[{index}]", item


@lru_cache(maxsize=4096)
def _parsed(text: str) -> Spec | SpecError:
    """The spec, parsed once: validation, duplicates and the model all need it."""
    try:
        return parse_spec(text)
    except SpecError as error:
        return error


def _spec_problems(path: str, text: str, *, compiler: bool) -> list[Problem]:
    spec = _parsed(text)
    if isinstance(spec, SpecError):
        error = spec
        message = f"{text!r} is not a valid Spack spec: {error} at column {error.column}"
        return [Problem(path, f"{message}; expected {GRAMMAR_HINT}")]
    if compiler:
        if spec.name not in COMPILER_PACKAGES:
            close = difflib.get_close_matches(spec.name, sorted(COMPILER_PACKAGES), n=1)
            suggestion = f" (did you mean '{close[0]}'?)" if close else ""
            allowed = ", ".join(sorted(COMPILER_PACKAGES))
            return [Problem(path, f"{spec.name!r} is not a compiler{suggestion}; use {allowed}")]
        if spec.root.versions is None:
            return [Problem(path, f"{text!r} needs a version, e.g. {spec.name}@13.2.0")]
    return []


def _duplicate_warnings(value: Any, path: str) -> list[Problem]:
    seen: dict[str, str] = {}
    problems = []
    for item_path, text in _strings(value, path):
        spec = _parsed(text)
        if isinstance(spec, SpecError):
            continue
        canonical = spec.canonical()
        if canonical in seen:
            message = f"{text!r} repeats {seen[canonical]}; the duplicate is dropped"
            problems.append(Problem(item_path, message, severity="warning"))
        else:
            seen[canonical] = item_path
    return problems


def _unique_names(value: Any, path: str) -> list[Problem]:
    seen: set[str] = set()
    problems = []
    for index, item in enumerate(value if isinstance(value, list) else []):
        name = _mapping(item).get("name")
        if isinstance(name, str):
            if name in seen:
                problems.append(Problem(f"{path}[{index}].name", f"{name!r} is used twice"))
            seen.add(name)
    return problems


def _architecture_problems(path: str, instance_type: Any, arch: str) -> list[Problem]:
    if not isinstance(instance_type, str):
        return []
    actual = instance_architecture(instance_type)
    if actual is None:
        return [Problem(path, f"{instance_type!r} is not an EC2 instance type (e.g. c6a.4xlarge)")]
    if actual != arch:
        example = DEFAULT_INSTANCE_TYPES["builder"][arch]  # type: ignore[index]
        message = (
            f"{instance_type} is an {actual} instance type but the seed's architecture is "
            f"{arch}: use an {arch} type such as {example}, or set architecture: {actual}"
        )
        return [Problem(path, message)]
    return []


def _volume_problems(volume: dict[str, Any]) -> list[Problem]:
    problems = []
    size, iops = volume.get("size_gb", 500), volume.get("iops", 3000)
    throughput = volume.get("throughput", 125)
    # Out-of-range values are already reported by the schema; ratios would only echo them.
    if all(isinstance(v, int) and v > 0 for v in (size, iops, throughput)):
        if iops > size * GP3_IOPS_PER_GIB:
            message = (
                f"{iops} IOPS needs a volume of at least {-(-iops // GP3_IOPS_PER_GIB)} GiB "
                f"(gp3 allows {GP3_IOPS_PER_GIB} IOPS per GiB): lower iops or raise size_gb"
            )
            problems.append(Problem("volume.iops", message))
        if throughput > iops * GP3_MIBPS_PER_IOPS:
            message = (
                f"{throughput} MiB/s needs at least {int(throughput / GP3_MIBPS_PER_IOPS)} IOPS "
                "(gp3 allows 0.25 MiB/s per IOPS): lower throughput or raise iops"
            )
            problems.append(Problem("volume.throughput", message))
    if volume.get("kms_key_id") and volume.get("encrypted") is False:
        message = "a KMS key needs encrypted: true; remove kms_key_id or set encrypted: true"
        problems.append(Problem("volume.kms_key_id", message))
    return problems


# --- the normalised model ------------------------------------------------------------


def _defaults(schema: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
    """`data` with the schema's defaults filled in, one level deep."""
    filled = dict(data)
    for key, sub in schema.get("properties", {}).items():
        if key not in filled and "default" in sub:
            filled[key] = sub["default"]
    return filled


def _canonical_unique(specs: Iterable[str]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for text in specs:
        spec = _parsed(text)
        assert not isinstance(spec, SpecError)  # validated before the model is built
        seen.setdefault(spec.canonical(), None)
    return tuple(seen)


def _build_seed(data: dict[str, Any], warnings: tuple[Problem, ...]) -> Seed:
    schema = load_schema(SEED_SCHEMA)
    props = schema["properties"]
    top = _defaults(schema, data)
    arch: Architecture = top["architecture"]
    sw = _defaults(props["software"], top["software"])
    vol = _defaults(props["volume"], top["volume"])
    bld = _defaults(props["build"], top["build"])
    cluster_props = props["cluster"]["properties"]
    cl = _defaults(props["cluster"], top.get("cluster", {}))
    head = _defaults(cluster_props["head_node"], cl.get("head_node", {}))
    queue_schema = cluster_props["queues"]["items"]
    queues = [_defaults(queue_schema, q) for q in cl["queues"]]
    return Seed(
        name=top["name"],
        description=top["description"],
        software=Software(
            spack_version=sw["spack_version"],
            compilers=_canonical_unique(sw["compilers"]),
            packages=_canonical_unique(sw["packages"]),
            mirrors=tuple(Mirror(m["name"], m["url"]) for m in sw["mirrors"]),
            official_buildcache=sw["official_buildcache"],
            modules=sw["modules"],
        ),
        os=top["os"],
        architecture=arch,
        volume=Volume(
            size_gb=vol["size_gb"],
            type=vol["type"],
            iops=vol["iops"],
            throughput=vol["throughput"],
            encrypted=vol["encrypted"],
            kms_key_id=vol.get("kms_key_id"),
        ),
        build=Build(
            instance_type=bld.get("instance_type", DEFAULT_INSTANCE_TYPES["builder"][arch]),
            timeout_minutes=bld["timeout_minutes"],
            parallelcluster_version=bld["parallelcluster_version"],
            image=bld.get("image"),
        ),
        cluster=Cluster(
            region=cl.get("region"),
            key_name=cl.get("key_name"),
            head_node=HeadNode(
                instance_type=head.get("instance_type", DEFAULT_INSTANCE_TYPES["head_node"][arch]),
                subnet_id=head.get("subnet_id"),
            ),
            queues=tuple(
                Queue(
                    name=q["name"],
                    instance_type=q.get("instance_type", DEFAULT_INSTANCE_TYPES["compute"][arch]),
                    min_count=q["min_count"],
                    max_count=q["max_count"],
                    subnet_ids=tuple(q.get("subnet_ids", ())),
                )
                for q in queues
            ),
        ),
        warnings=warnings,
    )
