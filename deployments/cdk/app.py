"""`cdk deploy` entry point: the RetainWise stack, checked by cdk-nag's AwsSolutions pack on synth.

Context (`-c name=value`, or cdk.json): imageTag (the flow image in ECR `retainwise`; the deploy
workflow passes the commit SHA), prefectApiUrl, certificateArn (ACM, for the ALB's HTTPS),
maxRunners (default 4), region (default: CDK_DEFAULT_REGION).
"""

from __future__ import annotations

import os

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from deployments.cdk.outputs import STACK_NAME
from deployments.cdk.services import Release
from deployments.cdk.stack import RetainWiseStack


def build(app: cdk.App) -> RetainWiseStack:
    """The stack from the app's context; a missing required value is named."""

    def need(name: str) -> str:
        value = app.node.try_get_context(name)
        if not value:
            raise SystemExit(f"cdk context `{name}` is required: cdk deploy -c {name}=...")
        return str(value)

    release = Release(
        image_tag=need("imageTag"),
        prefect_api_url=need("prefectApiUrl"),
        certificate_arn=need("certificateArn"),
        max_runners=int(app.node.try_get_context("maxRunners") or 4),
    )
    region = app.node.try_get_context("region") or os.environ.get("CDK_DEFAULT_REGION")
    stack = RetainWiseStack(
        app, STACK_NAME, release=release, env=cdk.Environment(region=region) if region else None
    )
    cdk.Aspects.of(app).add(AwsSolutionsChecks(verbose=True))
    return stack


if __name__ == "__main__":
    application = cdk.App()
    build(application)
    application.synth()
