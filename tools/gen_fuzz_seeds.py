"""Writes the fuzz targets' seed corpora under fuzz/seeds/<target>/: a few well-formed inputs of
each kind, from botocore's own serializers where there is one, so that fuzzing starts from
what real clients send. Run with the test virtualenv: `.venv/bin/python tools/gen_fuzz_seeds.py`."""

import gzip
import io
import json
import pathlib
import tarfile

import botocore.serialize
import botocore.session

ROOT = pathlib.Path(__file__).resolve().parents[1] / "fuzz" / "seeds"


def write(target, name, data):
    d = ROOT / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())


def serialized(service, protocol, operation, params):
    model = botocore.session.get_session().get_service_model(service)
    body = botocore.serialize.create_serializer(protocol).serialize_to_request(params, model.operation_model(operation))["body"]
    if isinstance(body, dict):  # the query serializer leaves the form as a dict
        from urllib.parse import urlencode

        body = urlencode(body)
    return body


def main():
    container = {"Image": "berth/onnx", "ModelDataUrl": "s3://bucket/model.tar.gz", "Environment": {"A": "1"}}
    write("aws_json", "create_model.json", json.dumps({"ModelName": "m", "PrimaryContainer": container, "ExecutionRoleArn": "arn:aws:iam::1:role/r"}))
    write("aws_json", "create_endpoint_config.json", json.dumps({
        "EndpointConfigName": "c",
        "ProductionVariants": [{"VariantName": "V", "ModelName": "m", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large", "InitialVariantWeight": 1,
                                "ServerlessConfig": {"MemorySizeInMB": 1024, "MaxConcurrency": 2}}],
        "DataCaptureConfig": {"InitialSamplingPercentage": 50, "DestinationS3Uri": "s3://b/p", "CaptureOptions": [{"CaptureMode": "Input"}]},
    }))
    write("aws_json", "update_endpoint.json", json.dumps({
        "EndpointName": "e", "EndpointConfigName": "c",
        "DeploymentConfig": {"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": {"Type": "CANARY", "WaitIntervalInSeconds": 60,
                                                                                       "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10}}},
                             "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "a"}]}},
    }))
    write("aws_json", "weights.json", json.dumps({"EndpointName": "e", "DesiredWeightsAndCapacities": [{"VariantName": "V", "DesiredWeight": 2}]}))
    write("aws_json", "list.json", json.dumps({"MaxResults": 10, "SortBy": "CreationTime", "NameContains": "x", "NextToken": "5"}))
    write("aws_json", "put_metric_data.json", serialized("cloudwatch", "json", "PutMetricData",
                                                        {"Namespace": "N", "MetricData": [{"MetricName": "M", "Value": 1.5, "Dimensions": [{"Name": "D", "Value": "v"}]}]}))
    write("aws_json", "put_scaling_policy.json", json.dumps({
        "PolicyName": "p", "ServiceNamespace": "sagemaker", "ResourceId": "endpoint/e/variant/V", "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
        "PolicyType": "TargetTrackingScaling",
        "TargetTrackingScalingPolicyConfiguration": {"TargetValue": 70, "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"}},
    }))
    stats = {"Namespace": "AWS/SageMaker", "MetricName": "Invocations", "Dimensions": [{"Name": "EndpointName", "Value": "e"}],
             "StartTime": 1700000000, "EndTime": 1700003600, "Period": 60, "Statistics": ["Sum"], "ExtendedStatistics": ["p99"]}
    write("query_form", "get_metric_statistics.txt", serialized("cloudwatch", "query", "GetMetricStatistics", stats))
    write("query_form", "put_metric_alarm.txt", serialized("cloudwatch", "query", "PutMetricAlarm", {
        "AlarmName": "a", "Namespace": "N", "MetricName": "M", "Statistic": "Average", "Period": 60, "EvaluationPeriods": 2, "Threshold": 1.0,
        "ComparisonOperator": "GreaterThanThreshold", "Dimensions": [{"Name": "D", "Value": "v"}]}))
    write("cbor", "get_metric_statistics.cbor", serialized("cloudwatch", "smithy-rpc-v2-cbor", "GetMetricStatistics", stats))
    write("cbor", "get_metric_data.cbor", serialized("cloudwatch", "smithy-rpc-v2-cbor", "GetMetricData", {
        "StartTime": 1700000000, "EndTime": 1700003600,
        "MetricDataQueries": [{"Id": "q", "MetricStat": {"Metric": {"Namespace": "N", "MetricName": "M"}, "Period": 60, "Stat": "Sum"}}]}))
    write("onnx_codecs", "csv", b"\x00" + b"5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n")
    write("onnx_codecs", "json", b"\x01" + json.dumps({"instances": [[5.1, 3.5, 1.4, 0.2]]}).encode())
    npy = io.BytesIO()
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 4), }"
    header += " " * (64 - 10 - len(header) - 1) + "\n"
    npy.write(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + b"\x00" * 32)
    write("onnx_codecs", "npy", b"\x02" + npy.getvalue())
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as t:
        for name, data in (("model.onnx", b"onnx"), ("code/inference.py", b"def model_fn(d): pass\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("latest")
        link.type = tarfile.SYMTYPE
        link.linkname = "model.onnx"
        t.addfile(link)
    write("archive", "plain.tar", b"\x00" + tar.getvalue())
    write("archive", "gzip.tar.gz", b"\x01" + gzip.compress(tar.getvalue()))
    write("sigv4", "signed.txt", "/endpoints/e/invocations\nhost: 127.0.0.1:8080\nx-amz-date: 20261128T120000Z\n"
          "authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261128/us-east-1/sagemaker/aws4_request, SignedHeaders=host;x-amz-date, "
          "Signature=" + "0" * 64 + "\n\n1,2,3\n")
    # capture_line: input type, output type, CSV types, JSON types (NUL-separated), then the body.
    write("capture_line", "csv", b"text/csv\0application/json\0\0\0" + b"1,2,3\n4,5,6")
    write("capture_line", "binary", b"application/x-npy\0application/json\0text/csv\0application/json\0" + b"\x93NUMPY\x01\x00")
    # alarm_evaluation: seven little-endian u32 settings (period, periods, datapoints to alarm,
    # flags, window start, threshold's high and low words), then (time step, value bits) pairs.
    import struct

    settings = struct.pack("<7I", 60, 5, 2, 0, 1_000_000, 0x40240000, 0)
    points = b"".join(struct.pack("<IQ", i * 7, struct.unpack("<Q", struct.pack("<d", float(i)))[0] & ~1) for i in range(6))
    write("alarm_evaluation", "five_minutes", settings + points)


if __name__ == "__main__":
    main()
