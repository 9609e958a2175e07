#!/usr/bin/env python3
"""CDK entry point: settings come from cdk.json context (see stacks/settings.py)."""

from aws_cdk import App

from stacks.app_builder import build_app

app = App()
build_app(app)
app.synth()
