"""The README's "Using petal" block as a new user walks it in local mode: every command
run as written (with `--local`, and the ids the earlier commands printed), then every
command the CLI suggests ("Track with:", "Deploy clusters with:", ...) copied and run.
A suggestion that fails when copied is the dead end this test exists to catch."""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from petal.cli.commands import COMMANDS as TABLE
from tests.cli.local_session import REPO, Demo, local_session
from tests.data.registry.registry_server import RegistryServer

README = REPO / "README.md"
# A word a user replaces before running a command: FILE, alias/YOUR-KEY, <cluster>.
PLACEHOLDER = re.compile(r"\b(FILE|SEED|YOUR-KEY|BUILD_ID|SNAP|AMI_ID)\b|<[^>]+>")
# `petal local mode: ...` is a notice, not a command: only local's own subcommands count.
COMMANDS = (
    *(name for entry in TABLE if entry.name != "local" for name in (entry.name, *entry.aliases)),
    "local status",
    "local stop",
)
# The customer managed key the walk creates when petal says sharing needs one.
SHARING_KEY = "alias/petal-walkthrough"

pytestmark = pytest.mark.filterwarnings("ignore:The 'default' argument to fields:Warning")


def readme_commands() -> list[str]:
    """The `petal ...` lines of the bash block under "## Using petal", comments cut."""
    text = README.read_text()
    section = text[text.index("## Using petal") :]
    block = section[section.index("```bash") + len("```bash") : section.index("```\n", 8)]
    lines = (line.split("#", 1)[0].strip() for line in block.splitlines())
    return [line for line in lines if line.startswith("petal ")]


def suggested(output: str) -> list[str]:
    """Every `petal ...` command in the output: the suggestions a user would copy."""
    commands = "|".join(COMMANDS)
    found = re.findall(rf"(?:[ (:`])(petal (?:--\w+ )*(?:{commands}) [^`)\n]*)", output, re.M)
    return [command.strip() for command in found]


@pytest.fixture
def walk(tmp_path: Path) -> Iterator[Walk]:
    # The user's own directory: the config files petal create writes land there.
    home = tmp_path / "work"
    home.mkdir()
    (home / "seeds").symlink_to(REPO / "seeds")
    registry = RegistryServer()
    try:
        with local_session(tmp_path / "local") as session:
            session.env["PETAL_REGISTRY_URL"] = registry.url
            yield Walk(session, home)
    finally:
        registry.close()


class Walk:
    """Runs commands as the user types them, and every suggestion they print."""

    def __init__(self, demo: Demo, home: Path) -> None:
        self.demo = demo
        self.home = home
        self.ran: list[str] = []
        self.values: dict[str, str] = {}

    def run(self, command: str, expect: int | None = 0) -> subprocess.CompletedProcess[str]:
        """Run `command` as typed (with --local); `expect` None: any exit code."""
        argv = shlex.split(command)
        assert argv[0] == "petal"
        if argv[1] != "--local" and argv[1] != "local":
            argv.insert(1, "--local")
        result = self.demo.run(*argv[1:], cwd=self.home)
        self.ran.append(command)
        output = result.stdout + result.stderr
        assert "Traceback" not in output, output
        if expect is not None:
            assert result.returncode == expect, f"`{command}` exited {result.returncode}:\n{output}"
        for hint in suggested(output):
            # `petal local ...` manages the emulator itself and needs no --local.
            assert hint.startswith(("petal --local ", "petal local ")), (
                f"`{command}` suggested `{hint}`"
            )
        return result

    def follow(self, result: subprocess.CompletedProcess[str]) -> None:
        """Copy and run every suggestion without a placeholder, once each."""
        for hint in suggested(result.stdout + result.stderr):
            if PLACEHOLDER.search(hint) is None and hint not in self.ran:
                self.follow(self.run(hint))


