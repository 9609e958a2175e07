"""What the SIMULATED builder does with the build cache and the manifest: nothing is
built, but the emulated buckets record it as the real bootstrap would.

A root spec of the rendered environment stands for a package; its simulated hash is the
SHA-256 of its spec text, so two seeds that ask for the same spec share the entry. A
spec whose entry is under the cache's prefix came from the cache; the others are
"built" and pushed afterwards (an object per spec, as `spack buildcache push` writes
`<hash>.spec.json.sig` and a tarball). The manifest is format 2 with a lock of those
specs, uploaded where the command's ManifestUrl says, and its SHA-256 is printed in a
PETAL-MANIFEST line, as ssm_documents/bootstrap.sh does.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from petal.build.manifest import sha256_of
from petal.seed.spack_spec import SpecError, parse_spec


def _split_url(url: str) -> tuple[str, str]:
    bucket, _, key = url.removeprefix("s3://").partition("/")
    return bucket, key


def spec_hash(spec: str) -> str:
    return hashlib.sha256(spec.encode()).hexdigest()[:32]


def _node(spec: str) -> dict[str, Any]:
    try:
        root = parse_spec(spec).root
    except SpecError:
        return {"name": spec, "version": "?", "parameters": {}}
    version = (root.versions or "?").removeprefix("=")
    variants: dict[str, Any] = {name: sign.startswith("+") for sign, name in root.flags}
    variants.update({key: value for key, _, value in root.settings})
    compiler_name, _, compiler_version = (root.compiler or "gcc@=11.4.1").partition("@")
    return {
        "name": root.name,
        "version": version,
        "compiler": {"name": compiler_name, "version": compiler_version.removeprefix("=")},
        "parameters": variants,
    }


@dataclass
class SimulatedStack:
    """The install of one simulated bootstrap: each spec's source, what to push."""

    s3: Any
    cache_url: str
    specs: list[str]
    sources: dict[str, str] = field(default_factory=dict)

    def install(self, spec: str) -> str:
        """Where `spec` comes from: the cache when it holds the spec's entry."""
        source = "cache" if self._cached(spec) else "built"
        self.sources[spec_hash(spec)] = source
        return source

    def _cached(self, spec: str) -> bool:
        if not self.cache_url:
            return False
        bucket, prefix = _split_url(self.cache_url)
        try:
            self.s3.head_object(Bucket=bucket, Key=self._entry(prefix, spec))
        except ClientError:
            return False
        return True

    @staticmethod
    def _entry(prefix: str, spec: str) -> str:
        return f"{prefix}/build_cache/{spec_hash(spec)}.spec.json.sig"

    def push(self) -> list[str]:
        """Push what was built; the specs pushed."""
        if not self.cache_url:
            return []
        bucket, prefix = _split_url(self.cache_url)
        pushed = [s for s in self.specs if self.sources.get(spec_hash(s)) == "built"]
        for spec in pushed:
            body = json.dumps({"spec": _node(spec), "simulated": True}).encode()
            self.s3.put_object(Bucket=bucket, Key=self._entry(prefix, spec), Body=body)
        return pushed

    def upload_manifest(self, url: str, parameters: dict[str, str]) -> str:
        """Upload the manifest to `url`; its sha256:<hex>."""
        document = {
            "format": 2,
            "simulated": True,
            "build_id": parameters.get("BuildId", ""),
            "fingerprint": parameters.get("Fingerprint", ""),
            "spack_version": parameters.get("SpackVersion", ""),
            "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "builder_image": "",
            "parent_snapshot": parameters.get("ParentSnapshot") or None,
            "build_cache": self.cache_url or None,
            "root_specs": self.specs,
            "lock": {
                "roots": [{"hash": spec_hash(s), "spec": s} for s in self.specs],
                "concrete_specs": {spec_hash(s): _node(s) for s in self.specs},
            },
            "install_sources": dict(self.sources),
        }
        data = (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()
        bucket, key = _split_url(url)
        self.s3.put_object(Bucket=bucket, Key=key, Body=data, ContentType="application/json")
        return sha256_of(data)
