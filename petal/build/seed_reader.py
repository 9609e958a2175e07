"""Reading seed files from S3 (the seed bucket, or any s3:// URI a request names)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from petal.aws.errors import aws_call, error_code, translate
from petal.build.request import BuildRequestError, SeedReader

if TYPE_CHECKING:
    from petal.build.intake import ObjectSize


def s3_seed_reader(s3: Any) -> SeedReader:
    def read(bucket: str, key: str, version_id: str | None) -> bytes:
        request: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if version_id:
            request["VersionId"] = version_id
        try:
            body = s3.get_object(**request)["Body"]
            return bytes(body.read())
        except ClientError as error:
            code = error_code(error)
            where = f"s3://{bucket}/{key}" + (f"?versionId={version_id}" if version_id else "")
            if code in ("NoSuchKey", "NoSuchBucket", "NoSuchVersion", "404"):
                raise BuildRequestError(
                    [f"seed_uri: {where} does not exist ({code}): upload the seed there first"]
                ) from None
            if code in ("AccessDenied", "403"):
                raise BuildRequestError(
                    [
                        f"seed_uri: {where} cannot be read (AccessDenied): use the deployment's "
                        "seed bucket, or grant the prepare function s3:GetObject on it"
                    ]
                ) from None
            raise translate(f"S3 GetObject {where}", error) from error

    return read


def s3_object_size(s3: Any) -> ObjectSize:
    def size(bucket: str, key: str, version_id: str | None) -> int:
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

    return size
