//! deploy/aws/ossbridge.yaml deployed on a CloudFormation emulator: moto's
//! server (the same one the other tests use), driven by the AWS CLI from
//! the project virtualenv. The stack must create, its references and
//! parameters must resolve, every output must name something that exists
//! and is wired as the template says, an update must keep the task counts
//! that autoscaling set, and deploy/aws/run-sync.sh must start the sync
//! task from the stack's outputs alone.
//!
//! What moto cannot do, and how the test meets it (more in
//! `ossbridge_testkit::stack`):
//! - the full names of the load balancer and target group are cut from
//!   their ARNs; the dashboard is checked to contain both.
//! - moto keeps no `TaskRoleArn` from a template; the task role is checked
//!   by tests/tests/cloudformation.rs.
//! - moto updates only the resources that name a changed parameter, not
//!   those that depend on a changed resource, so the update test changes a
//!   parameter the services name as well as the image; and it registers
//!   the new task definition revision without its containers' settings, so
//!   the test checks that the services moved to it, not its image.
//! - moto creates no `AWS::EC2::SecurityGroupEgress`,
//!   `AWS::ApplicationAutoScaling::*`, `AWS::CloudWatch::Alarm` or
//!   `AWS::Logs::MetricFilter`: it skips them. The test pins that list, so
//!   a resource type moto skips silently cannot enter the template unseen;
//!   their properties are checked by cfn-lint, the guard rules
//!   (tests/tests/cfn_guard.rs) and tests/tests/cloudformation.rs.

use std::collections::BTreeSet;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use ossbridge_testkit::stack::{
    Cli, IMAGE, KEYS_IN_SSM, NO_ARGS, create_stack, deployable_template, environment, physical_ids,
    policy_document, prerequisites, services, stack_args, start_as_deployed, strings, text,
    wait_for,
};
use serde_json::{Value, json};

/// Resource types moto 5.2.5's CloudFormation skips (see the module doc).
const NOT_CREATED_BY_MOTO: [&str; 5] = [
    "AWS::ApplicationAutoScaling::ScalableTarget",
    "AWS::ApplicationAutoScaling::ScalingPolicy",
    "AWS::CloudWatch::Alarm",
    "AWS::EC2::SecurityGroupEgress",
    "AWS::Logs::MetricFilter",
];

