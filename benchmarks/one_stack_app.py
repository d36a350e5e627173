"""The reference for synth scale: a trivial CDK app with one stack holding one SQS queue."""

import aws_cdk as cdk
from aws_cdk import aws_sqs as sqs

app = cdk.App()
stack = cdk.Stack(app, "OneStack", env=cdk.Environment(region="us-east-2"))
sqs.Queue(stack, "Queue", enforce_ssl=True)
app.synth()
