"""Deploys contrib/cloudformation/stabledns.yaml into moto's CloudFormation and reads back every
resource it should have made, from the services that own them (EC2, IAM), not from the stack's
own description. Fails (exit 1, one line per problem) on anything missing or different.

usage: cfn_stack.py MOTO_URL ROOT CONFIG_OUT
Writes the stabledns config the servers' user data carries to CONFIG_OUT, for `stabledns check`.
Prints `ok: ...` lines for what it checked.

moto implements neither AWS::EC2::DHCPOptions nor the Route 53 Resolver resources in
CloudFormation, so the stack is deployed with ClientsVia=none here; cfn-lint checks those
against CloudFormation's own resource specification in scripts/test.
"""
import ast
import base64
import fnmatch
import json
import re
import subprocess
import sys
from pathlib import Path

import boto3

url, root, config_out = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
region = "eu-west-1"
session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                region_name=region)
ec2 = session.client("ec2", endpoint_url=url)
iam = session.client("iam", endpoint_url=url)
cfn = session.client("cloudformation", endpoint_url=url)
problems = []


def check(ok, what):
    if ok:
        print(f"ok: {what}")
    else:
        problems.append(what)


vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
subnet_a = ec2.create_subnet(VpcId=vpc, CidrBlock="10.20.5.0/24",
                             AvailabilityZone="eu-west-1a")["Subnet"]["SubnetId"]
subnet_b = ec2.create_subnet(VpcId=vpc, CidrBlock="10.20.6.0/24",
                             AvailabilityZone="eu-west-1b")["Subnet"]["SubnetId"]
image = ec2.describe_images()["Images"][0]["ImageId"]
queue_url = "https://sqs.eu-west-1.amazonaws.com/123456789012/stabledns-events"
params = {
    "VpcId": vpc, "VpcCidr": "10.20.0.0/16", "SubnetA": subnet_a, "SubnetB": subnet_b,
    "AddressA": "10.20.5.10", "AddressB": "10.20.6.10", "ImageId": image,
    "Apex": "corp.internal.", "Regions": "eu-west-1,eu-central-1",
    "PackageUrl": "s3://packages-example/stabledns_0.1.0_amd64.deb",
    "AdminCidr": "10.20.9.0/24", "EventsQueueUrl": queue_url, "ClientsVia": "none",
}
template = (root / "contrib/cloudformation/stabledns.yaml").read_text()
# The template as CloudFormation reads it (short-form intrinsics and all), by cfn-lint's loader.
from cfnlint.decode import decode_str  # noqa: E402
body, matches = decode_str(template)
if matches or body is None:
    sys.exit(f"the template does not parse: {matches}")
# The admin range is never everyone: the status page shows every name.
admin_pattern = body["Parameters"]["AdminCidr"]["AllowedPattern"]
for value, allowed in [("0.0.0.0/0", False), ("10.0.0.0/7", False), ("10.20.9.0/24", True),
                       ("10.20.9.20/32", True)]:
    check((re.match(admin_pattern, value) is not None) == allowed,
          f"AdminCidr {value} {'allowed' if allowed else 'refused'}")
cfn.create_stack(StackName="stabledns", TemplateBody=template, Capabilities=["CAPABILITY_IAM"],
                 Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()])
stack = cfn.describe_stacks(StackName="stabledns")["Stacks"][0]
check(stack["StackStatus"] == "CREATE_COMPLETE", f"stack status {stack['StackStatus']}")
made = {r["LogicalResourceId"]: r.get("PhysicalResourceId")
        for r in cfn.describe_stack_resources(StackName="stabledns")["StackResources"]
        if "LogicalResourceId" in r}
for logical in ["ServerSecurityGroup", "InterfaceA", "InterfaceB", "Role", "InstanceProfile",
                "LaunchTemplate", "ServerA", "ServerB"]:
    check(logical in made, f"the stack made {logical}")
for logical in ["DhcpOptions", "ResolverRule", "ResolverEndpoint"]:
    check(logical not in made, f"ClientsVia=none makes no {logical}")

# The security group: DNS from the VPC, the admin port from AdminCidr, nothing else.
sg = ec2.describe_security_groups(GroupIds=[made["ServerSecurityGroup"]])["SecurityGroups"][0]
ingress = sorted((p["IpProtocol"], p.get("FromPort"), p.get("ToPort"), r["CidrIp"])
                 for p in sg["IpPermissions"] for r in p.get("IpRanges", []))
want = sorted([("udp", 53, 53, "10.20.0.0/16"), ("tcp", 53, 53, "10.20.0.0/16"),
               ("tcp", 8053, 8053, "10.20.9.0/24")])
check(ingress == want, f"security group ingress {ingress}")
check(sg["VpcId"] == vpc, "the security group is in the VPC")

