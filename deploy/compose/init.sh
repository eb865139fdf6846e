#!/usr/bin/env bash
# LocalStack ready hook (mounted into /etc/localstack/init/ready.d/): what
# scripts/demo.sh and the tests create in moto. The OSS keys parameter is
# written last; the compose health check waits for it, so the services
# start only once everything exists.
set -euo pipefail
awslocal s3api create-bucket --bucket oss-source
awslocal s3api create-bucket --bucket s3-destination
dlq_url=$(awslocal sqs create-queue --queue-name ossbridge-jobs-dlq --query QueueUrl --output text)
dlq_arn=$(awslocal sqs get-queue-attributes --queue-url "$dlq_url" \
  --attribute-names QueueArn --query Attributes.QueueArn --output text)
# A message that fails 3 receives moves to the DLQ (as in the tests).
redrive="{\\\"deadLetterTargetArn\\\":\\\"$dlq_arn\\\",\\\"maxReceiveCount\\\":\\\"3\\\"}"
awslocal sqs create-queue --queue-name ossbridge-jobs \
  --attributes "{\"VisibilityTimeout\":\"30\",\"RedrivePolicy\":\"$redrive\"}"
# The Data Transfer Hub format the transfer reads; LocalStack accepts any key.
awslocal ssm put-parameter --name /ossbridge/oss-keys --type SecureString --overwrite \
  --value '{"access_key_id": "test", "secret_access_key": "test"}'
