"""Every command in the fenced bash blocks of README.md and docs/*.md is one that works
as written, checked offline as far as each kind allows:

- `petal ...`: parses with petal's own parser (its type checks included), and every
  seed file it names exists and is valid;
- `cdk deploy -c petal:KEY=VALUE`: the settings pass stacks/settings.py's validation
  and the partition check the stack makes;
- `cdk bootstrap aws://ACCOUNT/REGION`: a valid account and region;
- `aws SERVICE OPERATION --option ...`: the operation and its options exist in
  botocore's model; a start-execution input is a valid build request, a resolver
  payload a valid resolver event, an S3 upload lands where intake looks;
- `make TARGET`: the Makefile has the target.

Words the reader replaces (BUILD_ID, SNAP, <ACCOUNT_ID>, ...) are filled in with valid
examples first. Running the README's "Using petal" walk-through is another test's job
(tests/cli/test_readme_walkthrough.py); this one only checks that its lines parse.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import re
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore
import botocore.session
import jsonschema
import pytest

from petal.aws.session import known_regions
from petal.build.request import build_request_schema
from petal.cli.main import build_parser, option_problem
from petal.cluster.resolver_event import parse_event
from petal.deployment_contract import ENV_NODE_SETUP_URI
from petal.identifiers import ACCOUNT_ID, SNAPSHOT_ID, SUBNET_ID
from petal.seed.loading import load_seed
from petal.user_config import config_from_environment
from stacks.petal_stack import check_partition
from stacks.settings import PREFIX, PetalSettings

REPO = Path(__file__).resolve().parents[2]
DOCUMENTS = (REPO / "README.md", *sorted((REPO / "docs").glob("*.md")))

FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```(?P<lang>[\w-]*)[ \t]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$",
    re.S | re.M,
)
SHELL_LANGUAGES = frozenset({"bash", "sh", "shell", "console"})

# What a reader puts in for a placeholder, in the order tried (longer words first).
PLACEHOLDERS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"<ACCOUNT_ID>"), "123456789012"),
    (
        re.compile(r"<StateMachineArn>"),
        "arn:aws:states:us-east-1:123456789012:stateMachine:petal-build",
    ),
    (re.compile(r"<SeedBucketName>"), "petal-seeds-123456789012"),
    (re.compile(r"<ResolverFunctionName>"), "petal-Resolver"),
    (re.compile(r"<BuildLogGroupName>"), "/petal/builds"),
    (re.compile(r"<checkout>"), "../petal-snapshots"),
    (re.compile(r"\bBUILD_ID\b"), "bioinformatics-20250101-120000-ab12"),
    (re.compile(r"\bSNAP\b"), "snap-0123456789abcdef0"),
    (re.compile(r"(?<=--seed )NAME\b"), "bioinformatics"),
    (re.compile(r"sha256:\.\.\."), "sha256:" + "0" * 64),
    # The reader's own image (`pcluster build-image`): no example id could be theirs.
    (re.compile(r"\bami-\.\.\.(?=\s|$)"), "ami-0123456789abcdef0"),
)
# Seed files a reader writes themselves: the documents name them as examples.
READERS_SEEDS = frozenset({"my-seed.yaml", "seeds/my-stack.yaml", "seeds/my-stack-v1.yaml"})
# Commands that run elsewhere (on a cluster node, in the reader's own shell setup) and
# that nothing here can check.
UNCHECKED = frozenset({"source", "module", "cd", "python"})
# AWS CLI options that are not members of the operation's input.
AWS_CLI_OPTIONS = frozenset({"--cli-binary-format", "--region", "--query", "--output", "--profile"})


SYNTAX_ERROR = "<not shell>"


@dataclass(frozen=True)
class Command:
    document: str
    line: int
    words: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.document}:{self.line}: {shlex.join(self.words)}"


def fill_placeholders(text: str) -> str:
    for pattern, value in PLACEHOLDERS:
        text = pattern.sub(value, text)
    if text.lstrip().startswith("petal "):
        # `[--status FAILED]` in a usage line: the optional parts are checked as if given.
        text = re.sub(r"\[([^\]]*)\]", r"\1", text)
    return text


def block_commands(document: Path) -> Iterator[Command]:
    text = document.read_text()
    name = str(document.relative_to(REPO))
    for block in FENCE.finditer(text):
        if block.group("lang") not in SHELL_LANGUAGES:
            continue
        first_line = text[: block.start("body")].count("\n") + 1
        indent = len(block.group("indent"))
        lines = [line[indent:] for line in block.group("body").splitlines()]
        pending: list[str] = []
        start = first_line
        for offset, line in enumerate(lines):
            if not pending:
                start = first_line + offset
            pending.append(line.removesuffix("\\"))
            if line.rstrip().endswith("\\"):
                continue
            source = fill_placeholders(" ".join(pending))
            pending = []
            lexer = shlex.shlex(source, posix=True, punctuation_chars="&;|")
            lexer.whitespace_split = True
            lexer.commenters = "#"
            try:
                tokens = [*lexer, ";"]
            except ValueError as error:
                # Not shell as written (an unclosed quote): reported by
                # test_every_command_is_checked.
                yield Command(name, start, (SYNTAX_ERROR, str(error), source))
                continue
            words: list[str] = []
            for word in tokens:
                if word in ("&&", "&", ";", "||", "|"):
                    if words:
                        yield Command(name, start, tuple(words))
                    words = []
                else:
                    words.append(word)


ALL_COMMANDS = tuple(c for document in DOCUMENTS for c in block_commands(document))


def commands_of(program: str) -> list[Command]:
    return [c for c in ALL_COMMANDS if c.words[0] == program]


def test_commands_found() -> None:
    """The extraction works: the documents' known commands are among those found."""
    found = {str(c) for c in ALL_COMMANDS}
    assert any(c.startswith("README.md") and "petal build --seed" in c for c in found)
    assert any("cdk deploy" in c for c in found)
    assert any(c.startswith("docs/MIGRATION.md") for c in found)  # indented blocks too


