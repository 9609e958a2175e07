"""A Query of a DynamoDB secondary index that costs the page it returns, for moto 5.2.5.

moto answers every Query of an index by scanning the whole table, sorting what matches
the key condition and walking to the page: `petal build list` at 10,000 builds cost as
much as the table, where DynamoDB reads an index in key order and stops at `Limit`. This
module keeps, per table and index, the items of each partition sorted as moto sorts them
(index hash key, index range key, table hash key, table range key), and answers from
there: a binary search to the first item after ExclusiveStartKey and inside the range
condition, then item by item until `Limit` or the 1 MB page size, with the
FilterExpression applied after `Limit` and the projections as moto applies them.

Results are moto's own, item for item (tests/unit/test_moto_dynamodb_query.py compares
them on random tables and queries), including where moto differs from DynamoDB: a page
that ends with the partition's last item has no LastEvaluatedKey in moto, while DynamoDB
may return one and then an empty page. Anything else (a Query of the table, an index key
of several attributes, the legacy QueryFilter, a ConsistentRead or an unknown index, which
moto refuses) goes to moto's Query unchanged.

The sorted partitions are rebuilt on the first Query after any change: every method of
the DynamoDB backend that may write (all but `READ_ONLY`) bumps one generation counter.
"""

from __future__ import annotations

import bisect
import copy
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FunctionType
from typing import Any, ClassVar, Final

Patch = tuple[Any, str, Callable[..., Any]]

# The DynamoDB backend's methods that change no table or item; every other one counts as
# a write (a method moto adds later is then safe by default).
READ_ONLY: Final = frozenset(
    {
        "batch_get_item",
        "default_vpc_endpoint_service",
        "describe_backup",
        "describe_continuous_backups",
        "describe_endpoints",
        "describe_export",
        "describe_import",
        "describe_table",
        "describe_time_to_live",
        "get_backup",
        "get_item",
        "get_keys_value",
        "get_resource_policy",
        "get_schema",
        "get_table",
        "get_table_keys_name",
        "iter_tagged_resources",
        "list_backups",
        "list_exports",
        "list_tables",
        "list_tags_of_resource",
        "query",
        "scan",
        "transact_get_items",
    }
)
# moto's limits (moto.dynamodb.models): a page stops before 1 MB of items, and an item
# holds at most 405,000 bytes (LimitedSizeDict), so a page under 595,000 bytes cannot
# be stopped by the size of the next item.
_PAGE_BYTES: Final = 1_000_000
_ITEM_BYTES: Final = 405_000


@dataclass
class _Partition:
    keys: list[tuple[Any, ...]] = field(default_factory=list)
    items: list[Any] = field(default_factory=list)
    # Each item's size (Item.size), once a page has walked it: items do not change
    # while the view lives.
    sizes: dict[int, int] = field(default_factory=dict)

    def size(self, position: int) -> int:
        found = self.sizes.get(position)
        if found is None:
            found = self.sizes[position] = self.items[position].size()
        return found


@dataclass
class _IndexView:
    """One index's items by partition, each sorted by `sort_attrs`' values."""

    generation: int
    sort_attrs: list[str]
    # Each sort attribute's DynamoDB type; None when the items disagree (moto then
    # compares values of different types, which only its own code reproduces).
    types: list[str] | None
    partitions: dict[tuple[str, Any], _Partition]


class _State:
    """The write counter, and each live table's index views (gone with the table)."""

    generation: ClassVar[int] = 0
    views: ClassVar[weakref.WeakKeyDictionary[Any, dict[str, _IndexView]]] = (
        weakref.WeakKeyDictionary()
    )


def patches() -> list[Patch]:
    """The Query patch, and the write counter on every writing backend method."""
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table

    found: list[Patch] = [(Table, "query", _query(Table.query))]
    for name, method in sorted(vars(DynamoDBBackend).items()):
        # Plain methods only: a static method (none writes) would lose its binding.
        if isinstance(method, FunctionType) and not name.startswith("_") and name not in READ_ONLY:
            found.append((DynamoDBBackend, name, _counted(method)))
    return found