def fill(line: str, values: dict[str, str]) -> str:
    """The README line with its placeholders replaced and [optional] flags given."""
    line = line.replace("[", "").replace("]", "")
    for name, value in values.items():
        line = re.sub(rf"\b{name}\b", value, line)
    return line


def accepted(walk: Walk, command: str) -> subprocess.CompletedProcess[str]:
    """`command` (share or publish), then what its refusal says to do, until it is done.
    A default build is encrypted with the AWS managed key, which AWS lets no one share:
    petal says to copy it with a customer managed key; a public snapshot must be
    unencrypted: petal names --private."""
    for _ in range(3):
        result = walk.run(command, expect=None)
        if result.returncode == 0:
            return result
        assert result.returncode == 1, result.stderr
        copy = [hint for hint in suggested(result.stderr) if " copy " in hint]
        if copy and "alias/YOUR-KEY" in copy[0]:
            kms = walk.demo.client("kms")
            if SHARING_KEY not in str(kms.list_aliases()["Aliases"]):
                key = kms.create_key()["KeyMetadata"]["KeyId"]
                kms.create_alias(AliasName=SHARING_KEY, TargetKeyId=key)
            copied = walk.run(copy[0].replace("alias/YOUR-KEY", SHARING_KEY))
            snapshot = re.findall(r"snap-[0-9a-f]{17}", command)[0]
            command = command.replace(snapshot, re.findall(r"snap-[0-9a-f]{17}", copied.stdout)[-1])
        elif "--private" in result.stderr and "--private" not in command:
            command += " --private"
        else:
            pytest.fail(f"`{command}` was refused with no way forward:\n{result.stderr}")
    pytest.fail(f"`{command}` was still refused after doing what it said")


def test_every_readme_command_and_every_suggestion_runs_in_local_mode(walk: Walk) -> None:
    values = {"NAME": "bioinformatics"}
    for line in readme_commands():
        if "ami-..." in line and "AMI" not in values:
            # The user's own `pcluster build-image` image, in the emulated account.
            image = walk.demo.client("ec2").register_image(
                Name="aws-parallelcluster-3.16.1-rocky9-custom",
                Architecture="x86_64",
                RootDeviceName="/dev/xvda",
            )
            values["AMI"] = image["ImageId"]
        command = fill(line.replace("ami-...", "AMI"), values)
        if " share " in f" {command} " or " publish " in f" {command} ":
            walk.follow(accepted(walk, command))
            continue
        result = walk.run(command)
        if snapshot := re.search(r"Snapshot ID: (snap-[0-9a-f]+)", result.stdout):
            values.setdefault("SNAP", snapshot.group(1))
        if started := re.search(r"Started build (\S+)", result.stdout):
            values["BUILD_ID"] = started.group(1)
        walk.follow(result)
    assert {"SNAP", "BUILD_ID"} <= set(values), "the README shows a build and its snapshot"
    assert (walk.home / "research-config.yaml").is_file()
    assert (walk.home / "my-cluster-config.yaml").is_file(), "the build's suggestion ran"


def test_a_seed_for_another_region_is_built_copied_and_created_from_the_suggestions(
    walk: Walk,
) -> None:
    # seeds/chemistry.yaml runs its clusters in us-west-2; the stack is in us-east-1.
    built = walk.run("petal build --seed seeds/chemistry.yaml")
    assert "--to us-west-2" in built.stdout
    walk.follow(built)
    assert any(" copy " in command for command in walk.ran)
    assert (walk.home / "my-cluster-config.yaml").is_file()


def test_a_failed_build_suggests_only_what_works(walk: Walk) -> None:
    for failure in ("bootstrap:failed", "launch:capacity"):
        failed = walk.run(
            f"petal build --seed seeds/testing/workload-basic.yaml --force "
            f"--simulate-failure {failure}",
            expect=1,
        )
        walk.follow(failed)
    assert any(" logs " in command for command in walk.ran), "the install's log was offered"
