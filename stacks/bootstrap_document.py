"""The SSM Command document the bootstrap step runs on the builder: the document in
ssm_documents/bootstrap.yaml with ssm_documents/bootstrap.sh and bootstrap_helper.py
injected, rendered by petal.build.bootstrap_document so local mode and the stack deploy
the same content."""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from petal.build.bootstrap_document import render_bootstrap_document
from stacks.paths import REPO_ROOT


def document_name(stack_name: str) -> str:
    return f"{stack_name}-bootstrap"


class BootstrapDocument(Construct):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.name = document_name(Stack.of(self).stack_name)
        self.document = ssm.CfnDocument(
            self,
            "Document",
            name=self.name,
            document_type="Command",
            content=render_bootstrap_document(REPO_ROOT),
            # A fixed name makes content changes impossible with the default
            # replace-on-update; NewVersion adds a version and makes it the default.
            update_method="NewVersion",
        )
        # Ref of the document is its name; using it orders the rules after it.
        self.document_ref = self.document.ref