def _counted(method: Callable[..., Any]) -> Callable[..., Any]:
    def write(*args: Any, **kwargs: Any) -> Any:
        # After too: a write may query halfway (PartiQL), and a view sorted then would
        # miss the rest of the write.
        _State.generation += 1
        try:
            return method(*args, **kwargs)
        finally:
            _State.generation += 1

    write.__name__ = getattr(method, "__name__", "write")
    write.__doc__ = method.__doc__
    return write


def _query(original: Callable[..., Any]) -> Callable[..., Any]:
    def query(
        table: Any,
        hash_key: Any,
        range_comparison: str | None,
        range_objs: list[Any],
        limit: int | None,
        exclusive_start_key: dict[str, Any] | None,
        scan_index_forward: bool,
        projection_expressions: list[list[str]] | None,
        index_name: str | None = None,
        consistent_read: bool = False,
        filter_expression: Any = None,
        hash_key_conditions: list[tuple[str, Any]] | None = None,
        range_key_conditions: list[tuple[str, str, list[Any]]] | None = None,
        **filter_kwargs: Any,
    ) -> tuple[list[Any], int, dict[str, Any] | None]:
        answered = None
        if index_name and not consistent_read and not filter_kwargs:
            answered = _indexed_query(
                table,
                index_name,
                hash_key_conditions or [],
                range_key_conditions or [],
                limit,
                exclusive_start_key,
                scan_index_forward,
            )
        if answered is None:
            return original(  # type: ignore[no-any-return]
                table,
                hash_key,
                range_comparison,
                range_objs,
                limit,
                exclusive_start_key,
                scan_index_forward,
                projection_expressions,
                index_name,
                consistent_read,
                filter_expression,
                hash_key_conditions,
                range_key_conditions,
                **filter_kwargs,
            )
        results, last_evaluated_key = answered
        # As moto's Query ends (the index's projection, the filter, the projection, on
        # copies), but copying only what the filter keeps: the same items, and a filtered
        # read of 500 items no longer copies all 500.
        scanned_count = len(results)
        index = table.get_index(index_name)
        results = [index.project(r) for r in results]
        if filter_expression is not None:
            results = [item for item in results if filter_expression.expr(item)]
        results = copy.deepcopy(results)
        if projection_expressions:
            results = [r.project(projection_expressions) for r in results]
        return results, scanned_count, last_evaluated_key

    query.__doc__ = original.__doc__
    return query


def _key_attrs(index: Any, kind: str) -> list[str]:
    return [key["AttributeName"] for key in index.schema if key["KeyType"] == kind]


def _sort_attrs(table: Any, index: Any) -> list[str] | None:
    """moto's sort order of an index's items (Table.query, _generate_attr_to_sort_by);
    None for an index key of several attributes."""
    from moto.dynamodb.models.table import GlobalSecondaryIndex

    hashes, ranges = _key_attrs(index, "HASH"), _key_attrs(index, "RANGE")
    if len(hashes) != 1 or len(ranges) > 1:
        return None
    if ranges:
        range_attrs: list[str | None] = [ranges[0], table.range_key_attr]
    elif isinstance(index, GlobalSecondaryIndex) and table.range_key_attr:
        range_attrs = [table.range_key_attr, table.range_key_attr]
    else:
        range_attrs = [table.hash_key_attr, table.range_key_attr]
    attrs: list[str] = table._generate_attr_to_sort_by(
        [hashes[0], table.hash_key_attr], range_attrs
    )
    return attrs


def _view(table: Any, index: Any) -> _IndexView | None:
    views = _State.views.setdefault(table, {})
    view = views.get(index.name)
    if view is not None and view.generation == _State.generation:
        return view
    sort_attrs = _sort_attrs(table, index)
    if sort_attrs is None:
        return None
    view = _build(table, index, sort_attrs)
    views[index.name] = view
    return view


