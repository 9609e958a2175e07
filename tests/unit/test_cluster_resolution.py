"""Resolution on moto with snapshots in several accounts and regions.

moto keeps accounts apart and ignores OwnerIds, so tests/data/registry/moto_sharing.py
makes DescribeSnapshots behave like EC2 across accounts (shared snapshots visible,
OwnerIds applied, other accounts' tags hidden). Snapshots of other accounts are
created under MOTO_ACCOUNT_ID and shared with the caller, as AWS would have them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.ec2.models import ec2_backends

from petal.cluster.resolution import (
    LAZY_LOADING_WARNING,
    InvalidRequest,
    ResolutionError,
    ResolutionRequest,
    SnapshotNotFound,
    make_request,
    resolve,
)
from petal.deployment_contract import TAG_ARCH, TAG_FINGERPRINT, TAG_MANAGED, TAG_OS, TAG_SEED
from petal.registry.client import RegistryClient
from petal.snapshot_description import format_description
from petal.user_config import (
    DeploymentSettings,
    RegistrySettings,
    SnapshotSource,
    UserConfig,
)
from tests.data.registry.moto_sharing import in_account, install
from tests.data.registry.registry_server import RegistryServer

OWN = "123456789012"  # moto's default account: the caller
TRUSTED = "111111111111"
UNTRUSTED = "222222222222"
OFFICIAL = "999888777666"
FP = "sha256:" + "ab" * 32
OTHER_FP = "sha256:" + "cd" * 32
NOW = datetime.now(UTC)


@dataclass
class World:
    tmp_path: Path
    server: RegistryServer
    entries: list[dict[str, Any]] = field(default_factory=list)
    clients: dict[str, Any] = field(default_factory=dict)

    def ec2(self, region: str = "us-east-1") -> Any:
        # One client per region: moto reads the account from MOTO_ACCOUNT_ID per request.
        if region not in self.clients:
            self.clients[region] = boto3.client("ec2", region_name=region)
        return self.clients[region]

    def snapshot(
        self,
        *,
        account: str = OWN,
        region: str = "us-east-1",
        size: int = 500,
        fp: str = FP,
        os: str = "alinux2023",
        arch: str = "x86_64",
        seed: str = "bioinformatics",
        tags: bool = True,
        description: bool = True,
        share_with: tuple[str, ...] = (OWN,),
        public: bool = False,
        age_days: float = 0,
        state: str = "completed",
    ) -> str:
        with in_account(account):
            ec2 = self.ec2(region)
            volume = ec2.create_volume(Size=size, AvailabilityZone=f"{region}a")
            text = format_description(fp, os, arch, seed) if description else "my backup"
            snapshot_id: str = ec2.create_snapshot(VolumeId=volume["VolumeId"], Description=text)[
                "SnapshotId"
            ]
            if tags:
                ec2.create_tags(
                    Resources=[snapshot_id],
                    Tags=[
                        {"Key": TAG_FINGERPRINT, "Value": fp},
                        {"Key": TAG_OS, "Value": os},
                        {"Key": TAG_ARCH, "Value": arch},
                        {"Key": TAG_SEED, "Value": seed},
                        {"Key": TAG_MANAGED, "Value": "true"},
                    ],
                )
            others = [a for a in share_with if a != account]
            if others or public:
                ec2.modify_snapshot_attribute(
                    SnapshotId=snapshot_id,
                    Attribute="createVolumePermission",
                    OperationType="add",
                    **({"UserIds": others} if others else {}),
                    **({"GroupNames": ["all"]} if public else {}),
                )
        stored = ec2_backends[account][region].snapshots[snapshot_id]
        stored.start_time = NOW - timedelta(days=age_days)
        stored.status = state
        return snapshot_id

    def publish(self, name: str, variants: list[dict[str, Any]], fp: str = FP) -> None:
        """Put an entry into the registry served by `server`."""
        self.entries.append({"name": name, "fingerprint": fp})
        self.server.files["snapshots/index.json"] = json.dumps(
            {"version": "1.0", "snapshots": self.entries}
        ).encode()
        self.server.files[f"snapshots/{name}.json"] = json.dumps(
            {"name": name, "fingerprint": fp, "aws_account": OFFICIAL, "snapshots": variants}
        ).encode()

    def registry_for(self, source: SnapshotSource) -> RegistryClient:
        return RegistryClient(source.url or self.server.url, cache_dir=self.tmp_path / "cache")

    def config(self, *types: str, trusted: tuple[str, ...] = (TRUSTED, OFFICIAL)) -> UserConfig:
        sources = tuple(
            SnapshotSource(t, True, (), self.server.url if t in ("official", "community") else None)  # type: ignore[arg-type]
            for t in (types or ("local", "organization", "official"))
        )
        return UserConfig(
            RegistrySettings(url=self.server.url, trusted_accounts=trusted),
            sources,
            DeploymentSettings(),
        )

    def resolve(
        self, config: UserConfig | None = None, region: str = "us-east-1", **request: Any
    ) -> Any:
        values: dict[str, Any] = {
            "fingerprint": FP,
            "region": region,
            "os": "alinux2023",
            "architecture": "x86_64",
            "size_gb": 500,
        }
        values.update(request)
        return resolve(
            make_request(**values),
            ec2=self.ec2(region),
            config=config or self.config(),
            registry_for=self.registry_for,
        )


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[World]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("MOTO_ACCOUNT_ID", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    # moto loads thousands of default AMIs into every account's backend otherwise.
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    server = RegistryServer(files={})
    with mock_aws():
        install(monkeypatch)
        yield World(tmp_path, server)
    server.close()


# --- own account and organization ------------------------------------------------------


def test_own_snapshot_wins_over_a_newer_trusted_one(world: World) -> None:
    own = world.snapshot(age_days=5)
    world.snapshot(account=TRUSTED, age_days=1)
    result = world.resolve()
    assert result.snapshot_id == own
    assert (result.source, result.owner) == ("local", OWN)
    assert result.seed_name == "bioinformatics"
    assert LAZY_LOADING_WARNING in result.warnings


def test_source_order_comes_from_the_config(world: World) -> None:
    world.snapshot()
    trusted = world.snapshot(account=TRUSTED)
    result = world.resolve(world.config("organization", "local"))
    assert (result.snapshot_id, result.source, result.owner) == (trusted, "organization", TRUSTED)


def test_trusted_snapshots_are_matched_by_description_not_tags(world: World) -> None:
    # Tags are invisible across accounts: a trusted snapshot has only its Description.
    by_description = world.snapshot(account=TRUSTED, tags=False)
    world.snapshot(account=TRUSTED, description=False, age_days=-1)  # newer, tags only
    result = world.resolve(world.config("organization"))
    assert result.snapshot_id == by_description


def test_untrusted_snapshots_are_never_returned(world: World) -> None:
    world.snapshot(account=UNTRUSTED, public=True)  # public, correct Description
    world.snapshot(account=UNTRUSTED)  # shared with us directly
    with pytest.raises(SnapshotNotFound) as caught:
        world.resolve(world.config("local", "organization"))
    assert caught.value.sources == ("own account", "organization account")


def test_untrusted_loses_even_when_newest_and_a_trusted_one_exists(world: World) -> None:
    trusted = world.snapshot(account=TRUSTED, age_days=30)
    world.snapshot(account=UNTRUSTED, age_days=0, public=True)
    result = world.resolve(world.config("organization"))
    assert (result.snapshot_id, result.owner) == (trusted, TRUSTED)


def test_only_the_requested_region(world: World) -> None:
    west = world.snapshot(region="us-west-2")
    with pytest.raises(SnapshotNotFound):
        world.resolve()
    assert world.resolve(region="us-west-2").snapshot_id == west


def test_os_and_architecture_variants(world: World) -> None:
    al_x86 = world.snapshot()
    al_arm = world.snapshot(arch="arm64")
    ubuntu = world.snapshot(os="ubuntu2404")
    trusted_rocky = world.snapshot(account=TRUSTED, os="rocky9", arch="arm64")
    assert world.resolve().snapshot_id == al_x86
    assert world.resolve(architecture="arm64").snapshot_id == al_arm
    assert world.resolve(os="ubuntu2404").snapshot_id == ubuntu
    assert world.resolve(os="al2023").snapshot_id == al_x86  # the registry spelling works
    assert world.resolve(os="rocky9", architecture="arm64").snapshot_id == trusted_rocky
    with pytest.raises(SnapshotNotFound):
        world.resolve(os="rhel9")


def test_another_fingerprint_is_not_a_match(world: World) -> None:
    world.snapshot(fp=OTHER_FP)
    world.snapshot(account=TRUSTED, fp=OTHER_FP)
    with pytest.raises(SnapshotNotFound):
        world.resolve()


def test_newest_wins(world: World) -> None:
    world.snapshot(age_days=10)
    newest = world.snapshot(age_days=1)
    world.snapshot(age_days=3)
    assert world.resolve().snapshot_id == newest


def test_a_snapshot_at_least_as_large_as_requested_is_preferred(world: World) -> None:
    world.snapshot(size=250, age_days=0)  # newest, but too small
    large = world.snapshot(size=500, age_days=5)
    result = world.resolve(size_gb=400)
    assert result.snapshot_id == large
    assert (result.snapshot_size_gb, result.volume_size_gb) == (500, 500)
    assert any("the volume will be 500 GiB" in w for w in result.warnings)


def test_a_smaller_snapshot_is_used_when_nothing_fits_with_a_warning(world: World) -> None:
    small = world.snapshot(size=250)
    result = world.resolve(size_gb=800)
    assert result.snapshot_id == small
    assert (result.snapshot_size_gb, result.volume_size_gb) == (250, 800)
    assert any("resize2fs" in w for w in result.warnings)


def test_pending_snapshots_are_skipped_with_the_reason(world: World) -> None:
    world.snapshot(state="pending")
    with pytest.raises(SnapshotNotFound) as caught:
        world.resolve(world.config("local"))
    assert "state is pending" in caught.value.skipped[0].reason


# --- registries ------------------------------------------------------------------------


def variant(snapshot_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "region": "us-east-1",
        "snapshot_id": snapshot_id,
        "os": "al2023",
        "architecture": "x86_64",
        "size_gb": 500,
        **extra,
    }


def test_official_registry_snapshot_confirmed_with_ec2(world: World) -> None:
    official = world.snapshot(account=OFFICIAL, public=True, tags=False)
    world.publish("bioinformatics-v1", [variant(official)])
    result = world.resolve(world.config("local", "official"))
    assert (result.snapshot_id, result.source, result.owner) == (official, "official", OFFICIAL)
    assert result.stack_name == "bioinformatics-v1"
    assert result.registry_url == world.server.url
    assert any("plain http" in w for w in result.warnings)
    skipped = [s.source for s in result.skipped]
    assert skipped == [], "own account had nothing, which is not a skipped candidate"


def test_registry_entry_whose_owner_does_not_match_is_refused(world: World) -> None:
    # The registry claims OFFICIAL owns it; EC2 says UNTRUSTED does.
    impostor = world.snapshot(account=UNTRUSTED, public=True)
    world.publish("bioinformatics-v1", [variant(impostor, aws_account=OFFICIAL)])
    with pytest.raises(SnapshotNotFound) as caught:
        world.resolve(world.config("official"))
    (skipped,) = caught.value.skipped
    assert skipped.snapshot_id == impostor
    assert "not " + OFFICIAL in skipped.reason


def test_registry_entry_of_an_untrusted_owner_is_refused(world: World) -> None:
    theirs = world.snapshot(account=UNTRUSTED, public=True)
    world.publish("bioinformatics-v1", [variant(theirs, aws_account=UNTRUSTED)])
    with pytest.raises(SnapshotNotFound) as caught:
        world.resolve(world.config("official"))
    assert "not a trusted account" in caught.value.skipped[0].reason
    assert caught.value.skipped[0].owner == UNTRUSTED


def test_registry_entry_not_in_the_target_region_is_refused(world: World) -> None:
    # The registry says us-east-1 but the snapshot lives in us-west-2.
    elsewhere = world.snapshot(account=OFFICIAL, region="us-west-2", public=True)
    world.publish("bioinformatics-v1", [variant(elsewhere)])
    with pytest.raises(SnapshotNotFound) as caught:
        world.resolve(world.config("official"))
    assert "not found in us-east-1" in caught.value.skipped[0].reason


def test_registry_entry_not_shared_with_us_is_refused(world: World) -> None:
    private = world.snapshot(account=OFFICIAL, share_with=())
    world.publish("bioinformatics-v1", [variant(private)])
    with pytest.raises(SnapshotNotFound) as caught:
        world.resolve(world.config("official"))
    assert "not shared with this account" in caught.value.skipped[0].reason


def test_registry_entry_with_the_wrong_size_is_refused(world: World) -> None:
    official = world.snapshot(account=OFFICIAL, public=True, size=100)
    world.publish("bioinformatics-v1", [variant(official, size_gb=500)])
    with pytest.raises(SnapshotNotFound) as caught:
        world.resolve(world.config("official"))
    assert "registry says 500 GiB but the snapshot is 100 GiB" in caught.value.skipped[0].reason


def test_registry_entry_whose_description_names_another_fingerprint(world: World) -> None:
    official = world.snapshot(account=OFFICIAL, public=True, fp=OTHER_FP)
    world.publish("bioinformatics-v1", [variant(official)])
    with pytest.raises(SnapshotNotFound) as caught:
        world.resolve(world.config("official"))
    reason = caught.value.skipped[0].reason
    assert reason.startswith("the snapshot does not name this fingerprint")
    assert f"its Description names {OTHER_FP} (alinux2023, x86_64)" in reason


def test_registry_cannot_bind_any_snapshot_of_a_trusted_owner(world: World) -> None:
    # A real, completed, public snapshot of the trusted account, of the size claimed:
    # but nothing on it says it holds this fingerprint (a backup, another stack).
    backup = world.snapshot(account=OFFICIAL, public=True, description=False, tags=False)
    world.publish("bioinformatics-v1", [variant(backup)])
    with pytest.raises(SnapshotNotFound) as caught:
        world.resolve(world.config("official"))
    (skipped,) = caught.value.skipped
    assert (skipped.snapshot_id, skipped.owner) == (backup, OFFICIAL)
    assert skipped.reason.startswith("the snapshot does not name this fingerprint")
    assert "its Description is not a petal one and it has no petal tags" in skipped.reason


def test_registry_cannot_bind_a_snapshot_of_another_os_or_architecture(world: World) -> None:
    # The fingerprint is right, but the snapshot was built for arm64 and the registry
    # lists it as x86_64 (and, below, for ubuntu as al2023).
    arm = world.snapshot(account=OFFICIAL, public=True, arch="arm64")
    ubuntu = world.snapshot(account=OFFICIAL, public=True, os="ubuntu2404")
    world.publish("bioinformatics-v1", [variant(arm), variant(ubuntu)])
    with pytest.raises(SnapshotNotFound) as caught:
        world.resolve(world.config("official"))
    reasons = {s.snapshot_id: s.reason for s in caught.value.skipped}
    assert f"names {FP} (alinux2023, arm64)" in reasons[arm]
    assert f"names {FP} (ubuntu2404, x86_64)" in reasons[ubuntu]


def test_registry_listing_own_snapshots_is_bound_by_their_tags(world: World) -> None:
    # Tags are visible to the owner only: a registry (say, a company's) listing the
    # caller's own snapshots is confirmed by them when the Description is not petal's.
    tagged = world.snapshot(account=OWN, description=False)
    other = world.snapshot(account=OWN, description=False, fp=OTHER_FP, age_days=-1)
    world.publish(
        "bioinformatics-v1", [variant(tagged, aws_account=OWN), variant(other, aws_account=OWN)]
    )
    result = world.resolve(world.config("official", trusted=(OWN,)))
    assert result.snapshot_id == tagged
    (skipped,) = result.skipped
    assert skipped.snapshot_id == other
    assert f"its tags name {OTHER_FP} (alinux2023, x86_64)" in skipped.reason


def test_registry_variants_are_confirmed_in_batches_not_one_call_each(world: World) -> None:
    good = [world.snapshot(account=OFFICIAL, public=True, age_days=n) for n in range(3)]
    impostor = world.snapshot(account=UNTRUSTED, public=True)
    missing = "snap-0123456789abcdef0"
    world.publish(
        "bioinformatics-v1",
        [*map(variant, good), variant(impostor), variant(missing)],
    )
    calls: list[dict[str, Any]] = []
    ec2 = world.ec2()
    ec2.meta.events.register(
        "provide-client-params.ec2.DescribeSnapshots",
        lambda params, **_: calls.append(params),
    )
    result = world.resolve(world.config("official"))
    assert result.snapshot_id == good[0]
    reasons = {s.snapshot_id: s.reason for s in result.skipped}
    assert reasons[impostor] == (
        f"EC2 says it is owned by {UNTRUSTED}, not {OFFICIAL} as the registry claims"
    )
    assert reasons[missing].startswith("not found in us-east-1 for owner")
    # One call for the owner's five claims, one to learn whose the two absent ones are.
    assert len(calls) == 2
    assert calls[0]["OwnerIds"] == [OFFICIAL]
    assert len(calls[0]["Filters"][0]["Values"]) == 5
    assert "OwnerIds" not in calls[1]
    assert sorted(calls[1]["Filters"][0]["Values"]) == sorted([impostor, missing])


class CountingEC2:
    """DescribeSnapshots over a fixed set of snapshots, counting calls and enforcing
    EC2's limit of 200 values per filter."""

    def __init__(self, snapshots: list[dict[str, Any]]) -> None:
        self.snapshots = snapshots
        self.calls: list[dict[str, Any]] = []

    def describe_snapshots(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        owners = set(kwargs.get("OwnerIds", ()))
        ids: set[str] | None = set(kwargs["SnapshotIds"]) if "SnapshotIds" in kwargs else None
        for f in kwargs.get("Filters", ()):
            assert len(f["Values"]) <= 200, "EC2: at most 200 values per filter"
            assert f["Name"] == "snapshot-id"
            ids = set(f["Values"]) if ids is None else ids & set(f["Values"])
        return {
            "Snapshots": [
                s
                for s in self.snapshots
                if (not owners or s["OwnerId"] in owners)
                and (ids is None or s["SnapshotId"] in ids)
            ]
        }

    def get_paginator(self, name: str) -> Any:
        assert name == "describe_snapshots"
        ec2 = self

        class Paginator:
            def paginate(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
                yield ec2.describe_snapshots(**kwargs)

        return Paginator()


def test_a_thousand_variants_cost_five_describe_calls(world: World) -> None:
    ids = [f"snap-{n:017x}" for n in range(1000)]
    world.publish("bioinformatics-v1", [variant(i) for i in ids])
    ec2 = CountingEC2(
        [
            {
                "SnapshotId": snapshot_id,
                "OwnerId": OFFICIAL,
                "State": "completed",
                "VolumeSize": 500,
                "StartTime": NOW - timedelta(minutes=n),
                "Description": format_description(FP, "alinux2023", "x86_64", "bio"),
            }
            for n, snapshot_id in enumerate(ids)
        ]
    )
    result = resolve(
        make_request(FP, "us-east-1", "alinux2023", "x86_64", 500),
        ec2=ec2,  # type: ignore[arg-type]
        config=world.config("official"),
        registry_for=world.registry_for,
    )
    assert result.snapshot_id == ids[0], "the newest"
    assert "newest of 1000 usable snapshot(s)" in result.reason
    assert len(ec2.calls) == 5
    assert all(call["OwnerIds"] == [OFFICIAL] for call in ec2.calls)
    asked = [i for call in ec2.calls for i in call["Filters"][0]["Values"]]
    assert sorted(asked) == ids


def test_registry_picks_newest_confirmed_variant_and_skips_the_rest(world: World) -> None:
    old = world.snapshot(account=OFFICIAL, public=True, age_days=9)
    new = world.snapshot(account=OFFICIAL, public=True, age_days=1)
    arm = world.snapshot(account=OFFICIAL, public=True, arch="arm64")
    world.publish(
        "bioinformatics-v1",
        [
            variant(old),
            variant(new),
            variant(arm, architecture="arm64"),
            variant("snap-0123456789abcdef0"),  # listed, but does not exist
        ],
    )
    result = world.resolve(world.config("official"))
    assert result.snapshot_id == new
    assert [s.snapshot_id for s in result.skipped] == ["snap-0123456789abcdef0"]


def test_registry_without_the_variant_says_what_it_offers(world: World) -> None:
    arm = world.snapshot(account=OFFICIAL, public=True, arch="arm64")
    world.publish("bioinformatics-v1", [variant(arm, architecture="arm64")])
    with pytest.raises(SnapshotNotFound) as caught:
        world.resolve(world.config("official"))
    assert "it offers: us-east-1/alinux2023/arm64" in caught.value.skipped[0].reason


def test_a_broken_registry_is_skipped_and_later_sources_still_tried(world: World) -> None:
    world.server.files["snapshots/index.json"] = b"<html>oops</html>"
    trusted = world.snapshot(account=TRUSTED)
    result = world.resolve(world.config("official", "organization"))
    assert result.snapshot_id == trusted
    assert "registry unusable" in result.skipped[0].reason


def test_disabled_sources_are_not_consulted(world: World) -> None:
    official = world.snapshot(account=OFFICIAL, public=True)
    world.publish("bioinformatics-v1", [variant(official)])
    config = world.config("local", "official", "community")
    sources = tuple(
        SnapshotSource(s.type, s.type == "local", s.accounts, s.url)
        for s in config.snapshot_sources
    )
    config = UserConfig(config.registry, sources, config.deployment)
    with pytest.raises(SnapshotNotFound) as caught:
        world.resolve(config)
    assert caught.value.sources == ("own account",)
    assert world.server.requests() == 0


def test_first_source_with_a_match_stops_the_search(world: World) -> None:
    world.snapshot()
    official = world.snapshot(account=OFFICIAL, public=True)
    world.publish("bioinformatics-v1", [variant(official)])
    assert world.resolve(world.config("local", "official")).source == "local"
    assert world.server.requests() == 0


def test_no_trusted_accounts_means_no_organization_lookup(world: World) -> None:
    world.snapshot(account=TRUSTED)
    with pytest.raises(SnapshotNotFound) as caught:
        world.resolve(world.config("organization", trusted=()))
    assert caught.value.skipped[0].reason == "no trusted_accounts configured"


def test_aws_errors_are_a_resolution_error(world: World) -> None:
    class Denied:
        def get_paginator(self, name: str) -> Any:
            from botocore.exceptions import ClientError

            error = {"Error": {"Code": "UnauthorizedOperation", "Message": "no"}}
            raise ClientError(error, "DescribeSnapshots")  # type: ignore[arg-type]

    request = make_request(FP, "us-east-1", "alinux2023", "x86_64", 500)
    with pytest.raises(ResolutionError, match="UnauthorizedOperation"):
        resolve(request, ec2=Denied(), config=world.config("local"))  # type: ignore[arg-type]


# --- the request -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"fingerprint": "sha256:abc"}, "fingerprint"),
        ({"region": "us east"}, "region"),
        ({"os": "windows"}, "os"),
        ({"os": 7}, "os"),
        ({"architecture": "i386"}, "architecture"),
        ({"size_gb": 0}, "size_gb"),
        ({"size_gb": True}, "size_gb"),
        ({"size_gb": 20000}, "size_gb"),
    ],
)
def test_bad_requests_name_the_field(values: dict[str, Any], field: str) -> None:
    good: dict[str, Any] = {
        "fingerprint": FP,
        "region": "us-east-1",
        "os": "alinux2023",
        "architecture": "x86_64",
        "size_gb": 500,
    }
    with pytest.raises(InvalidRequest) as caught:
        make_request(**{**good, **values})
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


def test_request_normalises_the_os_spelling() -> None:
    request = make_request(FP, "us-east-1", "al2023", "arm64", 20, "seed")
    assert request == ResolutionRequest(FP, "us-east-1", "alinux2023", "arm64", 20, "seed")
