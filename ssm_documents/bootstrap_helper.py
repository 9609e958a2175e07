"""petal bootstrap queries: spack python bootstrap_helper.py COMMAND ARG...

bootstrap.sh runs this file, which lies next to it, with Spack's own Python: its spack_yaml
reads YAML where the builder's python3 may lack PyYAML (a file: `spack python -c` takes a
single statement). Python 3.6 compatible (Spack's oldest, RHEL 8's python3): Python never
evaluates the annotations (quoted, or of local variables), so mypy alone imports their names.
"""

import datetime
import json
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any, NoReturn


def load_yaml(path: str) -> "Any":
    import spack.util.spack_yaml as syaml

    with Path(path).open() as stream:
        return syaml.load(stream) or {}


def env_section(spack_yaml: str) -> "dict[str, Any]":
    data = load_yaml(spack_yaml)
    if not isinstance(data, dict) or not isinstance(data.get("spack"), dict):
        sys.exit(f"{spack_yaml}: no top-level 'spack:' mapping")
    section: dict[str, Any] = data["spack"]
    return section


def print_lines(items: "Iterable[object]") -> None:
    for item in items:
        print(str(item))


def seed_compilers(spack_yaml: str) -> None:
    """The specs of the environment's `compilers` definition."""
    specs: list[str] = []
    for definition in env_section(spack_yaml).get("definitions") or []:
        specs.extend((definition or {}).get("compilers") or [])
    print_lines(specs)


def module_systems(spack_yaml: str) -> None:
    """lmod and/or tcl, from modules:default:enable."""
    modules = env_section(spack_yaml).get("modules") or {}
    enabled = (modules.get("default") or {}).get("enable") or []
    print_lines(name for name in enabled if name in ("lmod", "tcl"))


def system_compilers(compilers_yaml: str, spack_root: str) -> None:
    """Compilers Spack did not install (their cc is outside SPACK_ROOT)."""
    inside = os.path.realpath(spack_root) + os.sep
    for item in load_yaml(compilers_yaml).get("compilers") or []:
        compiler = item.get("compiler") or {}
        cc = (compiler.get("paths") or {}).get("cc") or ""
        if cc and not os.path.realpath(cc).startswith(inside):
            # gcc@=11.4.1 (an exact version) -> gcc@11.4.1, the form modules.yaml uses
            print(str(compiler.get("spec", "")).replace("@=", "@"))


# The image's packages an environment may use as externals (bootstrap.sh finds versions).
SYSTEM_EXTERNALS = ("slurm", "libfabric")
_VERSION = re.compile(r"^[0-9]+(?:\.[0-9]+)*$")


def external_packages(spack_yaml: str) -> None:
    packages = env_section(spack_yaml).get("packages") or {}
    for name in SYSTEM_EXTERNALS:
        settings = packages.get(name) or {}
        if settings.get("buildable") is False and settings.get("externals"):
            print(name)


def set_externals(spack_yaml: str, *assignments: str) -> None:
    """NAME=VERSION...: the versions of the image's externals replace the rendered ones."""
    import spack.util.spack_yaml as syaml

    versions: dict[str, str] = {}
    for assignment in assignments:
        name, _, version = assignment.partition("=")
        if name not in SYSTEM_EXTERNALS or not _VERSION.match(version):
            sys.exit(f"set-externals: {assignment!r} is not NAME=VERSION of a system external")
        versions[name] = version
    data = load_yaml(spack_yaml)
    packages = (data.get("spack") or {}).get("packages") or {}
    for name, version in versions.items():
        externals = (packages.get(name) or {}).get("externals") or []
        if not externals:
            sys.exit(f"set-externals: {spack_yaml} declares no external {name}")
        for external in externals:
            spec = str(external["spec"])
            external["spec"] = re.sub(
                r"^" + re.escape(name) + r"(@=?[^\s%^]*)?", f"{name}@={version}", spec
            )
    _dump_yaml(syaml, data, spack_yaml)


def _is_compiler_requirement(item: "object") -> "bool":
    if isinstance(item, str):
        return item.lstrip().startswith("%")
    if isinstance(item, dict):
        group = item.get("one_of") or item.get("any_of") or []
        return bool(group) and all(_is_compiler_requirement(member) for member in group)
    return False


def without_compiler_requirements(packages_yaml: str, out: str) -> None:
    """packages.yaml without compiler requirements (no compiler builds itself), as JSON."""
    data = load_yaml(packages_yaml)
    for settings in (data.get("packages") or {}).values():
        if isinstance(settings, dict) and isinstance(settings.get("require"), list):
            settings["require"] = [
                item for item in settings["require"] if not _is_compiler_requirement(item)
            ]
    with Path(out).open("w") as stream:
        json.dump(data, stream, indent=1)
        stream.write("\n")


def lock_roots(lock: str) -> "list[str]":
    with Path(lock).open() as stream:
        return [str(root["spec"]) for root in json.load(stream).get("roots") or []]


def roots(lock: str) -> None:
    print_lines(lock_roots(lock))


