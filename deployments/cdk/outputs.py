"""`python -m deployments.cdk.outputs STACK >> "$GITHUB_ENV"`: the stack's values for prefect.yaml.

The stack publishes them as one JSON output (`PrefectYamlEnvironment`); this prints `NAME=value`
lines, the format GitHub Actions reads from $GITHUB_ENV.
"""

from __future__ import annotations

import json
import sys

STACK_NAME = "RetainWise"  # the deploy workflow's STACK_NAME
OUTPUT_KEY = "PrefectYamlEnvironment"


def env_lines(outputs: list[dict[str, str]]) -> str:
    """`NAME=value` lines from describe-stacks' Outputs; names the output if it is missing."""
    values = {o["OutputKey"]: o["OutputValue"] for o in outputs}
    if OUTPUT_KEY not in values:
        raise SystemExit(f"the stack has no {OUTPUT_KEY} output: deploy deployments/cdk first")
    variables = json.loads(values[OUTPUT_KEY])
    bad = [name for name, value in variables.items() if "\n" in str(value)]
    if bad:
        raise SystemExit(f"multi-line values cannot go to $GITHUB_ENV: {', '.join(bad)}")
    return "".join(f"{name}={value}\n" for name, value in sorted(variables.items()))


def main(stack_name: str) -> None:
    import boto3

    [stack] = boto3.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
    sys.stdout.write(env_lines(stack.get("Outputs", [])))


if __name__ == "__main__":
    main(sys.argv[1])
