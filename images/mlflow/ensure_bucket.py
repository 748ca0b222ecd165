#!/usr/bin/env python3
"""Create the MLflow artifact bucket if it does not exist. Idempotent; retries while the store starts.

Usage: tensorfleet-ensure-bucket <bucket>   (endpoint from MLFLOW_S3_ENDPOINT_URL, keys from AWS_* env)
"""
import os
import sys
import time

import boto3
from botocore.exceptions import ClientError, EndpointConnectionError

MISSING = {"404", "NoSuchBucket", "NotFound"}
ALREADY = {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}


def ensure(bucket: str, attempts: int = 30) -> str:
    s3 = boto3.client("s3", endpoint_url=os.environ["MLFLOW_S3_ENDPOINT_URL"])
    last = None
    for attempt in range(attempts):
        try:
            s3.head_bucket(Bucket=bucket)
            return "exists"
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code", "")
            if code in MISSING:
                try:
                    s3.create_bucket(Bucket=bucket)
                    return "created"
                except ClientError as create_err:
                    if create_err.response.get("Error", {}).get("Code", "") in ALREADY:
                        return "exists"
                    raise
            if not code.startswith("5"):
                raise
            last = err
        except EndpointConnectionError as err:
            last = err
        time.sleep(min(2 ** attempt, 10))
    raise SystemExit(f"bucket {bucket}: S3 endpoint not ready after {attempts} attempts: {last}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: tensorfleet-ensure-bucket <bucket>")
    print(f"bucket {sys.argv[1]}: {ensure(sys.argv[1])}")
