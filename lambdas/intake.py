"""EventBridge target: a seed uploaded to the seed bucket -> start its build, once."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from lambdas.clients import client
from lambdas.observability import add_metric, correlate, lambda_handler, logger
from petal.aws.errors import aws_call, error_code
from petal.build.config import BuildConfig
from petal.build.intake import on_seed_uploaded
from petal.build.records import utc_now
from petal.build.seed_reader import s3_seed_reader
from petal.build.table import BuildTable


@lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    config = BuildConfig.from_environ()
    s3 = client("s3")

    def object_size(bucket: str, key: str, version_id: str | None) -> int:
        # A one-byte ranged read: its Content-Range gives the size without the body,
        # under the s3:GetObject the function has anyway.
        request = {"Bucket": bucket, "Key": key, "Range": "bytes=0-0"}
        if version_id:
            request["VersionId"] = version_id
        with aws_call(f"S3 GetObject (range) s3://{bucket}/{key}"):
            try:
                response = s3.get_object(**request)
            except ClientError as error:
                if error_code(error) == "InvalidRange":  # an empty object
                    return 0
                raise
        response["Body"].close()
        total = str(response.get("ContentRange", "")).rpartition("/")[2]
        return int(total) if total.isdigit() else int(response["ContentLength"])

    result = on_seed_uploaded(
        event,
        read_seed=s3_seed_reader(s3),
        seed_bucket=config.seed_bucket,
        object_size=object_size,
        table=BuildTable(client("dynamodb"), config.table_name),
        sfn=client("stepfunctions"),
        state_machine_arn=config.state_machine_arn,
        now=utc_now(),
    )
    correlate(result.build_id)
    if result.error is not None:
        add_metric("BuildFailed", 1)
    logger.info(result.reason, extra=result.to_json())
    return result.to_json()
