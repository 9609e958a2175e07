"""Stand-in for botocore in the bootstrap tests (see boto3/__init__.py)."""
