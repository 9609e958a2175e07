"""The shared build cache (petal:buildCache): a Spack binary mirror in S3 that every
build tries first and pushes what it built to, and the secret holding the GnuPG key the
binaries are signed with.

The bucket is petal's ("create") or one the operator names; either way builders use only
its build-cache/ prefix (stacks/builder_identity.py). The secret starts without a key:
Lambda has no gpg, so the first build that uses the cache creates the key on its builder
and offers it under a fixed version token; Secrets Manager keeps the first offer, so
builders racing end with one key (ssm_documents/bootstrap_helper.py cache-key-put).
The secret's policy lets no principal but the builder role read or write its value.
"""

from __future__ import annotations

from typing import Final

from aws_cdk import Duration, SecretValue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from petal.build.build_cache import CACHE_PREFIX, NO_KEY_YET, cache_url
from stacks import checkov
from stacks.nag import acknowledge
from stacks.seed_bucket import private_bucket

# The actions on the key's value; the builder role alone may call them.
SECRET_VALUE_ACTIONS: Final = ("secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue")
# A cache entry unused for this long is rebuilt at worst: what it saved no longer pays
# for its storage. S3 cannot expire by last access, so by age.
CACHE_EXPIRATION_DAYS: Final = 365
# Builds are pushed to with multipart uploads; one that died mid-push leaves parts.
ABORTED_UPLOAD_DAYS: Final = 1


class BuildCache(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        setting: str,
        access_logs: s3.IBucket,
    ) -> None:
        super().__init__(scope, construct_id)
        self.bucket: s3.IBucket
        if setting == "create":
            self.bucket = private_bucket(
                self,
                "Bucket",
                server_access_logs_bucket=access_logs,
                server_access_logs_prefix="build-cache-bucket/",
                lifecycle_rules=[
                    s3.LifecycleRule(
                        prefix=f"{CACHE_PREFIX}/",
                        expiration=Duration.days(CACHE_EXPIRATION_DAYS),
                    ),
                    s3.LifecycleRule(
                        abort_incomplete_multipart_upload_after=Duration.days(ABORTED_UPLOAD_DAYS)
                    ),
                ],
            )
            checkov.skip(
                self.bucket,
                "CKV_AWS_21",
                "A cache entry is named by its hash and written once; versions would only "
                "keep expired entries, which the lifecycle rule removes on purpose.",
            )
        else:
            self.bucket = s3.Bucket.from_bucket_name(self, "Bucket", setting)
        self.url = cache_url(self.bucket.bucket_name)

        self.secret = secretsmanager.Secret(
            self,
            "SigningKey",
            description="petal build cache: the GnuPG key builders sign binaries with",
            secret_string_value=SecretValue.unsafe_plain_text(NO_KEY_YET),
        )
        acknowledge(
            self.secret,
            "AwsSolutions-SMG4",
            "A signing key cannot rotate on a schedule: every binary in the cache is "
            "signed with it and verified against it. Replace it by hand (docs/BUILD_CACHE.md).",
        )
        checkov.skip(
            self.secret,
            "CKV_AWS_149",
            "The secret's resource policy already lets only the builder role read it; a "
            "customer managed key would add cost and no reader.",
        )

    def allow_only(self, role: iam.IRole) -> None:
        """Deny the key's value to every principal but `role` (account admins included:
        only changing this policy gets past it)."""
        self.secret.add_to_resource_policy(
            iam.PolicyStatement(
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=list(SECRET_VALUE_ACTIONS),
                resources=["*"],
                conditions={"StringNotEquals": {"aws:PrincipalArn": role.role_arn}},
            )
        )
