#!/usr/bin/env bash
# Runs `ossbridge-transfer sync` once, as an ECS task of the stack: the
# transfer's own task definition, so the same image, task role and
# configuration (its environment) as the workers; no copy of the TOML to
# keep in step. Waits for the task and exits with sync's exit code
# (0 done, 1 something failed or deletes refused, 3 interrupted).
#
#   deploy/aws/run-sync.sh STACK [sync flags ...]
#   deploy/aws/run-sync.sh ossbridge --dry-run
#   deploy/aws/run-sync.sh ossbridge --delete --yes-delete --max-delete 1000
#
# Needs the AWS CLI (v2, or v1 as in tests/tests/cloudformation_deploy.rs)
# and python3, with ecs:RunTask, ecs:DescribeTasks, iam:PassRole on the
# stack's task roles and cloudformation:DescribeStacks.
# OSSBRIDGE_SYNC_POLL_SECS sets how often the task is polled (default 30).
set -euo pipefail
[ $# -ge 1 ] || { sed -n '2,15p' "$0" >&2; exit 2; }
stack=$1
shift

output() {
  aws cloudformation describe-stacks --stack-name "$stack" \
    --query "Stacks[0].Outputs[?OutputKey=='$1'].OutputValue" --output text
}
cluster=$(output ClusterName)
task_definition=$(output TransferTaskDefinition)
log_group=$(output TransferLogGroup)
subnets=$(output TaskSubnets)
security_group=$(output TransferSecurityGroup)
public_ip=$(output TaskAssignPublicIp)

# The command replaces the worker's: sync, with log-line progress (no
# terminal in a task) and the caller's flags, passed as JSON so that no
# flag is split or re-quoted.
overrides=$(python3 -c '
import json, sys
command = ["ossbridge-transfer", "sync", "--progress", "log", *sys.argv[1:]]
print(json.dumps({"containerOverrides": [{"name": "transfer", "command": command}]}))
' "$@")

task=$(aws ecs run-task \
  --cluster "$cluster" \
  --task-definition "$task_definition" \
  --launch-type FARGATE \
  --started-by ossbridge-sync \
  --network-configuration "awsvpcConfiguration={subnets=[$subnets],securityGroups=[$security_group],assignPublicIp=$public_ip}" \
  --overrides "$overrides" \
  --query 'tasks[0].taskArn' --output text)
echo "started $task" >&2
echo "logs: aws logs tail $log_group --follow --log-stream-names transfer/transfer/${task##*/}" >&2

# `aws ecs wait tasks-stopped` gives up after 10 minutes; a sync can take
# hours.
while :; do
  status=$(aws ecs describe-tasks --cluster "$cluster" --tasks "$task" \
    --query 'tasks[0].lastStatus' --output text)
  [ "$status" = STOPPED ] && break
  sleep "${OSSBRIDGE_SYNC_POLL_SECS:-30}"
done
code=$(aws ecs describe-tasks --cluster "$cluster" --tasks "$task" \
  --query 'tasks[0].containers[0].exitCode' --output text)
reason=$(aws ecs describe-tasks --cluster "$cluster" --tasks "$task" \
  --query 'tasks[0].stoppedReason' --output text)
echo "sync task stopped: exit code $code ($reason)" >&2
[[ "$code" =~ ^[0-9]+$ ]] || exit 1
exit "$code"
