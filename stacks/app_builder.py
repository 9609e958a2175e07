"""Build the CDK app: read settings, add the stack, turn on cdk-nag.

cdk-nag runs on every synth (and so every deploy): an unacknowledged finding stops
synthesis with `ValidationFailed`.
"""

from __future__ import annotations

from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks

from stacks.petal_stack import PetalStack
from stacks.settings import PetalSettings


def build_app(app: App) -> PetalStack:
    settings = PetalSettings.from_context(app.node)
    stack = PetalStack(app, settings.stack_name, settings=settings)
    # Acknowledgments are copied into the template's Metadata, so a reviewer of the
    # synthesized template sees every one with its reason.
    Validations.of(app).add_plugins(
        AwsSolutionsChecks(app, write_suppressions_to_cloud_formation=True)
    )
    return stack
