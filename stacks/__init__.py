"""The petal CDK stack: one construct per concern, composed in petal_stack.py."""
