"""EventBridge → SQS for the events test, in moto: deploys contrib/cloudformation/events.yaml
(queue, rule, queue policy, the role's read policy) and puts EC2 state-change events on the
default bus, which the rule delivers to the queue as EventBridge does.

    events_stack.py ENDPOINT deploy                 → prints the stack's QueueUrl
    events_stack.py ENDPOINT put INSTANCE STATE     → puts one event
"""

import json
import sys
from pathlib import Path

import boto3

endpoint, command = sys.argv[1], sys.argv[2]
kw = {"endpoint_url": endpoint, "region_name": "eu-west-1"}
if command == "deploy":
    iam = boto3.client("iam", **kw)
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
             "Principal": {"Service": "ec2.amazonaws.com"}}]}
    iam.create_role(RoleName="stabledns", AssumeRolePolicyDocument=json.dumps(trust))
    template = Path(__file__).parents[3] / "contrib/cloudformation/events.yaml"
    cfn = boto3.client("cloudformation", **kw)
    cfn.create_stack(StackName="stabledns-events", TemplateBody=template.read_text(),
                     Parameters=[{"ParameterKey": "StablednsRoleName", "ParameterValue": "stabledns"}])
    stack = cfn.describe_stacks(StackName="stabledns-events")["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack
    policy = iam.get_role_policy(RoleName="stabledns", PolicyName="stabledns-events")
    actions = policy["PolicyDocument"]["Statement"][0]["Action"]
    assert sorted(actions) == ["sqs:DeleteMessage", "sqs:ReceiveMessage"], actions
    print(next(o["OutputValue"] for o in stack["Outputs"] if o["OutputKey"] == "QueueUrl"))
elif command == "put":
    instance, state = sys.argv[3], sys.argv[4]
    events = boto3.client("events", **kw)
    answer = events.put_events(Entries=[{
        "Source": "aws.ec2",
        "DetailType": "EC2 Instance State-change Notification",
        "Detail": json.dumps({"instance-id": instance, "state": state}),
        "Resources": [f"arn:aws:ec2:eu-west-1:123456789012:instance/{instance}"],
    }])
    assert answer["FailedEntryCount"] == 0, answer
else:
    sys.exit(f"unknown command {command}")