def _build(table: Any, index: Any, sort_attrs: list[str]) -> _IndexView:
    from moto.dynamodb.models.dynamo_type import Item

    (hash_attr,) = _key_attrs(index, "HASH")
    required = _key_attrs(index, "RANGE")
    partitions: dict[tuple[str, Any], _Partition] = {}
    types: list[str] | None = None
    rows: list[tuple[tuple[Any, ...], Any]] = []
    for item in table.all_items():
        if not isinstance(item, Item):
            continue
        attrs = item.attrs
        # moto indexes an item that has the index's keys (Table.query); the table's own
        # keys every item has.
        if attrs.get(hash_attr) is None or any(attrs.get(a) is None for a in required):
            continue
        values = [attrs[a] for a in sort_attrs]
        item_types = [v.type for v in values]
        if types is None:
            types = item_types
        elif item_types != types:
            return _IndexView(_State.generation, sort_attrs, None, {})
        rows.append((tuple(v.cast_value for v in values), item))
    rows.sort(key=lambda row: row[0])
    hash_position = sort_attrs.index(hash_attr)
    hash_type = types[hash_position] if types else ""
    for key, item in rows:
        partition = partitions.setdefault((hash_type, key[hash_position]), _Partition())
        partition.keys.append(key)
        partition.items.append(item)
    return _IndexView(_State.generation, sort_attrs, types or [], partitions)


def _indexed_query(
    table: Any,
    index_name: str,
    hash_key_conditions: list[tuple[str, Any]],
    range_key_conditions: list[tuple[str, str, list[Any]]],
    limit: int | None,
    exclusive_start_key: dict[str, Any] | None,
    forward: bool,
) -> tuple[list[Any], dict[str, Any] | None] | None:
    """The items of the page (before copies and filters) and the LastEvaluatedKey, as
    moto's Query finds them; None when moto's own Query must answer."""
    index = next((i for i in table.all_indexes() if i.name == index_name), None)
    if index is None or len(hash_key_conditions) != 1 or len(range_key_conditions) > 1:
        return None
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        return None
    view = _view(table, index)
    if view is None or view.types is None:
        return None
    (hash_attr, expected), *_ = hash_key_conditions
    if hash_attr != view.sort_attrs[0]:
        return None
    if range_key_conditions and range_key_conditions[0][0] not in _key_attrs(index, "RANGE"):
        return None
    partition = view.partitions.get((expected.type, expected.cast_value))
    if partition is None:
        return [], None
    start = _start(view, partition, exclusive_start_key, forward)
    bounds = _bounds(view, partition, range_key_conditions)
    if start is None or bounds is None:
        return None
    low, high, matches = bounds
    # moto walks the partition in its order from `start`; the positions that can match
    # are one run, [low, high). Before the run nothing can change the page (it has no
    # item yet, and no item reaches the size limit alone); inside it, each item is
    # tested; after it, a full page stops at the first position with a LastEvaluatedKey.
    if forward:
        inside = range(max(start, low), high)
        after = range(max(inside.stop, start), len(partition.keys))
    else:
        inside = range(min(start, high - 1), low - 1, -1)
        after = range(min(start, low - 1), -1, -1)
    return _page(table, index_name, partition, inside, after, matches, limit)


