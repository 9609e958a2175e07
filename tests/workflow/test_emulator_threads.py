"""The emulator serves requests from several threads at once, as AWS does.

In a build the state machine's thread, the simulated builder agent, the event bus and
the caller (a test, the CLI's watcher) all call the emulator at the same time; moto's
backends take no lock of their own.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator

import pytest

from petal.local.emulator import LocalAws


@pytest.fixture
def switch_often() -> Iterator[None]:
    # Threads change every few bytecodes: a race that needs an unlucky switch shows.
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


def test_a_scan_while_other_threads_write_sees_whole_items(
    aws: LocalAws, switch_often: None
) -> None:
    dynamodb, table = aws.client("dynamodb"), aws.deployment.table_name
    errors: list[BaseException] = []
    # A longer scan is a wider window for a write to land in the middle of it.
    for start in range(0, 300, 25):
        requests = [
            {"PutRequest": {"Item": {"pk": {"S": f"FILL#{n}"}, "sk": {"S": "item"}}}}
            for n in range(start, start + 25)
        ]
        dynamodb.batch_write_item(RequestItems={table: requests})

    def guarded(work: object) -> None:
        try:
            work()  # type: ignore[operator]
        except BaseException as error:
            errors.append(error)

    def write(worker: int) -> None:
        for n in range(60):
            item = {"pk": {"S": f"STRESS#{worker}-{n}"}, "sk": {"S": "item"}}
            dynamodb.put_item(TableName=table, Item=item)

    def scan() -> None:
        for _ in range(20):
            dynamodb.scan(TableName=table)

    threads = [threading.Thread(target=guarded, args=(lambda w=w: write(w),)) for w in (1, 2)]
    threads += [threading.Thread(target=guarded, args=(scan,)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert dynamodb.scan(TableName=table, Select="COUNT")["Count"] == 420