def has_package(lock: str, name: str) -> "NoReturn":
    with Path(lock).open() as stream:
        concrete = json.load(stream).get("concrete_specs") or {}
    found = any(spec.get("name") == name for spec in concrete.values())
    sys.exit(0 if found else 1)


def read_lines(path: str) -> "list[str]":
    with Path(path).open() as stream:
        return [line.rstrip("\n") for line in stream if line.strip()]


def manifest(
    out: str,
    lock: str,
    seeds_file: str,
    core_file: str,
    modules: str,
    module_paths_file: str,
    spack_commit: str,
    sources_file: str,
) -> None:
    env = os.environ
    mount_dir = env["PETAL_MOUNT_DIR"]
    with Path(lock).open() as stream:
        spack_lock = json.load(stream)
    with Path(sources_file).open() as stream:
        sources = json.load(stream)
    identity = instance_identity()
    data = {
        # 2: the lock itself, the builder's image, the parent, each package's source.
        "format": 2,
        # The lock itself ("spack_lock" is its path on the volume).
        "lock": spack_lock,
        "install_sources": sources,
        "builder_image": identity.get("imageId", ""),
        "parent_snapshot": env.get("PETAL_PARENT_SNAPSHOT") or None,
        "build_cache": env.get("PETAL_BUILD_CACHE_URL") or None,
        "fingerprint": env["PETAL_FINGERPRINT"],
        "build_id": env["PETAL_BUILD_ID"],
        "spack_version": env["PETAL_SPACK_VERSION"],
        "spack_commit": spack_commit,
        # datetime.UTC is Python 3.11+.
        "created_at": datetime.datetime.now(datetime.timezone.utc).strftime(  # noqa: UP017
            "%Y-%m-%dT%H:%M:%SZ"
        ),
        "root_specs": lock_roots(lock),
        "compilers": read_lines(seeds_file),
        "core_compilers": read_lines(core_file),
        "modules": modules,
        "module_paths": read_lines(module_paths_file),
        "mount_dir": mount_dir,
        "spack_root": mount_dir + "/spack",
        "environment": mount_dir + "/petal/env",
        "spack_lock": mount_dir + "/petal/env/spack.lock",
        "profile": mount_dir + "/petal/profile.sh",
        "os": {"id": env.get("PETAL_OS_ID", ""), "version_id": env.get("PETAL_OS_VERSION_ID", "")},
        "arch": os.uname().machine,
    }
    tmp = Path(out + ".tmp")
    with tmp.open("w") as stream:
        json.dump(data, stream, indent=2, sort_keys=True)
        stream.write("\n")
    tmp.chmod(0o644)
    tmp.replace(out)


# --- where each package came from ------------------------------------------------------


def installed_records(db_index: str) -> "dict[str, Any]":
    """The install records of Spack's database (<install tree>/.spack-db/index.json)."""
    try:
        with Path(db_index).open() as stream:
            installs = json.load(stream)["database"]["installs"]
    except FileNotFoundError:
        return {}  # nothing installed yet: Spack writes the index with the first install
    return {h: r for h, r in installs.items() if r.get("installed")}


def installed_hashes(db_index: str) -> None:
    print_lines(sorted(installed_records(db_index)))


# Spack writes this file into a prefix it extracted from a binary cache, never into one
# it built (binary_distribution.buildinfo_file_name).
BINARY_MARKER = (".spack", "binary_distribution")


def install_sources(db_index: str, before_file: str, out: str, root_prefix: str = "") -> None:
    """Each installed spec's source, as JSON {hash: source}: parent (installed before this
    build began), external, cache (extracted from a binary mirror) or built. Prints the
    hashes this build built, the ones to push to the build cache."""
    before = set(read_lines(before_file))
    sources: dict[str, str] = {}
    for spec_hash, record in sorted(installed_records(db_index).items()):
        if spec_hash in before:
            sources[spec_hash] = "parent"
        elif "external" in (record.get("spec") or {}):
            sources[spec_hash] = "external"
        elif Path(root_prefix + str(record.get("path")), *BINARY_MARKER).is_file():
            sources[spec_hash] = "cache"
        else:
            sources[spec_hash] = "built"
    with Path(out).open("w") as stream:
        json.dump(sources, stream, indent=1, sort_keys=True)
        stream.write("\n")
    print_lines(h for h, source in sources.items() if source == "built")


def add_mirror(spack_yaml: str, name: str, url: str) -> None:
    """Put mirror NAME first in the environment's mirrors: Spack tries them in order."""
    import spack.util.spack_yaml as syaml

    data = load_yaml(spack_yaml)
    section = data.setdefault("spack", {})
    mirrors = {name: url}
    mirrors.update((k, v) for k, v in (section.get("mirrors") or {}).items() if k != name)
    section["mirrors"] = mirrors
    _dump_yaml(syaml, data, spack_yaml)


