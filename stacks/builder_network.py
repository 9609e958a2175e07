"""The builder's network: a security group with no ingress and HTTPS-only egress in
the VPC named in context, plus optional interface endpoints for the SSM agent.

The VPC is referenced with `Vpc.from_vpc_attributes` rather than `Vpc.from_lookup`:
a lookup needs AWS credentials at synth time, attributes do not, so `cdk synth` and
the tests run offline. Only the VPC id is used; subnets are passed to the launch step
as ids.
"""

from __future__ import annotations

from aws_cdk import Fn, Stack
from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from stacks.nag import acknowledge

# What the SSM agent talks to. S3 is not listed: Spack sources come from the internet,
# so the subnets need a NAT gateway or public IPs anyway.
ENDPOINT_SERVICES = ("ssm", "ssmmessages", "ec2messages", "logs")


class BuilderNetwork(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc_id: str,
        subnet_ids: tuple[str, ...],
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
            description="petal builder: no ingress (SSM only), HTTPS egress",
            allow_all_outbound=False,
        )
        # Spack fetches sources and the agent reaches SSM/CloudWatch over HTTPS. DNS
        # and the time service use the VPC's link-local resolvers, which security
        # groups do not filter.
        self.security_group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS")
        self.security_group.add_egress_rule(ec2.Peer.any_ipv6(), ec2.Port.tcp(443), "HTTPS")
        if allow_http:
            for peer in (ec2.Peer.any_ipv4(), ec2.Peer.any_ipv6()):
                self.security_group.add_egress_rule(peer, ec2.Port.tcp(80), "HTTP mirrors")

        self.endpoints: list[ec2.CfnVPCEndpoint] = []
        if create_vpc_endpoints:
            self._add_endpoints(vpc_id, subnet_ids)

    def _add_endpoints(self, vpc_id: str, subnet_ids: tuple[str, ...]) -> None:
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
            # L1 because the L2 wants subnets with known AZs (a lookup); interface
            # endpoints accept one subnet per AZ, so list one subnet per AZ.
            self.endpoints.append(
                ec2.CfnVPCEndpoint(
                    self,
                    f"Endpoint-{service}",
                    vpc_id=vpc_id,
                    service_name=f"com.amazonaws.{region}.{service}",
                    vpc_endpoint_type="Interface",
                    subnet_ids=list(subnet_ids),
                    security_group_ids=[endpoint_sg.security_group_id],
                    private_dns_enabled=True,
                )
            )
