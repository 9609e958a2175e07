"""petal's Lambda handlers: one module per function, each exposing `handler`.

Handlers are thin: parse the event, call petal's core logic with boto3 clients, return
a small JSON result. Logging, tracing and metrics are set up once, in observability.
"""
