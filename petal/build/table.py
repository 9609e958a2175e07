"""The builds table: build records, per-variant locks, parked task tokens and intake
markers, written conditionally so concurrent steps never overwrite one another."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, cast

from botocore.exceptions import ClientError

from petal.aws.errors import aws_call, is_conditional_check_failure, translate
from petal.build.records import (
    FP_PK,
    LOG_KEY_ATTRIBUTE,
    PK,
    RECENCY_PARTITION,
    RECENT_PK,
    SK,
    STATUSES,
    TTL,
    BuildRecord,
    IntakeMarker,
    LockHolder,
    ParkedToken,
    build_key,
    from_dynamo,
    intake_key,
    iso,
    lock_key,
    plain,
    to_dynamo,
    token_key,
)
from petal.deployment_contract import (
    INDEX_BY_FINGERPRINT,
    INDEX_BY_RECENCY,
    INDEX_KEYS,
)


def _conditional_write(action: str, call: Callable[[], Any]) -> Any | None:
    """Run a conditional write: its response, or None when the condition failed."""
    try:
        return call()
    except ClientError as error:
        if is_conditional_check_failure(error):
            return None
        raise translate(action, error) from error


class BuildIdTaken(Exception):
    """A build record with this id exists already."""


class InvalidCursor(ValueError):
    """An `after` cursor that this table did not hand out."""


# A filtered page reads up to FILTERED_READ items per Query and at most MAX_PAGE_READS
# Queries (DynamoDB filters after reading): beyond that the page ends short, with a
# cursor where reading stopped, so one call costs the same however long the history.
FILTERED_READ: Final = 500  # about what one DynamoDB response holds (1 MB) of records
MAX_PAGE_READS: Final = 2


@dataclass(frozen=True)
class BuildPage:
    """One page of builds, newest first; `next` continues after it (None: the end)."""

    records: list[BuildRecord]
    next: str | None


class BuildTable:
    """Every read and write petal makes to the builds table."""

    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self.table_name = table_name

    # --- builds --------------------------------------------------------------------

    def create_build(self, record: BuildRecord) -> None:
        written = _conditional_write(
            "DynamoDB PutItem (build record)",
            lambda: self._client.put_item(
                TableName=self.table_name,
                Item=to_dynamo(record.to_item()),
                ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": PK},
            ),
        )
        if written is None:
            raise BuildIdTaken(record.build_id)

    def get_build(self, build_id: str) -> BuildRecord | None:
        return self.get_build_and_log_key(build_id)[0]

    def get_build_and_log_key(self, build_id: str) -> tuple[BuildRecord | None, str | None]:
        """The build record and, from the same item, the key its builder tags its log
        lines with (None before the bootstrap step made one)."""
        data = self._get(build_key(build_id), "build record")
        if data is None:
            return None, None
        key = data.get(LOG_KEY_ATTRIBUTE)
        return BuildRecord.from_item(data), key if isinstance(key, str) else None

    def _get(self, key: Mapping[str, str], what: str) -> dict[str, Any] | None:
        """The item under `key` (a consistent read), or None."""
        with aws_call(f"DynamoDB GetItem ({what})"):
            response = self._client.get_item(
                TableName=self.table_name, Key=to_dynamo(dict(key)), ConsistentRead=True
            )
        item = response.get("Item")
        return from_dynamo(item) if item else None

    def update_build(
        self,
        build_id: str,
        values: Mapping[str, Any],
        *,
        execution_arn: str | None = None,
        only_if_running: bool = False,
        append_note: str | None = None,
    ) -> bool:
        """Set `values` on an existing record; False if it is missing or not this
        execution's (or, with only_if_running, no longer RUNNING)."""
        names: dict[str, str] = {"#pk": PK}
        attr_values: dict[str, Any] = {}
        assignments = []
        for index, (name, value) in enumerate(sorted(values.items())):
            if value is None:
                continue
            names[f"#f{index}"] = name
            attr_values[f":v{index}"] = plain(value)
            assignments.append(f"#f{index} = :v{index}")
        if append_note is not None:
            names["#notes"] = "notes"
            attr_values[":note"] = [append_note]
            attr_values[":empty"] = []
            assignments.append("#notes = list_append(if_not_exists(#notes, :empty), :note)")
        if not assignments:
            return True
        conditions = ["attribute_exists(#pk)"]
        if execution_arn is not None:
            names["#arn"] = "execution_arn"
            attr_values[":arn"] = execution_arn
            conditions.append("#arn = :arn")
        if only_if_running:
            names["#status"] = "status"
            attr_values[":running"] = "RUNNING"
            conditions.append("#status = :running")
        written = _conditional_write(
            "DynamoDB UpdateItem (build record)",
            lambda: self._client.update_item(
                TableName=self.table_name,
                Key=to_dynamo(build_key(build_id)),
                UpdateExpression="SET " + ", ".join(assignments),
                ConditionExpression=" AND ".join(conditions),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=to_dynamo(attr_values),
            ),
        )
        return written is not None

    def list_builds(
        self, limit: int = 20, status: str | None = None, seed: str | None = None
    ) -> list[BuildRecord]:
        """The newest `limit` builds, optionally only those of one status and/or seed,
        however many pages a filter has to read to find them."""
        return self._recent(limit, status, seed, after=None, max_reads=None).records

    def list_page(
        self,
        limit: int = 20,
        status: str | None = None,
        seed: str | None = None,
        after: str | None = None,
    ) -> BuildPage:
        """One page of the newest builds, starting after the cursor `after` (a page's
        `next`); a filtered page may end short of `limit` (MAX_PAGE_READS)."""
        return self._recent(limit, status, seed, after=after, max_reads=MAX_PAGE_READS)

    def _recent(
        self,
        limit: int,
        status: str | None,
        seed: str | None,
        *,
        after: str | None,
        max_reads: int | None,
    ) -> BuildPage:
        return self._query_index(
            INDEX_BY_RECENCY,
            RECENT_PK,
            RECENCY_PARTITION,
            limit,
            status=status,
            seed=seed,
            after=after,
            max_reads=max_reads,
        )

    def builds_for_fingerprint(
        self, fingerprint: str, limit: int = 20, status: str | None = None
    ) -> list[BuildRecord]:
        return self._query_index(
            INDEX_BY_FINGERPRINT, FP_PK, f"FP#{fingerprint}", limit, status=status, max_reads=None
        ).records

    def running_builds(self, limit: int = 1000) -> list[BuildRecord]:
        return self.list_builds(limit=limit, status="RUNNING")

    def _query_index(
        self,
        index: str,
        key_name: str,
        key_value: str,
        limit: int,
        *,
        status: str | None = None,
        seed: str | None = None,
        after: str | None = None,
        max_reads: int | None,
    ) -> BuildPage:
        if limit < 1:
            raise ValueError(f"limit {limit} is not a positive number")
        filters: list[str] = []
        names: dict[str, str] = {"#k": key_name}
        values: dict[str, Any] = {":k": key_value}
        if status is not None:
            filters.append("#status = :status")
            names["#status"] = "status"
            values[":status"] = status
        if seed is not None:
            filters.append("#seed = :seed")
            names["#seed"] = "seed_name"
            values[":seed"] = seed
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": index,
            "KeyConditionExpression": "#k = :k",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": to_dynamo(values),
            "ScanIndexForward": False,
            # Limit counts the items read, before a filter: unfiltered, one more than
            # the page says whether another page exists without a second Query.
            "Limit": max(limit + 1, FILTERED_READ) if filters else limit + 1,
        }
        if filters:
            request["FilterExpression"] = " AND ".join(filters)
        key_names = (PK, SK, *INDEX_KEYS[index])
        if after is not None:
            request["ExclusiveStartKey"] = _decode_cursor(after, key_names, key_name, key_value)
        records: list[BuildRecord] = []
        last: Mapping[str, Any] = {}
        reads = 0
        with aws_call(f"DynamoDB Query ({index})"):
            while True:
                response = self._client.query(**request)
                reads += 1
                for item in response.get("Items", []):
                    if len(records) == limit:
                        # More matches than the page holds: continue after its last.
                        return BuildPage(records, _encode_cursor(last, key_names))
                    records.append(BuildRecord.from_item(from_dynamo(item)))
                    last = item
                start = response.get("LastEvaluatedKey")
                if start is None:
                    return BuildPage(records, None)
                if len(records) == limit or (max_reads is not None and reads >= max_reads):
                    return BuildPage(records, _encode_cursor(start, key_names))
                request["ExclusiveStartKey"] = start

    # --- locks ---------------------------------------------------------------------

    def acquire_lock(
        self,
        fingerprint: str,
        os_name: str,
        architecture: str,
        *,
        build_id: str,
        execution_arn: str,
        now: datetime,
        expires_at: datetime,
    ) -> LockHolder | None:
        """Take the lock of a software variant. None when taken (or already ours); else
        who holds it. An expired lock (its ttl passed, TTL deletion lags) is taken over."""
        item = {
            **lock_key(fingerprint, os_name, architecture),
            "build_id": build_id,
            "execution_arn": execution_arn,
            "acquired_at": iso(now),
            TTL: int(expires_at.timestamp()),
        }
        written = _conditional_write(
            "DynamoDB PutItem (build lock)",
            lambda: self._client.put_item(
                TableName=self.table_name,
                Item=to_dynamo(item),
                ConditionExpression="attribute_not_exists(#pk) OR #ttl < :now OR #arn = :arn",
                ExpressionAttributeNames={"#pk": PK, "#ttl": TTL, "#arn": "execution_arn"},
                ExpressionAttributeValues=to_dynamo(
                    {":now": int(now.timestamp()), ":arn": execution_arn}
                ),
            ),
        )
        if written is None:
            holder = self.get_lock(fingerprint, os_name, architecture)
            # Released between the two calls: report it rather than loop.
            return holder or LockHolder("(a build that has just finished)", "", "")
        return None

    def get_lock(self, fingerprint: str, os_name: str, architecture: str) -> LockHolder | None:
        data = self._get(lock_key(fingerprint, os_name, architecture), "build lock")
        if data is None:
            return None
        return LockHolder(data["build_id"], data.get("execution_arn", ""), data["acquired_at"])

    def release_lock(
        self, fingerprint: str, os_name: str, architecture: str, *, execution_arn: str
    ) -> bool:
        """Delete the lock if this execution holds it; False if it did not."""
        return self.delete_lock_item(
            lock_key(fingerprint, os_name, architecture), execution_arn=execution_arn
        )

    def locks(self) -> Iterator[tuple[dict[str, str], LockHolder]]:
        """Every lock (key, holder): for the janitor, which runs rarely."""
        request = {
            "TableName": self.table_name,
            "FilterExpression": "begins_with(#pk, :lock)",
            "ExpressionAttributeNames": {"#pk": PK},
            "ExpressionAttributeValues": to_dynamo({":lock": "LOCK#"}),
        }
        with aws_call("DynamoDB Scan (build locks)"):
            for page in self._client.get_paginator("scan").paginate(**request):
                for raw in page.get("Items", []):
                    data = from_dynamo(raw)
                    key = {PK: data[PK], SK: data[SK]}
                    yield (
                        key,
                        LockHolder(
                            data["build_id"], data.get("execution_arn", ""), data["acquired_at"]
                        ),
                    )

    def delete_lock_item(self, key: Mapping[str, str], *, execution_arn: str) -> bool:
        """Delete a lock if `execution_arn` still holds it."""
        written = _conditional_write(
            "DynamoDB DeleteItem (build lock)",
            lambda: self._client.delete_item(
                TableName=self.table_name,
                Key=to_dynamo(key),
                ConditionExpression="#arn = :arn",
                ExpressionAttributeNames={"#arn": "execution_arn"},
                ExpressionAttributeValues=to_dynamo({":arn": execution_arn}),
            ),
        )
        return written is not None

    # --- task tokens ---------------------------------------------------------------

    def park_token(
        self,
        command_id: str,
        *,
        task_token: str,
        build_id: str,
        instance_id: str,
        execution_arn: str,
        now: datetime,
        expires_at: datetime,
    ) -> None:
        item = {
            **token_key(command_id),
            "task_token": task_token,
            "build_id": build_id,
            "instance_id": instance_id,
            "execution_arn": execution_arn,
            "parked_at": iso(now),
            TTL: int(expires_at.timestamp()),
        }
        with aws_call("DynamoDB PutItem (task token)"):
            self._client.put_item(TableName=self.table_name, Item=to_dynamo(item))

    def get_token(self, command_id: str) -> ParkedToken | None:
        data = self._get(token_key(command_id), "task token")
        return _token(command_id, data) if data is not None else None

    def claim_token(self, command_id: str, outcome: str, now: datetime) -> ParkedToken | None:
        """Mark the token used for `outcome`, once: None if there is no token, it was
        claimed for another outcome, or its outcome was already sent. The same outcome
        may claim again until `mark_token_sent`, so a retried delivery of the event
        finishes what a failed attempt began (a SendTask* call that was throttled)."""
        response = _conditional_write(
            "DynamoDB UpdateItem (task token)",
            lambda: self._client.update_item(
                TableName=self.table_name,
                Key=to_dynamo(token_key(command_id)),
                UpdateExpression="SET #outcome = :outcome, #claimed = :now",
                ConditionExpression=(
                    "attribute_exists(#pk) AND (attribute_not_exists(#outcome) OR "
                    "(#outcome = :outcome AND attribute_not_exists(#sent)))"
                ),
                ExpressionAttributeNames={
                    "#pk": PK,
                    "#outcome": "outcome",
                    "#claimed": "claimed_at",
                    "#sent": "sent_at",
                },
                ExpressionAttributeValues=to_dynamo({":outcome": outcome, ":now": iso(now)}),
                ReturnValues="ALL_NEW",
            ),
        )
        if response is None:
            return None
        return _token(command_id, from_dynamo(response["Attributes"]))

    def mark_token_sent(self, command_id: str, now: datetime) -> None:
        with aws_call("DynamoDB UpdateItem (task token)"):
            self._client.update_item(
                TableName=self.table_name,
                Key=to_dynamo(token_key(command_id)),
                UpdateExpression="SET #sent = :now",
                ExpressionAttributeNames={"#sent": "sent_at"},
                ExpressionAttributeValues=to_dynamo({":now": iso(now)}),
            )

    # --- intake de-duplication -----------------------------------------------------

    def claim_intake(
        self,
        bucket: str,
        key: str,
        version: str,
        *,
        build_id: str,
        now: datetime,
        expires_at: datetime,
    ) -> IntakeMarker:
        item = {
            **intake_key(bucket, key, version),
            "build_id": build_id,
            "received_at": iso(now),
            TTL: int(expires_at.timestamp()),
        }
        written = _conditional_write(
            "DynamoDB PutItem (intake marker)",
            lambda: self._client.put_item(
                TableName=self.table_name,
                Item=to_dynamo(item),
                ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": PK},
            ),
        )
        if written is None:
            claimed = self.get_intake(bucket, key, version)
            if claimed is not None:
                return claimed
            # Expired between the two calls: the delivery is as good as a first one.
            return self.claim_intake(
                bucket, key, version, build_id=build_id, now=now, expires_at=expires_at
            )
        return IntakeMarker(build_id, iso(now), None, created=True)

    def get_intake(self, bucket: str, key: str, version: str) -> IntakeMarker | None:
        """The intake marker of an object version, if a delivery claimed it."""
        data = self._get(intake_key(bucket, key, version), "intake marker")
        if data is None:
            return None
        return IntakeMarker(
            data["build_id"], data["received_at"], data.get("execution_arn"), created=False
        )

    def mark_intake_started(self, bucket: str, key: str, version: str, execution_arn: str) -> None:
        with aws_call("DynamoDB UpdateItem (intake marker)"):
            self._client.update_item(
                TableName=self.table_name,
                Key=to_dynamo(intake_key(bucket, key, version)),
                UpdateExpression="SET #arn = :arn",
                ExpressionAttributeNames={"#arn": "execution_arn"},
                ExpressionAttributeValues=to_dynamo({":arn": execution_arn}),
            )


