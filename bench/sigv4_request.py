"""Signs one invocation request as boto3 would (botocore's SigV4Auth) and prints a wrk Lua
script that sends it: the benchmark replays the same signed request, which berth verifies in
full every time (a signature stays valid for 15 minutes).

  sigv4_request.py URL ENDPOINT ACCESS_KEY SECRET"""

import sys

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

url, endpoint, key, secret = sys.argv[1:5]
body = b"1,2"
request = AWSRequest(method="POST", url=f"{url}/endpoints/{endpoint}/invocations", data=body, headers={"Content-Type": "text/csv"})
SigV4Auth(Credentials(key, secret), "sagemaker", "us-east-1").add_auth(request)
print('wrk.method = "POST"')
print(f'wrk.body = "{body.decode()}"')
for name in ("Content-Type", "X-Amz-Date", "Authorization"):
    print(f'wrk.headers["{name}"] = "{request.headers[name]}"')