def remove_mirror(spack_yaml: str, name: str) -> None:
    import spack.util.spack_yaml as syaml

    data = load_yaml(spack_yaml)
    mirrors = (data.get("spack") or {}).get("mirrors") or {}
    mirrors.pop(name, None)
    _dump_yaml(syaml, data, spack_yaml)


def _dump_yaml(syaml: "Any", data: "Any", path: str) -> None:
    tmp = Path(path + ".tmp")
    with tmp.open("w") as stream:
        syaml.dump(data, stream)
    tmp.chmod(0o644)
    tmp.replace(path)


# --- AWS: the instance, the manifest's copy, the build cache's signing key ---------------
# boto3 is the system Python's (python3-boto3, which the prerequisites step installs and
# Spack's s3:// mirrors need too); imported where used, so the other commands run without.

IMDS = "http://169.254.169.254/latest"


def instance_identity() -> "dict[str, Any]":
    """This instance's identity document (region, imageId, ...), through IMDSv2.
    PETAL_INSTANCE_IDENTITY names a JSON file instead (tests)."""
    from urllib.request import Request, urlopen

    path = os.environ.get("PETAL_INSTANCE_IDENTITY")
    if path:
        with Path(path).open() as stream:
            document: dict[str, Any] = json.load(stream)
        return document
    ttl = {"X-aws-ec2-metadata-token-ttl-seconds": "60"}
    # The fixed http:// IMDS address: no scheme or host comes from outside.
    token_request = Request(IMDS + "/api/token", method="PUT", headers=ttl)  # noqa: S310
    with urlopen(token_request, timeout=5) as answer:  # noqa: S310
        token = answer.read().decode()
    document_url = IMDS + "/dynamic/instance-identity/document"
    request = Request(document_url, headers={"X-aws-ec2-metadata-token": token})  # noqa: S310
    with urlopen(request, timeout=5) as answer:  # noqa: S310
        identity: dict[str, Any] = json.loads(answer.read().decode())
    return identity


def region() -> str:
    return str(instance_identity()["region"])


def upload_manifest(path: str, url: str) -> None:
    """Upload the manifest to s3://BUCKET/KEY and print its sha256:<hex>."""
    import hashlib

    import boto3

    bucket, _, key = url[len("s3://") :].partition("/")
    data = Path(path).read_bytes()
    boto3.client("s3", region_name=region()).put_object(
        Bucket=bucket, Key=key, Body=data, ContentType="application/json"
    )
    print("sha256:" + hashlib.sha256(data).hexdigest())


# Every builder creating the first key offers it under this one version token: Secrets
# Manager keeps the first and refuses a different value under the same token, so two
# builders racing end up with one key.
SIGNING_KEY_TOKEN = "petal-build-cache-signing-key-version-0001"  # noqa: S105 - no secret
NO_KEY = 3  # cache-key-get's exit status while the secret holds no key yet


def cache_key_get(secret: str, out_dir: str) -> None:
    """Write the signing key (secret.asc) and its public key (public.asc) into OUT_DIR,
    or exit NO_KEY when no build has created them yet."""
    import boto3

    secrets = boto3.client("secretsmanager", region_name=region())
    value = secrets.get_secret_value(SecretId=secret)["SecretString"]
    try:
        keys = json.loads(value)
    except ValueError:
        keys = {}
    if not isinstance(keys, dict) or not keys.get("private_key") or not keys.get("public_key"):
        sys.exit(NO_KEY)
    for name, field in (("secret.asc", "private_key"), ("public.asc", "public_key")):
        # Readable by root only from the moment it exists.
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        with os.fdopen(os.open(str(Path(out_dir, name)), flags, 0o600), "w") as stream:
            stream.write(keys[field])


def cache_key_put(secret: str, secret_file: str, public_file: str) -> None:
    """Offer a new key as the cache's; the first offer wins (SIGNING_KEY_TOKEN)."""
    import boto3
    from botocore.exceptions import ClientError

    value = json.dumps(
        {"private_key": Path(secret_file).read_text(), "public_key": Path(public_file).read_text()}
    )
    try:
        boto3.client("secretsmanager", region_name=region()).put_secret_value(
            SecretId=secret, SecretString=value, ClientRequestToken=SIGNING_KEY_TOKEN
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ResourceExistsException":
            raise
        print("another build created the signing key first: using that one")


COMMANDS: "dict[str, Callable[..., None]]" = {
    "seed-compilers": seed_compilers,
    "module-systems": module_systems,
    "system-compilers": system_compilers,
    "roots": roots,
    "has-package": has_package,
    "external-packages": external_packages,
    "set-externals": set_externals,
    "without-compiler-requirements": without_compiler_requirements,
    "manifest": manifest,
    "installed-hashes": installed_hashes,
    "install-sources": install_sources,
    "add-mirror": add_mirror,
    "remove-mirror": remove_mirror,
    "upload-manifest": upload_manifest,
    "cache-key-get": cache_key_get,
    "cache-key-put": cache_key_put,
}

if __name__ == "__main__":
    COMMANDS[sys.argv[1]](*sys.argv[2:])