def _start(
    view: _IndexView, partition: _Partition, start_key: dict[str, Any] | None, forward: bool
) -> int | None:
    """The first position moto does not skip as "before or at" ExclusiveStartKey, in the
    walk's direction; None when moto must answer (a key without the index's attributes)."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    keys = partition.keys
    if start_key is None:
        return 0 if forward else len(keys) - 1
    values = []
    for attr, kind in zip(view.sort_attrs, view.types or [], strict=True):
        given = start_key.get(attr)
        if not isinstance(given, dict) or list(given) != [kind]:
            return None
        values.append(DynamoType(given).cast_value)
    key = tuple(values)
    return bisect.bisect_right(keys, key) if forward else bisect.bisect_left(keys, key) - 1


# The range conditions of a key condition, as moto's parser names them.
_EQUAL: Final = frozenset({"=", "EQ"})
_ABOVE: Final = frozenset({">", "GT"})
_AT_LEAST: Final = frozenset({">=", "GE"})
_BELOW: Final = frozenset({"<", "LT"})
_AT_MOST: Final = frozenset({"<=", "LE"})


def _bounds(
    view: _IndexView, partition: _Partition, conditions: list[tuple[str, str, list[Any]]]
) -> tuple[int, int, Callable[[Any], bool] | None] | None:
    """The run of positions [low, high) that a range condition can match, and its test
    on an item (moto's); the whole partition and no test without one; None for a
    condition moto must answer."""
    keys = partition.keys
    if not conditions:
        return 0, len(keys), None
    from moto.dynamodb.comparisons import get_comparison_func

    attr, comparison, operands = conditions[0]
    types = view.types or []
    if view.sort_attrs[1:2] != [attr] or any(o.type != types[1] for o in operands):
        return None
    values = [o.cast_value for o in operands]
    compare = get_comparison_func(comparison)
    if compare is None:
        return None

    def matches(item: Any) -> bool:
        return bool(compare(item.attrs[attr].cast_value, *values))

    def sort_value(key: tuple[Any, ...]) -> Any:
        return key[1]

    def first_at_least(value: Any) -> int:
        return bisect.bisect_left(keys, value, key=sort_value)

    def first_above(value: Any) -> int:
        return bisect.bisect_right(keys, value, key=sort_value)

    op = comparison.upper()
    if op in _EQUAL and len(values) == 1:
        return first_at_least(values[0]), first_above(values[0]), matches
    if op in _ABOVE and len(values) == 1:
        return first_above(values[0]), len(keys), matches
    if op in _AT_LEAST and len(values) == 1:
        return first_at_least(values[0]), len(keys), matches
    if op in _BELOW and len(values) == 1:
        return 0, first_at_least(values[0]), matches
    if op in _AT_MOST and len(values) == 1:
        return 0, first_above(values[0]), matches
    if op == "BETWEEN" and len(values) == 2:
        low, high = first_at_least(values[0]), first_above(values[1])
        return low, max(low, high), matches
    if op == "BEGINS_WITH" and len(values) == 1 and types[1] == "S":
        # Cut to the prefix's length, sorted strings stay sorted: the ones that start
        # with it are one run.
        width = len(values[0])
        low = bisect.bisect_left(keys, values[0], key=lambda k: k[1][:width])
        high = bisect.bisect_right(keys, values[0], key=lambda k: k[1][:width])
        return low, high, matches
    return None


def _page(
    table: Any,
    index_name: str,
    partition: _Partition,
    inside: range,
    after: range,
    matches: Callable[[Any], bool] | None,
    limit: int | None,
) -> tuple[list[Any], dict[str, Any] | None]:
    """moto's loop (Table.query) over the positions that can change its result."""
    items = partition.items
    results: list[Any] = []
    size = 0
    for position in inside:
        item = items[position]
        item_size = partition.size(position)
        if len(results) == limit or size + item_size > _PAGE_BYTES:
            return results, table._get_last_evaluated_key(results[-1], index_name)
        if matches is None or matches(item):
            results.append(item)
            size += item_size
    full = len(results) == limit
    if not full and size + _ITEM_BYTES <= _PAGE_BYTES:
        return results, None  # no later item can stop the page
    for position in after:
        if full or size + partition.size(position) > _PAGE_BYTES:
            return results, table._get_last_evaluated_key(results[-1], index_name)
    return results, None