#[test]
fn the_stack_creates_and_every_output_names_what_it_should() -> Result<()> {
    let cli = Cli::start()?;
    let network = prerequisites(&cli)?;
    let stack = create_stack(&cli, &network, KEYS_IN_SSM)?;
    let template = ossbridge_testkit::tools::cloudformation_template()?;

    let declared: BTreeSet<&str> = template["Outputs"]
        .as_object()
        .context("Outputs")?
        .keys()
        .map(String::as_str)
        .collect();
    let got: BTreeSet<&str> = stack.outputs.keys().map(String::as_str).collect();
    ensure!(
        declared == got,
        "outputs {got:?}, template declares {declared:?}"
    );

    // What moto skipped is exactly the documented list.
    let created = physical_ids(&cli, &stack.name)?;
    let skipped: BTreeSet<&str> = template["Resources"]
        .as_object()
        .context("Resources")?
        .iter()
        .filter(|(logical, _)| !created.contains_key(logical.as_str()))
        .filter_map(|(_, resource)| resource["Type"].as_str())
        .collect();
    ensure!(
        skipped == BTreeSet::from(NOT_CREATED_BY_MOTO),
        "moto did not create {skipped:?}"
    );

    // The queue has its dead-letter queue and the visibility timeout.
    let dlq = cli.call(
        "sqs get-queue-attributes --queue-url",
        &[
            stack.output("DeadLetterQueueUrl")?,
            "--attribute-names",
            "QueueArn",
        ],
    )?;
    let queue = cli.call(
        "sqs get-queue-attributes --queue-url",
        &[stack.output("QueueUrl")?, "--attribute-names", "All"],
    )?;
    let redrive: Value = serde_json::from_str(text(&queue["Attributes"]["RedrivePolicy"])?)?;
    ensure!(
        redrive["deadLetterTargetArn"] == dlq["Attributes"]["QueueArn"]
            && redrive["maxReceiveCount"].to_string().trim_matches('"') == "5",
        "redrive policy {redrive}"
    );
    ensure!(queue["Attributes"]["VisibilityTimeout"] == "300", "{queue}");

    // The sync task's outputs: cluster, task definition, logs, network.
    let cluster = stack.output("ClusterName")?;
    let clusters = cli.call("ecs describe-clusters --clusters", &[cluster])?;
    ensure!(clusters["clusters"][0]["status"] == "ACTIVE", "{clusters}");
    let definition = cli.call(
        "ecs describe-task-definition --task-definition",
        &[stack.output("TransferTaskDefinition")?],
    )?;
    let definition = &definition["taskDefinition"];
    let container = &definition["containerDefinitions"][0];
    ensure!(container["name"] == "transfer", "{container}");
    ensure!(
        container["image"] == format!("{IMAGE}:1.0.0"),
        "{container}"
    );
    ensure!(
        container["logConfiguration"]["options"]["awslogs-group"]
            == stack.output("TransferLogGroup")?,
        "{container}"
    );
    let environment = container["environment"].to_string();
    ensure!(
        environment.contains(stack.output("QueueUrl")?)
            && environment.contains("/ossbridge/oss-credentials")
            && environment.contains("example-destination"),
        "the transfer's environment lacks its queue, keys or bucket: {environment}"
    );
    let groups = cli.call("logs describe-log-groups", NO_ARGS)?.to_string();
    ensure!(
        groups.contains(stack.output("TransferLogGroup")?),
        "{groups}"
    );
    ensure!(stack.output("TaskSubnets")? == network.private_subnets.join(","));
    ensure!(stack.output("TaskAssignPublicIp")? == "DISABLED");
    let security = cli.call(
        "ec2 describe-security-groups --group-ids",
        &[stack.output("TransferSecurityGroup")?],
    )?;
    ensure!(
        security["SecurityGroups"][0]["VpcId"] == network.vpc.as_str(),
        "{security}"
    );

    // Alarms reach a topic under the stack's own key, not alias/aws/sns.
    let topic = cli.call(
        "sns get-topic-attributes --topic-arn",
        &[stack.output("AlarmTopicArn")?],
    )?;
    let key = text(&created["AlarmTopicKey"])?;
    ensure!(
        topic["Attributes"]["KmsMasterKeyId"]
            .as_str()
            .is_some_and(|k| k.ends_with(key)),
        "alarm topic key {}, stack key {key}",
        topic["Attributes"]["KmsMasterKeyId"]
    );

    // The ALB: HTTPS with the certificate, port 80 forwarding MNS's path.
    let dns = stack.output("LoadBalancerDnsName")?;
    ensure!(
        stack.output("GatewayUrl")? == format!("https://{dns}/v1/ingest/oss"),
        "{}",
        stack.output("GatewayUrl")?
    );
    let balancer = text(&created["LoadBalancer"])?;
    let target_group = text(&created["GatewayTargetGroup"])?;
    let listeners = cli.call("elbv2 describe-listeners --load-balancer-arn", &[balancer])?;
    let listeners = listeners["Listeners"].as_array().context("Listeners")?;
    let https = listeners
        .iter()
        .find(|l| l["Port"] == 443)
        .context("no 443 listener")?;
    ensure!(
        https["Protocol"] == "HTTPS"
            && https["Certificates"][0]["CertificateArn"] == network.certificate.as_str(),
        "{https}"
    );
    let http = listeners
        .iter()
        .find(|l| l["Port"] == 80)
        .context("no port 80 listener")?;
    let rules = cli.call(
        "elbv2 describe-rules --listener-arn",
        &[text(&http["ListenerArn"])?],
    )?;
    let mns = rules["Rules"]
        .as_array()
        .context("Rules")?
        .iter()
        .find(|r| r["IsDefault"] == false)
        .with_context(|| format!("no MNS rule on port 80: {rules}"))?;
    ensure!(
        mns.to_string().contains("/v1/ingest/oss")
            && mns["Actions"][0]["TargetGroupArn"] == target_group,
        "{mns}"
    );

    // The dashboard names the real load balancer, target group and queue.
    let dashboard = cli.call(
        "cloudwatch get-dashboard --dashboard-name",
        &[stack.output("DashboardName")?],
    )?;
    let body: Value = serde_json::from_str(text(&dashboard["DashboardBody"])?)?;
    let body = body.to_string();
    let lb_name = balancer.split(":loadbalancer/").nth(1).context("ALB ARN")?;
    let tg_name = target_group.split(':').nth(5).context("target group ARN")?;
    let queue_name = stack
        .output("QueueUrl")?
        .rsplit('/')
        .next()
        .unwrap_or_default();
    for name in [lb_name, tg_name, queue_name] {
        ensure!(body.contains(name), "the dashboard does not show {name}");
    }
    Ok(())
}

