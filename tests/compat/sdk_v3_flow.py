"""The seed's A/B flow through the SageMaker Python SDK v3 (sagemaker-core resources).

Run by test_sdk_v3.py in the v3 virtualenv (v2 and v3 cannot share one). SDK v3 builds its own
boto3 clients, so it is pointed at berth the standard way: AWS_ENDPOINT_URL. Prints a JSON summary.
"""

import collections
import json
import sys

from sagemaker.core.resources import Endpoint, EndpointConfig, Model
from sagemaker.core.shapes import ContainerDefinition, DesiredWeightAndCapacity, ProductionVariant


def main(image, role, data_url_a, data_url_b, prefix):
    for name, url in ((f"{prefix}-a", data_url_a), (f"{prefix}-b", data_url_b)):
        Model.create(model_name=name, primary_container=ContainerDefinition(image=image, model_data_url=url), execution_role_arn=role)
    variants = [
        ProductionVariant(variant_name="Variant1", model_name=f"{prefix}-a", initial_instance_count=1, instance_type="ml.c5.4xlarge", initial_variant_weight=1),
        ProductionVariant(variant_name="Variant2", model_name=f"{prefix}-b", initial_instance_count=1, instance_type="ml.m5.4xlarge", initial_variant_weight=1),
    ]
    EndpointConfig.create(endpoint_config_name=prefix, production_variants=variants)
    endpoint = Endpoint.create(endpoint_name=prefix, endpoint_config_name=prefix)
    endpoint.wait_for_status("InService", poll=1, timeout=60)

    split = collections.Counter(endpoint.invoke(body="1,2,3", content_type="text/csv").invoked_production_variant for _ in range(400))
    pinned = collections.Counter(endpoint.invoke(body="1,2,3", content_type="text/csv", target_variant="Variant1").invoked_production_variant for _ in range(20))
    # 25/75. (sagemaker-core 2.27 drops members equal to 0 when it serializes, so a weight of 0
    # never reaches the server through SDK v3; the 0/1 shift is covered through boto3.)
    endpoint.update_weights_and_capacities(
        desired_weights_and_capacities=[
            DesiredWeightAndCapacity(variant_name="Variant1", desired_weight=25),
            DesiredWeightAndCapacity(variant_name="Variant2", desired_weight=75),
        ]
    )
    after = collections.Counter(endpoint.invoke(body="1,2,3", content_type="text/csv").invoked_production_variant for _ in range(400))
    endpoint.refresh()
    weights = {v.variant_name: v.current_weight for v in endpoint.production_variants}
    status = endpoint.endpoint_status
    endpoint.delete()
    print(json.dumps({"status": status, "split": split, "pinned": pinned, "after": after, "weights": weights}))


if __name__ == "__main__":
    main(*sys.argv[1:])
