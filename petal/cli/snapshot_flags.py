"""What the snapshot commands (share, unshare, copy, publish) have in common: their AWS
clients and region, and their flag checks. Clients are made through `new_client`,
which tests replace to prove that bad input never reaches AWS."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from petal.aws import session as aws_session
from petal.sharing import public
from petal.sharing.errors import InvalidArgument
from petal.sharing.inputs import validate_region
from petal.sharing.public import BlockPublicAccessState
from petal.user_config import UserConfigError, load_user_config

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client


def new_client(service: str, region: str) -> Any:
    return aws_session.client(service, region)


def client(service: str, region: str) -> Any:
    """The boto3 client for a service and region; tests replace `new_client` to prove
    that bad input never reaches AWS."""
    return new_client(service, region)


def region_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--region",
        default=argparse.SUPPRESS,
        metavar="REGION",
        help="region of snapshots given without REGION: (default: the configured AWS region)",
    )


def positive_int(flag: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"{flag} must be at least 1")
        return value

    return parse


def checked(check: Callable[[str, str], str], flag: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        try:
            return check(text, flag)
        except InvalidArgument as failure:
            # argparse prefixes the flag itself
            raise argparse.ArgumentTypeError(str(failure).removeprefix(f"{flag}: ")) from None

    return parse


def json(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "json", False))


def warn(message: str) -> None:
    sys.stderr.write(f"petal: warning: {message}\n")


def default_region(args: argparse.Namespace, flag: str = "--region") -> str | None:
    """The flag, else the petal config's deployment.region (or PETAL_REGION), else the
    AWS configuration's region: the order `petal build` itself uses."""
    given: str | None = getattr(args, "region", None)
    if given:
        return validate_region(given, flag)
    try:
        configured = load_user_config().deployment.region
    except UserConfigError as failure:
        raise InvalidArgument(str(failure)) from None
    if configured:
        return validate_region(configured, "deployment.region of the petal config")
    from_aws = aws_session.default_region()
    if from_aws is None:
        return None
    return validate_region(
        from_aws, "the AWS region (AWS_REGION, AWS_DEFAULT_REGION or the profile's)"
    )


def ec2(region: str) -> EC2Client:
    ec2_client: EC2Client = client("ec2", region)
    return ec2_client


def block_public_access(ec2: EC2Client) -> BlockPublicAccessState:
    # Looked up through the module at call time so tests can replace the adapter:
    # moto 5.2.5 does not implement GetSnapshotBlockPublicAccessState.
    return public.get_block_public_access_state(ec2)