# The interfaces: fixed addresses in their subnets, in the group; the instances on them.
for side, subnet, address in [("A", subnet_a, "10.20.5.10"), ("B", subnet_b, "10.20.6.10")]:
    eni = ec2.describe_network_interfaces(
        NetworkInterfaceIds=[made[f"Interface{side}"]])["NetworkInterfaces"][0]
    check(eni["SubnetId"] == subnet and eni["PrivateIpAddress"] == address,
          f"interface {side}: {eni['SubnetId']} {eni['PrivateIpAddress']}")
    # moto's CloudFormation reads an interface's groups from `SecurityGroups`, where
    # CloudFormation's property is `GroupSet`: read from the template.
    group_set = body["Resources"][f"Interface{side}"]["Properties"]["GroupSet"]
    check(group_set == [{"Ref": "ServerSecurityGroup"}], f"interface {side} is in the group")
    inst = ec2.describe_instances(InstanceIds=[made[f"Server{side}"]])[
        "Reservations"][0]["Instances"][0]
    tags = {t["Key"]: t["Value"] for t in inst.get("Tags", [])}
    check(tags.get("Name") == f"stabledns-{side.lower()}", f"server {side} tags {tags}")
    check(inst.get("ImageId") == image, f"server {side} runs the image")
    assoc = ec2.describe_iam_instance_profile_associations(
        Filters=[{"Name": "instance-id", "Values": [inst["InstanceId"]]}])
    arns = [a["IamInstanceProfile"]["Arn"] for a in assoc["IamInstanceProfileAssociations"]]
    check(len(arns) == 1 and arns[0].endswith("/" + made["InstanceProfile"]),
          f"server {side} has the instance profile {arns}")
    # moto's CloudFormation ignores an instance's NetworkInterfaces and LaunchTemplate, so
    # these two are read from the template as CloudFormation receives it.
    props = body["Resources"][f"Server{side}"]["Properties"]
    check(props["NetworkInterfaces"] == [{"NetworkInterfaceId": {"Ref": f"Interface{side}"},
                                          "DeviceIndex": "0"}],
          f"server {side} sits on interface {side} (device 0)")
    check(props["LaunchTemplate"]["LaunchTemplateId"] == {"Ref": "LaunchTemplate"},
          f"server {side} takes the launch template")

# The role: exactly contrib/'s policies (the events one with this stack's queue), and the
# package's object only.
role = made["Role"]
names = sorted(iam.list_role_policies(RoleName=role)["PolicyNames"])
check(names == ["stabledns", "stabledns-events", "stabledns-package"], f"role policies {names}")


def doc(name):
    d = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
    if not isinstance(d, str):
        return d
    try:
        return json.loads(d)
    except ValueError:
        # moto stores a document CloudFormation handed it as Python's text of the object.
        return ast.literal_eval(d)


contrib = json.loads((root / "contrib/iam-policy.json").read_text())
check(doc("stabledns") == contrib, "the role's stabledns policy is contrib/iam-policy.json")
events = json.loads((root / "contrib/iam-policy-events.json").read_text())
ours = doc("stabledns-events")
queue_arn = "arn:aws:sqs:eu-west-1:123456789012:stabledns-events"
same = len(ours["Statement"]) == len(events["Statement"])
for a, b in zip(ours["Statement"], events["Statement"]):
    a, b = dict(a), dict(b)
    if str(b["Resource"]).startswith("arn:aws:sqs"):
        same &= a["Resource"] == queue_arn and fnmatch.fnmatch(a["Resource"], b["Resource"])
        a["Resource"] = b["Resource"]
    same &= a == b
check(same, f"the events policy is contrib/iam-policy-events.json for {queue_arn}: {ours}")
package = doc("stabledns-package")["Statement"]
check(package == [{"Sid": "FetchThePackage", "Effect": "Allow", "Action": "s3:GetObject",
                   "Resource": "arn:aws:s3:::packages-example/stabledns_0.1.0_amd64.deb"}],
      f"the package policy {package}")
profiles = iam.list_instance_profiles_for_role(RoleName=role)["InstanceProfiles"]
check([p["InstanceProfileName"] for p in profiles] == [made["InstanceProfile"]],
      "the instance profile holds the role")

# The launch template: the profile, IMDSv2, and the script with the config.
versions = ec2.describe_launch_template_versions(LaunchTemplateId=made["LaunchTemplate"])
data = versions["LaunchTemplateVersions"][0]["LaunchTemplateData"]
check(data.get("MetadataOptions", {}).get("HttpTokens") == "required", "IMDSv2 only")
script = base64.b64decode(data["UserData"]).decode()
check(f"aws s3 cp '{params['PackageUrl']}'" in script, "the script fetches the package")
check("systemctl restart stabledns" in script, "the script starts the service")
config = script.split("<<'CONFIG'\n", 1)[1].split("\nCONFIG\n", 1)[0]
Path(config_out).write_text(config + "\n")
for line in ['apex = "corp.internal."', 'regions = ["eu-west-1", "eu-central-1"]',
             'clients = ["10.20.0.0/16", "127.0.0.0/8"]', 'addresses = ["10.20.5.10"]',
             'addresses = ["10.20.6.10"]', f'queues = {{ eu-west-1 = "{queue_url}" }}',
             'metrics_clients = ["127.0.0.0/8", "10.20.9.0/24"]']:
    check(line in config, f"the config says {line}")

# The outputs, as the README's command prints them.
outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
check(outputs.get("AddressA") == "10.20.5.10" and outputs.get("AddressB") == "10.20.6.10",
      f"outputs {outputs}")
check(outputs.get("QueueUrl") == queue_url, "the queue URL output")
check("ResolverRuleId" not in outputs, "no rule id without the rule")
aws = str(Path(sys.executable).with_name("aws"))
env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
       "AWS_DEFAULT_REGION": region, "AWS_CONFIG_FILE": "/dev/null",
       "AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "PATH": "/usr/bin:/bin"}
printed = subprocess.run(
    [aws, "--endpoint-url", url, "cloudformation", "describe-stacks", "--stack-name", "stabledns",
     "--query", "Stacks[0].Outputs[?OutputKey=='AddressA'].OutputValue", "--output", "text"],
    capture_output=True, text=True, env=env)
check(printed.stdout.strip() == "10.20.5.10",
      f"the README's describe-stacks query prints {printed.stdout.strip()!r} {printed.stderr.strip()}")

for p in problems:
    print(f"problem: {p}")
sys.exit(1 if problems else 0)
