"""`cdk deploy` entry point: the RetainWise stack, checked by cdk-nag's AwsSolutions pack on synth.

Context (`-c name=value`, or cdk.json): imageTag (the flow image in ECR `retainwise`; the deploy
workflow passes the commit SHA), prefectApiUrl, certificateArn (ACM, for the ALB's HTTPS),
publicUrl (the API's https:// address, the certificate's host name: webhook events link to it),
maxRunners (default 4), region (default: CDK_DEFAULT_REGION).
"""

from __future__ import annotations

import os

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from deployments.cdk.outputs import STACK_NAME
from deployments.cdk.services import Release
from deployments.cdk.stack import RetainWiseStack

# what `build` cannot do without; the deploy workflow passes each (tests/deployments check it)
REQUIRED_CONTEXT = ("imageTag", "prefectApiUrl", "certificateArn", "publicUrl")


def build(app: cdk.App) -> RetainWiseStack:
    """The stack from the app's context; a missing required value is named."""

    def need(name: str) -> str:
        value = app.node.try_get_context(name)
        if not value:
            raise SystemExit(f"cdk context `{name}` is required: cdk deploy -c {name}=...")
        return str(value)

    image_tag, prefect_api_url, certificate_arn, public_url = map(need, REQUIRED_CONTEXT)
    if not public_url.startswith("https://"):
        raise SystemExit(
            f"cdk context `publicUrl` must be the API's https:// address: {public_url}"
        )
    release = Release(
        image_tag=image_tag,
        prefect_api_url=prefect_api_url,
        certificate_arn=certificate_arn,
        public_url=public_url.rstrip("/"),
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
