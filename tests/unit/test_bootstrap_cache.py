"""The bootstrap's build cache, install sources and manifest upload, run through the
whole script on the fake host (tests/data/bootstrap: fake spack, stand-in boto3)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.data.bootstrap import harness


def manifest_marker(stdout: str) -> str:
    (line,) = [x for x in stdout.splitlines() if x.startswith("PETAL-MANIFEST ")]
    return line.split()[1]


def uploaded(host: harness.FakeHost) -> Path:
    return host.tmp / "aws" / "s3" / "petal-seeds-test" / "manifests" / f"{harness.BUILD_ID}.json"


def test_steps_and_the_manifest_copy(tmp_path: Path) -> None:
    host = harness.make_host(tmp_path)
    result = host.run()
    assert result.returncode == 0, result.stderr + result.stdout
    steps = [x.split()[1] for x in harness.marker_lines(result.stdout) if "PETAL-STEP" in x]
    assert steps == harness.STEPS
    # The copy is the volume's manifest, and the marker carries its SHA-256.
    on_volume = (host.shared / "petal" / "manifest.json").read_bytes()
    assert uploaded(host).read_bytes() == on_volume
    assert manifest_marker(result.stdout) == "sha256:" + hashlib.sha256(on_volume).hexdigest()
    manifest = json.loads(on_volume)
    assert manifest["format"] == 2
    assert manifest["builder_image"] == harness.IMAGE_ID
    assert manifest["parent_snapshot"] is None and manifest["build_cache"] is None
    assert set(manifest["lock"]["concrete_specs"]) == set(manifest["install_sources"]) - {
        "fakecompilergcc"
    }
    assert set(manifest["install_sources"].values()) == {"built"}
    # Without petal:buildCache nothing is pushed and no key is asked for.
    assert not (tmp_path / "state" / "pushed").exists()
    assert "secretsmanager" not in (tmp_path / "aws" / "calls").read_text()


def test_without_a_manifest_url_the_manifest_stays_on_the_volume(tmp_path: Path) -> None:
    host = harness.make_host(tmp_path)
    del host.env["PETAL_MANIFEST_URL"]
    result = host.run()
    assert result.returncode == 0, result.stderr + result.stdout
    assert "PETAL-MANIFEST" not in result.stdout
    assert (host.shared / "petal" / "manifest.json").exists()


def test_the_first_build_creates_the_key_and_pushes_what_it_built(tmp_path: Path) -> None:
    host = harness.make_host(tmp_path)
    harness.enable_build_cache(host)
    host.env["FAKE_SPACK_CACHED"] = "bwa"
    result = host.run()
    assert result.returncode == 0, result.stderr + result.stdout
    calls = host.calls("spack")
    (create,) = [c for c in calls if c.startswith("spack gpg create")]
    assert "--export-secret" in create
    # The real flags of v0.23.0's push (the fake refuses others), the cache's URL, and
    # each built package by hash: not bwa, which came from a mirror.
    (push,) = [c for c in calls if " buildcache push " in c]
    assert "--signed --only package --private " + harness.CACHE_URL in push
    pushed = (tmp_path / "state" / "pushed").read_text().split("\n")
    manifest = json.loads((host.shared / "petal" / "manifest.json").read_text())
    sources = manifest["install_sources"]
    built = {h for h, source in sources.items() if source == "built"}
    assert {line.split()[1] for line in pushed if line} == {f"/{h}" for h in built}
    bwa = next(h for h, n in manifest["lock"]["concrete_specs"].items() if n["name"] == "bwa")
    assert sources[bwa] == "cache"
    assert manifest["build_cache"] == harness.CACHE_URL
    # The signing key never reaches the volume: only the public key is trusted there.
    volume_keys = [p.name for p in (host.shared / "spack").rglob("*.asc")]
    assert volume_keys and all(not name.startswith("secret-") for name in volume_keys)
    # The cache is no mirror of the stack the clusters get.
    assert "petal-build-cache" not in (host.shared / "petal" / "env" / "spack.yaml").read_text()


def test_a_second_build_uses_the_key_the_first_made(tmp_path: Path) -> None:
    host = harness.make_host(tmp_path)
    keys = {"private_key": "-----BEGIN PGP PRIVATE KEY BLOCK-----\nk\n", "public_key": "p"}
    harness.enable_build_cache(host, json.dumps(keys))
    result = host.run()
    assert result.returncode == 0, result.stderr + result.stdout
    assert not [c for c in host.calls("spack") if c.startswith("spack gpg create")]
    assert "PutSecretValue" not in (tmp_path / "aws" / "calls").read_text()


def test_two_builders_racing_for_the_key_end_with_one(tmp_path: Path) -> None:
    """The loser's PutSecretValue under the same version token is refused: it reads
    and uses the winner's key."""
    host = harness.make_host(tmp_path)
    harness.enable_build_cache(host)
    secret = next((tmp_path / "aws" / "secrets").iterdir())
    winner = json.dumps({"private_key": "WINNER PRIVATE KEY", "public_key": "WINNER"})
    state = json.loads(secret.read_text())
    # The other builder's offer landed between this one's read and its own offer.
    state["versions"]["petal-build-cache-signing-key-version-0001"] = winner
    state["current"] = "petal-build-cache-signing-key-version-0001"  # AWSCURRENT moved
    secret.write_text(json.dumps(state))
    result = host.run_function(
        "SPACK_ROOT_PATH=$PETAL_ROOT_PREFIX/shared/spack; PATH=$PATH; WORK_DIR=$(mktemp -d); "
        "find_helper; mkdir -p $WORK_DIR/k; printf 'MINE PRIVATE KEY' >$WORK_DIR/k/s; "
        "printf MINE >$WORK_DIR/k/p; "
        "spack_helper cache-key-put $PETAL_SIGNING_KEY_SECRET $WORK_DIR/k/s $WORK_DIR/k/p; "
        "spack_helper cache-key-get $PETAL_SIGNING_KEY_SECRET $WORK_DIR/k; cat $WORK_DIR/k/public.asc"
    )
    assert result.returncode == 0, result.stderr
    assert "another build created the signing key first" in result.stdout
    assert result.stdout.endswith("WINNER")


