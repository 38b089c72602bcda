"""The work pools that prefect.yaml's deployments run on.

`python -m deployments.ecs` creates the `local` (process) and `ecs` (prefect-aws ECS) work pools
if they are missing; CI runs it before `prefect deploy --all`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

WORK_POOL_TYPES = {"local": "process", "ecs": "ecs"}


def ensure_work_pools(types: Mapping[str, str] = WORK_POOL_TYPES) -> list[str]:
    """Create each work pool with its worker type's default job template; returns those created."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    created = []
    with get_client(sync_client=True) as client:
        for name, pool_type in types.items():
            try:
                client.create_work_pool(
                    WorkPoolCreate(
                        name=name, type=pool_type, base_job_template=default_job_template(pool_type)
                    )
                )
                created.append(name)
            except ObjectAlreadyExists:
                pass
    return created


def default_job_template(pool_type: str) -> dict[str, Any]:
    """The worker type's own template; on ECS the container also gets the task memory and `secrets`.

    A single-container task whose container has the whole task memory as its hard limit (this
    also keeps moto's RunTask, which insists on a container memory, working in the tests). The
    `secrets` variable puts Secrets Manager values (the RDS secret) into the task definition, where
    ECS injects them at start; prefect-aws's own template has no place for them.
    """
    if pool_type == "ecs":
        from prefect_aws.workers import ECSWorker

        template = ECSWorker.get_default_base_job_template()
        container = template["job_configuration"]["task_definition"]["containerDefinitions"][0]
        container["memory"] = "{{ memory }}"
        container["secrets"] = "{{ secrets }}"
        template["variables"]["properties"]["secrets"] = {
            "title": "Secrets",
            "type": "array",
            "default": [],
            "description": "ECS container secrets: [{name, valueFrom}], valueFrom a Secrets "
            "Manager ARN the execution role may read; never plain `env`.",
            "items": {
                "type": "object",
                "required": ["name", "valueFrom"],
                "properties": {"name": {"type": "string"}, "valueFrom": {"type": "string"}},
            },
        }
        return template
    from prefect.workers.process import ProcessWorker

    return ProcessWorker.get_default_base_job_template()


if __name__ == "__main__":
    print("created work pools:", ", ".join(ensure_work_pools()) or "none (all exist)")