/// Data Transfer Hub's secret is used as it is: the transfer is given its
/// ARN, reads the keys from it at start, and its role may read that secret
/// and no SSM parameter.
#[tokio::test(flavor = "multi_thread")]
async fn the_oss_keys_can_stay_in_data_transfer_hubs_secret() -> Result<()> {
    let cli = Cli::start()?;
    let network = prerequisites(&cli)?;
    let secret = cli.call(
        "secretsmanager create-secret --name dth-oss-credentials --secret-string",
        &[r#"{"access_key_id":"LTAI-test","secret_access_key":"not-a-real-key"}"#],
    )?;
    let arn = text(&secret["ARN"])?;
    let stack = create_stack(&cli, &network, ("SourceCredentialsSecretArn", arn))?;

    let definition = cli.call(
        "ecs describe-task-definition --task-definition",
        &[stack.output("TransferTaskDefinition")?],
    )?;
    let environment = environment(&definition["taskDefinition"]["containerDefinitions"][0])?;
    ensure!(
        environment
            .get("OSSBRIDGE_SOURCE__CREDENTIALS_SECRET")
            .map(String::as_str)
            == Some(arn)
            && !environment.contains_key("OSSBRIDGE_SOURCE__CREDENTIALS_PARAMETER"),
        "{environment:?}"
    );

    let ids = physical_ids(&cli, &stack.name)?;
    let policy = cli.call(
        "iam get-role-policy --role-name",
        &[text(&ids["TransferTaskRole"])?, "--policy-name", "transfer"],
    )?;
    let document = policy_document(&cli, &policy["PolicyDocument"])?;
    let statements = document["Statement"].as_array().context("Statement")?;
    let resources_for = |action: &str| {
        statements
            .iter()
            .filter(|s| strings(&s["Action"]).iter().any(|a| a == action))
            .map(|s| s["Resource"].clone())
            .collect::<Vec<_>>()
    };
    ensure!(
        resources_for("secretsmanager:GetSecretValue") == [json!(arn)],
        "{policy}"
    );
    ensure!(resources_for("ssm:GetParameter").is_empty(), "{policy}");

    // The worker starts only once it has read the keys.
    start_as_deployed(&cli, &stack, "transfer", "transfer_started").await?;
    Ok(())
}

/// Both services start with exactly the configuration the stack gives
/// them (their environment, as moto resolved it): every variable is a
/// setting they know, the secrets are read from where the stack says, and
/// the ALB's health check path answers 200.
#[tokio::test(flavor = "multi_thread")]
async fn both_services_start_with_the_environment_the_stack_gives_them() -> Result<()> {
    let cli = Cli::start()?;
    let network = prerequisites(&cli)?;
    let stack = create_stack(&cli, &network, KEYS_IN_SSM)?;
    cli.call("s3api create-bucket --bucket example-destination", NO_ARGS)?;

    let gateway = start_as_deployed(&cli, &stack, "gateway", "gateway_started").await?;
    let transfer = start_as_deployed(&cli, &stack, "transfer", "transfer_started").await?;
    let started = gateway
        .event("gateway_started")
        .context("gateway_started")?;
    let addr = text(&started["addr"])?;

    let ids = physical_ids(&cli, &stack.name)?;
    let groups = cli.call(
        "elbv2 describe-target-groups --target-group-arns",
        &[text(&ids["GatewayTargetGroup"])?],
    )?;
    let group = &groups["TargetGroups"][0];
    ensure!(group["HealthCheckPort"] == "traffic-port", "{group}");
    let path = text(&group["HealthCheckPath"])?;
    let health = reqwest::Client::builder()
        .no_proxy()
        .build()?
        .get(format!("http://{addr}{path}"))
        .send()
        .await?;
    ensure!(
        health.status() == 200,
        "the ALB's health check {path} gets {}",
        health.status()
    );
    ensure!(transfer.event("transfer_started").is_some());
    Ok(())
}

/// Autoscaling changes the services' desired counts; a deploy of a new
/// image must not write them back (the template sets no DesiredCount).
#[test]
fn an_image_update_keeps_the_task_counts_autoscaling_set() -> Result<()> {
    let cli = Cli::start()?;
    let network = prerequisites(&cli)?;
    let stack = create_stack(&cli, &network, KEYS_IN_SSM)?;
    let ids = physical_ids(&cli, &stack.name)?;
    let cluster = stack.output("ClusterName")?;
    for (service, count) in [("GatewayService", "4"), ("TransferService", "7")] {
        cli.call(
            "ecs update-service --cluster",
            &[
                cluster,
                "--service",
                text(&ids[service])?,
                "--desired-count",
                count,
            ],
        )?;
    }

    let template = cli.file("template.json", &deployable_template()?.to_string())?;
    let mut args = stack_args(&stack.name, &template);
    args.push(format!(
        "ParameterKey=ImageUri,ParameterValue={IMAGE}:1.1.0"
    ));
    // Named by both services, so that moto updates them (see the module
    // doc); CloudFormation would update them for the new image alone.
    args.push("ParameterKey=AssignPublicIp,ParameterValue=ENABLED".into());
    // The others keep their values; those left out at creation keep their
    // defaults (moto cannot take UsePreviousValue for a defaulted one).
    for key in stack.given.iter().filter(|k| *k != "ImageUri") {
        args.push(format!("ParameterKey={key},UsePreviousValue=true"));
    }
    cli.call("cloudformation update-stack", &args)?;
    wait_for(&cli, &stack.name, "UPDATE_COMPLETE")?;

    let services = services(&cli, &stack, &ids)?;
    ensure!(services.len() == 2, "{services:?}");
    for (service, count) in services.iter().zip([4, 7]) {
        ensure!(
            service["desiredCount"] == count,
            "the update reset {}: {}",
            service["serviceName"],
            service["desiredCount"]
        );
        // moto registers the new revision without its containers' settings
        // (see the module doc), so only the move to it is checked.
        ensure!(
            text(&service["taskDefinition"])?.ends_with(":2"),
            "{} did not move to the new task definition: {}",
            service["serviceName"],
            service["taskDefinition"]
        );
    }
    ensure!(
        wait_for(&cli, &stack.name, "UPDATE_COMPLETE")?
            .to_string()
            .contains(r#""OutputValue":"ENABLED""#),
        "TaskAssignPublicIp did not follow the update"
    );
    Ok(())
}

/// deploy/aws/run-sync.sh starts the sync as a one-off task of the
/// transfer's own task definition, from the stack's outputs alone, with the
/// caller's flags intact, and exits with the task's exit code.
#[test]
fn run_sync_starts_the_transfer_task_with_the_callers_flags() -> Result<()> {
    let cli = Cli::start()?;
    let network = prerequisites(&cli)?;
    let stack = create_stack(&cli, &network, KEYS_IN_SSM)?;
    let script = ossbridge_testkit::repo_root().join("deploy/aws/run-sync.sh");
    let flags = [
        "--dry-run",
        "--max-delete",
        "10",
        "--include",
        "photos/2024 summer/",
    ];
    let mut run = cli
        .command("bash")
        .arg(&script)
        .arg(&stack.name)
        .args(flags)
        .env("OSSBRIDGE_SYNC_POLL_SECS", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;

    let cluster = stack.output("ClusterName")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let task = loop {
        let listed = cli.call(
            "ecs list-tasks --cluster",
            &[cluster, "--started-by", "ossbridge-sync"],
        )?;
        if let Some(arn) = listed["taskArns"][0].as_str() {
            break arn.to_owned();
        }
        if run.try_wait()?.is_some() {
            let output = run.wait_with_output()?;
            bail!(
                "run-sync.sh exited ({}) before its task was seen: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        ensure!(Instant::now() < deadline, "run-sync.sh started no task");
        std::thread::sleep(Duration::from_millis(200));
    };
    let described = cli.call("ecs describe-tasks --cluster", &[cluster, "--tasks", &task])?;
    let started = &described["tasks"][0];
    ensure!(
        started["taskDefinitionArn"] == stack.output("TransferTaskDefinition")?,
        "{started}"
    );
    ensure!(started["launchType"] == "FARGATE", "{started}");
    let mut command = vec!["ossbridge-transfer", "sync", "--progress", "log"];
    command.extend(flags);
    ensure!(
        started["overrides"]["containerOverrides"]
            == json!([{ "name": "transfer", "command": command }]),
        "overrides {}",
        started["overrides"]
    );

    cli.call(
        "ecs stop-task --cluster",
        &[cluster, "--task", &task, "--reason", "test finished"],
    )?;
    let Output { status, stderr, .. } = wait_with_timeout(run, Duration::from_secs(60))?;
    let stderr = String::from_utf8_lossy(&stderr);
    // moto reports exit code 0 for every stopped container.
    ensure!(status.code() == Some(0), "run-sync.sh: {status}\n{stderr}");
    ensure!(
        stderr.contains("sync task stopped: exit code 0 (test finished)"),
        "{stderr}"
    );
    Ok(())
}

fn wait_with_timeout(mut child: std::process::Child, limit: Duration) -> Result<Output> {
    let deadline = Instant::now() + limit;
    while child.try_wait()?.is_none() {
        if Instant::now() > deadline {
            child.kill()?;
            bail!("run-sync.sh did not exit: {:?}", child.wait_with_output()?);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(child.wait_with_output()?)
}
