"""The canary: watches X-Ray and CloudWatch themselves, and pages out of band (FR-019/036/049/050).

`handler` is thin; `service.run_canary` runs the end-to-end probes of `probes` (expected trees in
`tree_spec`) and the checks of `checks`, judges loss and paging with
`state` and `alerting`; `errors` holds the AWS error taxonomy and back-off; `clients` the boto3
clients (botocore retries off: the canary's policy counts every call).

What its own role (FR-051, Terraform's) must allow, and nothing else:
`xray:PutTraceSegments`, `xray:PutTelemetryRecords`, the sampling reads (every role's X-Ray write),
`xray:BatchGetTraces`; `cloudwatch:PutMetricData` (namespace `SentimentAnalyzer/Canary`),
`cloudwatch:GetMetricStatistics`; `dynamodb:GetItem` / `dynamodb:PutItem` on the state table
(leading key `canary`); `sns:Publish` on the `canary_alerts` topic; `lambda:InvokeFunction` on the
dashboard function and `lambda:InvokeWithResponseStream` on the SSE function (`probes`);
`secretsmanager:GetSecretValue` on the `canary_probe` secret.
"""
