"""The shared build cache (petal:buildCache) and the manifest's copy, as the bootstrap
command receives them.

The stack gives every function the cache's URL and the secret of its signing key
(stacks/build_cache.py); the bootstrap step passes them, with the key the builder
uploads the manifest to, as parameters of the SSM command (ssm_documents/bootstrap.yaml).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from petal.build.manifest import manifest_key

# The functions' environment (set by stacks/petal_stack.py; empty: no cache).
ENV_BUILD_CACHE_URL: Final = "PETAL_BUILD_CACHE_URL"  # s3://BUCKET/build-cache
ENV_SIGNING_KEY_SECRET: Final = "PETAL_SIGNING_KEY_SECRET"  # noqa: S105 - a variable's name
# The prefix of the cache in its bucket: the builder role may use only this one.
CACHE_PREFIX: Final = "build-cache"

# The secret's value until a builder stores the key: the first build that uses the cache
# creates it (Lambda has no gpg; ssm_documents/bootstrap_helper.py cache-key-put).
NO_KEY_YET: Final = '{"state": "no key yet: the first build that uses the cache creates it"}'

# The bootstrap document's parameters for them.
PARAM_MANIFEST_URL: Final = "ManifestUrl"
PARAM_BUILD_CACHE_URL: Final = "BuildCacheUrl"
PARAM_SIGNING_KEY_SECRET: Final = "SigningKeySecret"  # noqa: S105 - a parameter's name


@dataclass(frozen=True)
class BuildCache:
    url: str
    signing_key_secret: str

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> BuildCache | None:
        url = environ.get(ENV_BUILD_CACHE_URL, "")
        secret = environ.get(ENV_SIGNING_KEY_SECRET, "")
        return cls(url, secret) if url and secret else None


def cache_url(bucket: str) -> str:
    return f"s3://{bucket}/{CACHE_PREFIX}"


def bootstrap_parameters(
    build_id: str, *, seed_bucket: str, cache: BuildCache | None
) -> dict[str, list[str]]:
    """The command's parameters for the manifest's copy and the cache ("": none)."""
    return {
        PARAM_MANIFEST_URL: [f"s3://{seed_bucket}/{manifest_key(build_id)}" if seed_bucket else ""],
        PARAM_BUILD_CACHE_URL: [cache.url if cache else ""],
        PARAM_SIGNING_KEY_SECRET: [cache.signing_key_secret if cache else ""],
    }
