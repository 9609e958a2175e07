"""Stand-in for the builder's boto3 in the bootstrap tests: S3 PutObject writes under
$FAKE_AWS_DIR/s3/BUCKET/KEY, and Secrets Manager keeps secrets in $FAKE_AWS_DIR/secrets
with AWS's rule for ClientRequestToken: a token already used with another value is
refused (ResourceExistsException), with the same value ignored."""

import json
import os
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError


def _state() -> Path:
    return Path(os.environ["FAKE_AWS_DIR"])


def _log(text: str) -> None:
    with (_state() / "calls").open("a") as log:
        log.write(text + "\n")


class _S3:
    def put_object(self, *, Bucket: str, Key: str, Body: bytes, **extra: Any) -> dict[str, Any]:
        _log(f"s3 PutObject s3://{Bucket}/{Key}")
        target = _state() / "s3" / Bucket / Key
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(Body)
        return {}


class _SecretsManager:
    def _load(self, secret: str) -> dict[str, Any]:
        path = _state() / "secrets" / secret.replace("/", "_").replace(":", "_")
        if not path.exists():
            raise ClientError({"Error": {"Code": "ResourceNotFoundException"}}, "GetSecretValue")
        return dict(json.loads(path.read_text()))

    def _save(self, secret: str, data: dict[str, Any]) -> None:
        path = _state() / "secrets" / secret.replace("/", "_").replace(":", "_")
        path.write_text(json.dumps(data))

    def get_secret_value(self, *, SecretId: str) -> dict[str, Any]:
        _log(f"secretsmanager GetSecretValue {SecretId}")
        data = self._load(SecretId)
        return {"SecretString": data["versions"][data["current"]]}

    def put_secret_value(
        self, *, SecretId: str, SecretString: str, ClientRequestToken: str
    ) -> dict[str, Any]:
        _log(f"secretsmanager PutSecretValue {SecretId} {ClientRequestToken}")
        data = self._load(SecretId)
        existing = data["versions"].get(ClientRequestToken)
        if existing is not None and existing != SecretString:
            raise ClientError({"Error": {"Code": "ResourceExistsException"}}, "PutSecretValue")
        data["versions"][ClientRequestToken] = SecretString
        data["current"] = ClientRequestToken
        self._save(SecretId, data)
        return {}


def client(service: str, region_name: str) -> Any:
    assert region_name, "the helper must pass the instance's region"
    return {"s3": _S3, "secretsmanager": _SecretsManager}[service]()
