"""ParallelCluster's clusters as CloudFormation shows them, to tell which software
snapshots a cluster still uses.

ParallelCluster 3 (aws-parallelcluster `cli/src/pcluster`) creates one parentless
stack per cluster, named after it, tagged `parallelcluster:version` (and
`parallelcluster:cluster-name`) plus the config's own `Tags`; its `pcluster
list-clusters` takes the parentless stacks with the version tag and without
`parallelcluster:image_id` (which marks image-builder stacks). petal's configs tag the
cluster with its software snapshot (petal.cluster.config.TAG_CLUSTER_SNAPSHOT), so the
stack carries it too."""

from __future__ import annotations

from typing import Any, Final

from petal.aws.ec2_builder import tag_dict
from petal.aws.errors import aws_call

PCLUSTER_VERSION_TAG: Final = "parallelcluster:version"
PCLUSTER_IMAGE_ID_TAG: Final = "parallelcluster:image_id"


def clusters_by_tag(cloudformation: Any, key: str) -> dict[str, list[str]]:
    """The ParallelCluster clusters (stack names) of the client's region by the value
    of their `key` tag; clusters without it are left out. Deleted stacks are not
    listed by DescribeStacks, so a cluster being deleted still counts."""
    clusters: dict[str, list[str]] = {}
    with aws_call("CloudFormation DescribeStacks"):
        for page in cloudformation.get_paginator("describe_stacks").paginate():
            for stack in page.get("Stacks", []):
                tags = tag_dict(stack.get("Tags"))
                is_cluster = (
                    stack.get("ParentId") is None
                    and PCLUSTER_VERSION_TAG in tags
                    and PCLUSTER_IMAGE_ID_TAG not in tags
                )
                if is_cluster and key in tags:
                    clusters.setdefault(tags[key], []).append(str(stack["StackName"]))
    return clusters
