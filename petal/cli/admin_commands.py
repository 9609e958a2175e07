"""`petal admin redrive`: an operator's commands for the deployed pipeline.

redrive hands what petal's dead-letter queues hold back to the function that could
not process it (petal/build/redrive.py says how, and why it is safe to repeat).
"""

from __future__ import annotations

import argparse

from petal.aws.deployment import DeploymentNotFound
from petal.build.redrive import redrive, select_queues
from petal.cli.build_watch import find_pipeline
from petal.cli.commands import command
from petal.cli.output import add_json_flag, print_json
from petal.deployment_contract import OUTPUT_DEAD_LETTER_QUEUES
from petal.errors import EXIT_FAILURE, EXIT_OK


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    admin = command("admin").add_parser(
        subparsers,
        description="Operator commands for the deployed petal stack.",
    )
    commands = admin.add_subparsers(dest="admin_command", metavar="COMMAND", required=True)
    replay = commands.add_parser(
        "redrive",
        help="replay what the dead-letter queues hold through the same functions",
        description="Each event petal's callback, intake or janitor function could not "
        "process (or EventBridge could not deliver) waits in that function's dead-letter "
        "queue, and its alarm fires. redrive invokes the function again with each event, "
        "deletes the messages whose replay succeeded, and reports each outcome; a message "
        "that fails again stays. Replaying an event that was already applied changes "
        "nothing, so running it twice is safe. Needs sqs:ReceiveMessage, DeleteMessage, "
        "ChangeMessageVisibility and GetQueueAttributes on the queues and "
        "lambda:InvokeFunction on the functions.",
    )
    replay.add_argument(
        "--queue",
        choices=sorted(OUTPUT_DEAD_LETTER_QUEUES),
        help="only this function's queue (default: all of them)",
    )
    replay.add_argument(
        "--dry-run", action="store_true", help="list what would be replayed; change nothing"
    )
    replay.add_argument("--region", help="AWS region of the petal stack")
    replay.add_argument("--stack-name", help="name of the petal stack (default: petal)")
    add_json_flag(replay)
    replay.set_defaults(func=_redrive)


def _redrive(args: argparse.Namespace) -> int:
    pipeline = find_pipeline(args.region, args.stack_name)
    available = pipeline.deployment.dead_letter_queues
    if not available:
        raise DeploymentNotFound(
            f"stack {pipeline.deployment.stack_name!r} has no dead-letter queue outputs: it "
            "was deployed before petal had them. Redeploy it with `cdk deploy`."
        )
    report = redrive(
        select_queues(available, args.queue),
        sqs=pipeline.client("sqs"),
        lambda_client=pipeline.client("lambda"),
        dry_run=args.dry_run,
    )
    if getattr(args, "json", False):
        print_json(report.to_json())
    else:
        print("\n".join(report.lines()))
    return EXIT_FAILURE if report.failed else EXIT_OK