def _token(command_id: str, data: Mapping[str, Any]) -> ParkedToken:
    return ParkedToken(
        command_id=command_id,
        task_token=str(data["task_token"]),
        build_id=str(data["build_id"]),
        instance_id=str(data.get("instance_id", "")),
        execution_arn=str(data.get("execution_arn", "")),
        outcome=cast(str | None, data.get("outcome")),
    )


def _encode_cursor(item: Mapping[str, Any], key_names: tuple[str, ...]) -> str:
    """Where a page ended, for the next: the item's table and index keys, opaque."""
    key = from_dynamo({name: item[name] for name in key_names})
    text = json.dumps(key, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode_cursor(
    cursor: str, key_names: tuple[str, ...], key_name: str, key_value: str
) -> dict[str, Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError):
        key = None
    valid = (
        isinstance(key, dict)
        and set(key) == set(key_names)
        and all(isinstance(v, str) for v in key.values())
        and key[key_name] == key_value
    )
    if not valid:
        raise InvalidCursor(f"{cursor[:40]!r} is not a cursor of this listing")
    return to_dynamo(key)


def get_build(client: Any, table_name: str, build_id: str) -> BuildRecord | None:
    return BuildTable(client, table_name).get_build(build_id)


def list_builds(
    client: Any,
    table_name: str,
    limit: int = 20,
    status: str | None = None,
    seed: str | None = None,
) -> list[BuildRecord]:
    if status is not None and status not in STATUSES:
        raise ValueError(f"status {status!r} is not one of {', '.join(STATUSES)}")
    return BuildTable(client, table_name).list_builds(limit=limit, status=status, seed=seed)


def builds_for_fingerprint(
    client: Any, table_name: str, fingerprint: str, limit: int = 20
) -> list[BuildRecord]:
    return BuildTable(client, table_name).builds_for_fingerprint(fingerprint, limit=limit)


def table_definition(table_name: str) -> dict[str, Any]:
    """CreateTable arguments for the builds table: what local mode and tests create,
    matching stacks/builds_table.py (keys, the two GSIs, on-demand)."""
    attributes = {PK, SK} | {name for pair in INDEX_KEYS.values() for name in pair}
    return {
        "TableName": table_name,
        "KeySchema": [
            {"AttributeName": PK, "KeyType": "HASH"},
            {"AttributeName": SK, "KeyType": "RANGE"},
        ],
        "AttributeDefinitions": [
            {"AttributeName": name, "AttributeType": "S"} for name in sorted(attributes)
        ],
        "BillingMode": "PAY_PER_REQUEST",
        "GlobalSecondaryIndexes": [
            {
                "IndexName": index,
                "KeySchema": [
                    {"AttributeName": pk, "KeyType": "HASH"},
                    {"AttributeName": sk, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
            for index, (pk, sk) in INDEX_KEYS.items()
        ],
    }