def test_a_failed_push_does_not_fail_the_build(tmp_path: Path) -> None:
    host = harness.make_host(tmp_path)
    harness.enable_build_cache(host)
    host.env["FAKE_SPACK_PUSH_FAIL"] = "1"
    result = host.run()
    assert result.returncode == 0, result.stderr + result.stdout
    assert "WARNING: pushing to the build cache" in result.stdout


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("PETAL_MANIFEST_URL", "s3://b/x.json", "ManifestUrl"),
        ("PETAL_BUILD_CACHE_URL", "https://cache.example/x", "BuildCacheUrl"),
        ("PETAL_SIGNING_KEY_SECRET", "arn:aws:ssm:us-east-1:1:parameter/x", "SigningKeySecret"),
        ("PETAL_PARENT_SNAPSHOT", "snap-'x", "ParentSnapshot"),
    ],
)
def test_bad_aws_parameters_are_refused(
    tmp_path: Path, name: str, value: str, message: str
) -> None:
    host = harness.make_host(tmp_path)
    host.env[name] = value
    result = host.run()
    assert result.returncode == 2
    assert f"PETAL-FAILED parameters: {message}" in result.stdout


def test_a_cache_without_its_key_is_refused(tmp_path: Path) -> None:
    host = harness.make_host(tmp_path)
    host.env["PETAL_BUILD_CACHE_URL"] = harness.CACHE_URL
    result = host.run()
    assert result.returncode == 2
    assert "BuildCacheUrl needs SigningKeySecret" in result.stdout