def test_every_command_is_checked() -> None:
    """Every line is shell as written, and a new kind of command needs a check here (or
    a reason it cannot have one)."""
    known = {"petal", "npx", "aws", "make", *UNCHECKED}
    unknown = [
        str(c) for c in ALL_COMMANDS if c.words[0] not in known and not c.words[0].startswith("#!")
    ]
    assert not unknown, "\n".join(unknown)


# --- ids in any command --------------------------------------------------------------------

# AWS ids as commands take them: alone, in a comma-separated list, or `REGION:snap-...`.
AWS_IDS: dict[str, re.Pattern[str]] = {
    "snap-": SNAPSHOT_ID,
    "subnet-": SUBNET_ID,
    "vpc-": re.compile(r"^vpc-([0-9a-f]{8}|[0-9a-f]{17})$"),
    "ami-": re.compile(r"^ami-([0-9a-f]{8}|[0-9a-f]{17})$"),
}


def id_problems(command: Command) -> Iterator[str]:
    for word in command.words[1:]:
        value = word.partition("=")[2] if word.startswith("petal:") else word
        for item in value.split(","):
            region, sep, name = item.rpartition(":")
            if sep and not region.startswith(("s3", "arn", "http", "aws")):
                if name.startswith("snap-") and region not in known_regions():
                    yield f"{item}: {region!r} is not a region"
                item = name
            for prefix, pattern in AWS_IDS.items():
                if item.startswith(prefix) and not pattern.match(item):
                    yield f"{item}: not a valid {prefix}... id"


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=str)
def test_ids_are_valid(command: Command) -> None:
    """Ids a command takes look like real ones: a parser that checks them later (or
    AWS) would otherwise refuse the example as written."""
    problems = list(id_problems(command))
    assert not problems, f"{command}: {'; '.join(problems)}"


# --- petal ---------------------------------------------------------------------------------


def parse_petal(argv: list[str]) -> Any:
    """The namespace petal's parser makes of `argv`; a usage error fails with
    argparse's message."""
    parser = build_parser(argv)
    problem = option_problem(parser, argv)
    assert problem is None, problem
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            return parser.parse_args(argv)
    except SystemExit:
        pytest.fail(stderr.getvalue())


SEED_FLAGS = frozenset({"--seed"})


def seed_files(argv: list[str]) -> list[str]:
    """The seed files a command line names (`build list --seed NAME` names a seed by
    its name, not a file)."""
    given = [value for flag, value in itertools.pairwise(argv) if flag in SEED_FLAGS]
    if argv[:1] == ["seed"]:
        given += argv[2:]
    return [word for word in given if word.endswith((".yaml", ".yml"))]


