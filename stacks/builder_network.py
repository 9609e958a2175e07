"""The builder's network: a security group with no ingress and HTTPS (and, by default,
HTTP) egress in the VPC named in context, plus optional interface endpoints for the
SSM agent.

The VPC is referenced with `Vpc.from_vpc_attributes` rather than `Vpc.from_lookup`:
a lookup needs AWS credentials at synth time, attributes do not, so `cdk synth` and
the tests run offline. Only the VPC id is used; subnets are passed to the launch step
as ids.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Fn, Stack
from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from stacks.nag import acknowledge

# What the SSM agent talks to. S3 is not listed: Spack sources come from the internet,
# so the subnets need a NAT gateway or public IPs anyway.
ENDPOINT_SERVICES = ("ssm", "ssmmessages", "ec2messages", "logs")


def one_subnet_per_zone(subnet_ids: Sequence[str], zones: Sequence[str]) -> list[str]:
    """The first subnet of each Availability Zone, in the order given.

    An interface endpoint rejects two subnets in one zone (DuplicateSubnetsInSameZone),
    while the builder is glad of several: they are separate lists for that reason.
    """
    if len(subnet_ids) != len(zones):
        raise ValueError("one Availability Zone per subnet is needed")
    chosen: dict[str, str] = {}
    for subnet_id, zone in zip(subnet_ids, zones, strict=True):
        chosen.setdefault(zone, subnet_id)
    return list(chosen.values())


class BuilderNetwork(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc_id: str,
        subnet_ids: tuple[str, ...],
        subnet_zones: tuple[str, ...],
        allow_http: bool,
        create_vpc_endpoints: bool,
    ) -> None:
        super().__init__(scope, construct_id)
        self.subnet_ids = subnet_ids
        self.vpc = ec2.Vpc.from_vpc_attributes(
            self,
            "Vpc",
            vpc_id=vpc_id,
            # Only the VPC id is used (for the security group). Literal AZs would need a
            # lookup; Fn::GetAZs is never rendered because no subnet is referenced.
            availability_zones=Fn.get_azs(),
        )
        acknowledge(
            self.vpc,
            "@aws-cdk/aws-ec2:vpcAttributeIsListTokenavailabilityZones",
            "Only the VPC id of the imported VPC is used (for the builder security "
            "group); no construct asks it for subnets, which is what the warning is about.",
        )
        self.security_group = ec2.SecurityGroup(
            self,
            "BuilderSecurityGroup",
            vpc=self.vpc,
            # Unchanged since the first release even though port 80 is now open by
            # default: a new description would replace the group, which fails while a
            # builder still uses it. The rules' own descriptions say what is open.
            description="petal builder: no ingress (SSM only), HTTPS egress",
            allow_all_outbound=False,
        )
        # Spack fetches sources and the agent reaches SSM/CloudWatch over HTTPS. DNS
        # and the time service use the VPC's link-local resolvers, which security
        # groups do not filter.
        self.security_group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS")
        self.security_group.add_egress_rule(ec2.Peer.any_ipv6(), ec2.Port.tcp(443), "HTTPS")
        # Ubuntu's apt sources on EC2 (<region>.ec2.archive.ubuntu.com) are HTTP-only;
        # apt verifies the archive's signatures, so plain HTTP gives up no integrity.
        if allow_http:
            for peer in (ec2.Peer.any_ipv4(), ec2.Peer.any_ipv6()):
                self.security_group.add_egress_rule(peer, ec2.Port.tcp(80), "HTTP mirrors")

        self.endpoints: list[ec2.CfnVPCEndpoint] = []
        if create_vpc_endpoints:
            self._add_endpoints(vpc_id, one_subnet_per_zone(subnet_ids, subnet_zones))

    def _add_endpoints(self, vpc_id: str, subnet_ids: list[str]) -> None:
        endpoint_sg = ec2.SecurityGroup(
            self,
            "EndpointSecurityGroup",
            vpc=self.vpc,
            description="petal VPC endpoints: HTTPS from the builder only",
            allow_all_outbound=False,
        )
        endpoint_sg.add_ingress_rule(
            ec2.Peer.security_group_id(self.security_group.security_group_id),
            ec2.Port.tcp(443),
            "HTTPS from the petal builder",
        )
        region = Stack.of(self).region
        for service in ENDPOINT_SERVICES:
            # L1 because the L2 wants subnets with known AZs (a lookup); the zones come
            # from petal:subnetAvailabilityZones instead, one subnet per zone.
            self.endpoints.append(
                ec2.CfnVPCEndpoint(
                    self,
                    f"Endpoint-{service}",
                    vpc_id=vpc_id,
                    service_name=f"com.amazonaws.{region}.{service}",
                    vpc_endpoint_type="Interface",
                    subnet_ids=subnet_ids,
                    security_group_ids=[endpoint_sg.security_group_id],
                    private_dns_enabled=True,
                )
            )