@pytest.mark.parametrize("command", commands_of("petal"), ids=str)
def test_petal_command_parses(command: Command, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    argv = list(command.words[1:])
    namespace = parse_petal(argv)
    assert callable(getattr(namespace, "func", None)), f"{command}: names no command to run"
    for file in seed_files(argv):
        if file in READERS_SEEDS:
            continue
        assert (REPO / file).is_file(), f"{command}: {file} does not exist"
        load_seed(REPO / file)


# --- cdk -----------------------------------------------------------------------------------


def cdk_context(words: tuple[str, ...]) -> dict[str, str]:
    context: dict[str, str] = {}
    for flag, value in itertools.pairwise(words):
        if flag in ("-c", "--context"):
            key, sep, setting = value.partition("=")
            assert sep, f"-c {value}: needs KEY=VALUE"
            context[key] = setting
    return context


def cdk_json_context() -> dict[str, Any]:
    context: dict[str, Any] = json.loads((REPO / "cdk.json").read_text())["context"]
    return context


@pytest.mark.parametrize(
    "command",
    [
        c
        for c in commands_of("npx")
        if c.words[1:3] in (("cdk", "deploy"), ("cdk", "synth"), ("cdk", "destroy"))
    ],
    ids=str,
)
def test_cdk_settings_are_valid(command: Command) -> None:
    given = cdk_context(command.words)
    assert all(key.startswith(PREFIX) for key in given), f"{command}: not a petal setting"
    merged: Mapping[str, Any] = {**cdk_json_context(), **given}
    values = {k.removeprefix(PREFIX): v for k, v in merged.items() if k.startswith(PREFIX)}
    settings = PetalSettings.from_mapping(values)
    check_partition(settings.region)


@pytest.mark.parametrize(
    "command", [c for c in commands_of("npx") if c.words[1:3] == ("cdk", "bootstrap")], ids=str
)
def test_cdk_bootstrap_environment(command: Command) -> None:
    (environment,) = [w for w in command.words[3:] if w.startswith("aws://")]
    account, _, region = environment.removeprefix("aws://").partition("/")
    assert ACCOUNT_ID.match(account), f"{command}: {account!r} is not an account id"
    assert region in known_regions(), f"{command}: {region!r} is not a region"
    check_partition(region)


def test_npx_runs_only_cdk() -> None:
    assert all(c.words[1] == "cdk" for c in commands_of("npx"))


# --- aws -----------------------------------------------------------------------------------

# High-level AWS CLI commands that are not API operations.
AWS_CUSTOM = {("s3", "cp"), ("logs", "tail")}


def options(words: tuple[str, ...]) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for i, word in enumerate(words):
        if word.startswith("--"):
            following = words[i + 1] if i + 1 < len(words) else None
            found[word] = None if following is None or following.startswith("--") else following
    return found


def camel(option: str) -> str:
    return "".join(part.capitalize() for part in option.removeprefix("--").split("-"))


def cli_options(members: Any) -> set[str]:
    """The options the AWS CLI makes of an operation's input members."""
    return {"--" + botocore.xform_name(member, "-") for member in members}


@pytest.mark.parametrize("command", commands_of("aws"), ids=str)
def test_aws_command_exists(command: Command) -> None:
    service, operation = command.words[1:3]
    if (service, operation) in AWS_CUSTOM:
        return
    model = botocore.session.get_session().get_service_model(service)
    name = camel(operation)
    assert name in model.operation_names, f"{command}: aws {service} has no {operation}"
    shape = model.operation_model(name).input_shape
    accepted = cli_options(shape.members if shape else {}) | AWS_CLI_OPTIONS
    for option in options(command.words):
        assert option in accepted, f"{command}: {operation} has no {option}"


@pytest.mark.parametrize(
    "command",
    [c for c in commands_of("aws") if c.words[1:3] == ("stepfunctions", "start-execution")],
    ids=str,
)
def test_start_execution_input_is_a_build_request(command: Command) -> None:
    document = json.loads(options(command.words)["--input"] or "")
    validator = jsonschema.Draft202012Validator(build_request_schema())
    assert not [e.message for e in validator.iter_errors(document)], command


@pytest.mark.parametrize(
    "command", [c for c in commands_of("aws") if c.words[1:3] == ("lambda", "invoke")], ids=str
)
def test_resolver_payload_is_an_event(command: Command, monkeypatch: pytest.MonkeyPatch) -> None:
    # What the deployed function has in its environment: its region and the stack's
    # node-setup script.
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    function_environment = {
        ENV_NODE_SETUP_URI: "s3://petal-seeds-123456789012/node-setup/petal-node-setup.sh"
    }
    payload = json.loads(options(command.words)["--payload"] or "")
    parse_event(payload, config_from_environment(function_environment))


@pytest.mark.parametrize(
    "command", [c for c in commands_of("aws") if c.words[1:3] == ("s3", "cp")], ids=str
)
def test_seed_upload_goes_where_intake_looks(command: Command) -> None:
    destination = command.words[-1]
    assert re.fullmatch(r"s3://[a-z0-9.-]+/seeds/[^/]+\.ya?ml", destination), command


# --- make ----------------------------------------------------------------------------------


@pytest.mark.parametrize("command", commands_of("make"), ids=str)
def test_make_target_exists(command: Command) -> None:
    targets = set(re.findall(r"^([A-Za-z][\w-]*):", (REPO / "Makefile").read_text(), re.M))
    for target in command.words[1:]:
        assert target in targets, f"{command}: the Makefile has no {target}"
