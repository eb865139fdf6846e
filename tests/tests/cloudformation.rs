//! The CloudFormation template (deploy/aws/ossbridge.yaml) grants each role
//! exactly the permissions its service uses: the actions below come from the
//! SDK calls in gateway/src and transfer/src, every resource is the queue,
//! bucket, parameter, key, repository or log group concerned, and only
//! ecr:GetAuthorizationToken (which has no resource-level permissions) may
//! name "*". The template is read with cfn-lint's own YAML loader (from the
//! project virtualenv, installed by tests/tools/setup.sh), which turns the
//! short-form tags (!Ref, !Sub, ...) into their JSON form.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};

use ossbridge_testkit::stack::strings;

fn template() -> Result<Value> {
    ossbridge_testkit::tools::cloudformation_template()
}

/// One allowed statement: its actions, its resource (exactly as written in
/// the template) and the template condition it is under, if any.
struct Grant {
    sid: &'static str,
    condition: Option<&'static str>,
    actions: &'static [&'static str],
    resource: Value,
}

fn sub(s: &str) -> Value {
    json!({ "Fn::Sub": s })
}

fn expected() -> BTreeMap<&'static str, Vec<Grant>> {
    let queue = json!({ "Fn::GetAtt": ["JobQueue", "Arn"] });
    let objects = sub("arn:${AWS::Partition}:s3:::${DestinationBucket}/${DestinationPrefix}*");
    BTreeMap::from([
        (
            "TaskExecutionRole",
            vec![
                Grant {
                    sid: "EcrAuth",
                    condition: None,
                    actions: &["ecr:GetAuthorizationToken"],
                    resource: json!("*"),
                },
                Grant {
                    sid: "EcrPull",
                    condition: None,
                    actions: &[
                        "ecr:BatchCheckLayerAvailability",
                        "ecr:BatchGetImage",
                        "ecr:GetDownloadUrlForLayer",
                    ],
                    resource: sub(
                        "arn:${AWS::Partition}:ecr:${AWS::Region}:${AWS::AccountId}:repository/${EcrRepositoryName}",
                    ),
                },
                Grant {
                    sid: "Logs",
                    condition: None,
                    actions: &["logs:CreateLogStream", "logs:PutLogEvents"],
                    resource: json!([
                        { "Fn::GetAtt": ["GatewayLogGroup", "Arn"] },
                        { "Fn::GetAtt": ["TransferLogGroup", "Arn"] }
                    ]),
                },
            ],
        ),
        (
            "GatewayTaskRole",
            vec![
                // SendMessageBatch (batcher.rs) is authorized as SendMessage;
                // GetQueueAttributes is the readiness probe (health.rs).
                Grant {
                    sid: "Enqueue",
                    condition: None,
                    actions: &["sqs:SendMessage", "sqs:GetQueueAttributes"],
                    resource: queue.clone(),
                },
                Grant {
                    sid: "WebhookSecret",
                    condition: None,
                    actions: &["ssm:GetParameter"],
                    resource: sub(
                        "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${WebhookSecretParameterName}",
                    ),
                },
                Grant {
                    sid: "WebhookSecretKey",
                    condition: Some("HasWebhookKmsKey"),
                    actions: &["kms:Decrypt"],
                    resource: json!({ "Ref": "WebhookSecretKmsKeyArn" }),
                },
            ],
        ),
        (
            "TransferTaskRole",
            vec![
                // receive_message, delete_message_batch, change_message_visibility.
                Grant {
                    sid: "Consume",
                    condition: None,
                    actions: &[
                        "sqs:ReceiveMessage",
                        "sqs:DeleteMessage",
                        "sqs:ChangeMessageVisibility",
                    ],
                    resource: queue,
                },
                // head_object (destination), put_object, create/complete
                // multipart upload and upload_part, abort_multipart_upload,
                // list_parts.
                Grant {
                    sid: "DestinationObjects",
                    condition: None,
                    actions: &[
                        "s3:GetObject",
                        "s3:PutObject",
                        "s3:AbortMultipartUpload",
                        "s3:ListMultipartUploadParts",
                    ],
                    resource: objects.clone(),
                },
                // list_multipart_uploads; ListBucket so that a missing
                // destination key is a 404 (HeadObjectError::NotFound).
                Grant {
                    sid: "DestinationBucket",
                    condition: None,
                    actions: &["s3:ListBucket", "s3:ListBucketMultipartUploads"],
                    resource: sub("arn:${AWS::Partition}:s3:::${DestinationBucket}"),
                },
                Grant {
                    sid: "DestinationDeletes",
                    condition: Some("DoPropagateDeletes"),
                    actions: &["s3:DeleteObject"],
                    resource: objects,
                },
                // credentials/store.rs: one of get_parameter and
                // get_secret_value, whichever the stack was given.
                Grant {
                    sid: "SourceCredentials",
                    condition: Some("UseSourceParameter"),
                    actions: &["ssm:GetParameter"],
                    resource: sub(
                        "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${SourceCredentialsParameterName}",
                    ),
                },
                Grant {
                    sid: "SourceCredentialsSecret",
                    condition: Some("UseSourceSecret"),
                    actions: &["secretsmanager:GetSecretValue"],
                    resource: json!({ "Ref": "SourceCredentialsSecretArn" }),
                },
                Grant {
                    sid: "SourceCredentialsKey",
                    condition: Some("HasSourceKmsKey"),
                    actions: &["kms:Decrypt"],
                    resource: json!({ "Ref": "SourceCredentialsKmsKeyArn" }),
                },
            ],
        ),
    ])
}

/// Checks every IAM role and policy of `template` against [`expected`].
fn check_iam(template: &Value) -> Result<()> {
    let resources = template["Resources"].as_object().context("no Resources")?;
    let expected = expected();
    let mut roles = BTreeSet::new();
    for (name, resource) in resources {
        let kind = resource["Type"].as_str().unwrap_or_default();
        ensure!(
            !matches!(
                kind,
                "AWS::IAM::Policy"
                    | "AWS::IAM::ManagedPolicy"
                    | "AWS::IAM::User"
                    | "AWS::IAM::Group"
            ),
            "{name}: permissions must be granted inline in the roles, not by a {kind}"
        );
        if kind == "AWS::IAM::Role" {
            roles.insert(name.as_str());
            check_role(name, resource, expected.get(name.as_str()))?;
        }
    }
    let wanted: BTreeSet<&str> = expected.keys().copied().collect();
    ensure!(roles == wanted, "roles {roles:?}, expected {wanted:?}");
    Ok(())
}

fn check_role(name: &str, role: &Value, grants: Option<&Vec<Grant>>) -> Result<()> {
    let Some(grants) = grants else {
        bail!("{name}: unexpected role");
    };
    let properties = &role["Properties"];
    for key in ["ManagedPolicyArns", "PermissionsBoundary"] {
        ensure!(
            properties.get(key).is_none(),
            "{name}: {key} is not allowed"
        );
    }
    let trust = &properties["AssumeRolePolicyDocument"]["Statement"];
    ensure!(
        trust.as_array().map(Vec::len) == Some(1)
            && trust[0]["Principal"] == json!({ "Service": "ecs-tasks.amazonaws.com" })
            && trust[0]["Action"] == json!("sts:AssumeRole"),
        "{name}: only ECS tasks may assume it: {trust}"
    );
    let mut statements = Vec::new();
    for policy in properties["Policies"].as_array().context("no Policies")? {
        for statement in policy["PolicyDocument"]["Statement"]
            .as_array()
            .context("Statement is not a list")?
        {
            statements.push(match statement.get("Fn::If") {
                Some(branches) => {
                    ensure!(
                        branches[2] == json!({ "Ref": "AWS::NoValue" }),
                        "{name}: a conditional statement's else must be AWS::NoValue"
                    );
                    (branches[0].as_str().map(str::to_owned), &branches[1])
                }
                None => (None, statement),
            });
        }
    }
    ensure!(
        statements.len() == grants.len(),
        "{name}: {} statements, expected {}",
        statements.len(),
        grants.len()
    );
    for (condition, statement) in statements {
        let sid = statement["Sid"].as_str().unwrap_or_default();
        let grant = grants
            .iter()
            .find(|g| g.sid == sid)
            .with_context(|| format!("{name}: unexpected statement {statement}"))?;
        ensure!(
            statement["Effect"] == "Allow",
            "{name}/{sid}: Effect must be Allow"
        );
        for key in ["NotAction", "NotResource", "NotPrincipal"] {
            ensure!(
                statement.get(key).is_none(),
                "{name}/{sid}: {key} is not allowed"
            );
        }
        ensure!(
            condition.as_deref() == grant.condition,
            "{name}/{sid}: under condition {condition:?}, expected {:?}",
            grant.condition
        );
        let actions: Vec<String> = strings(&statement["Action"]);
        for action in &actions {
            ensure!(
                !action.contains('*') && !action.contains('?'),
                "{name}/{sid}: wildcard action {action}"
            );
        }
        let got: BTreeSet<&str> = actions.iter().map(String::as_str).collect();
        let want: BTreeSet<&str> = grant.actions.iter().copied().collect();
        ensure!(
            got == want && got.len() == actions.len(),
            "{name}/{sid}: actions {actions:?}, expected exactly {want:?}"
        );
        let resource = &statement["Resource"];
        ensure!(
            *resource == grant.resource,
            "{name}/{sid}: resource {resource}, expected {}",
            grant.resource
        );
        let star = strings(resource).iter().any(|r| r == "*");
        ensure!(
            !star || (actions == ["ecr:GetAuthorizationToken"]),
            "{name}/{sid}: Resource \"*\" is allowed only for ecr:GetAuthorizationToken"
        );
    }
    Ok(())
}

#[test]
fn iam_roles_grant_exactly_what_the_services_call() -> Result<()> {
    check_iam(&template()?)
}

/// A change to the template the check must refuse.
type Mutation = fn(&mut Value);

#[test]
fn the_check_refuses_wildcards_extra_actions_and_broad_resources() -> Result<()> {
    let template = template()?;
    let mutations: [(&str, Mutation); 5] = [
        ("wildcard action", |t| {
            t["Resources"]["TransferTaskRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
                [0]["Action"] = json!("sqs:*");
        }),
        ("extra action", |t| {
            let actions = &mut t["Resources"]["GatewayTaskRole"]["Properties"]["Policies"][0]["PolicyDocument"]
                ["Statement"][0]["Action"];
            actions
                .as_array_mut()
                .expect("list")
                .push(json!("sqs:ReceiveMessage"));
        }),
        ("resource *", |t| {
            t["Resources"]["TransferTaskRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
                [1]["Resource"] = json!("*");
        }),
        ("extra statement", |t| {
            t["Resources"]["GatewayTaskRole"]["Properties"]["Policies"][0]["PolicyDocument"]
                ["Statement"]
                .as_array_mut()
                .expect("list")
                .push(json!({"Sid": "Enqueue", "Effect": "Allow",
                    "Action": "sqs:SendMessage", "Resource": "*"}));
        }),
        ("managed policy", |t| {
            t["Resources"]["TransferTaskRole"]["Properties"]["ManagedPolicyArns"] =
                json!(["arn:aws:iam::aws:policy/AmazonS3FullAccess"]);
        }),
    ];
    for (what, mutate) in mutations {
        let mut changed = template.clone();
        mutate(&mut changed);
        ensure!(
            check_iam(&changed).is_err(),
            "the check accepted a template with a {what}"
        );
    }
    Ok(())
}

/// The queue's visibility timeout is the one the transfer asks for (and
/// extends every third of), and failed messages reach the dead-letter queue.
#[test]
fn queue_and_transfer_agree_on_the_visibility_timeout() -> Result<()> {
    let template = template()?;
    let resources = &template["Resources"];
    let queue = &resources["JobQueue"]["Properties"];
    let timeout = json!({ "Ref": "VisibilityTimeoutSecs" });
    ensure!(queue["VisibilityTimeout"] == timeout, "{queue}");
    ensure!(
        queue["RedrivePolicy"]["deadLetterTargetArn"]
            == json!({ "Fn::GetAtt": ["DeadLetterQueue", "Arn"] })
            && queue["RedrivePolicy"]["maxReceiveCount"] == 5,
        "{queue}"
    );
    let env = &resources["TransferTaskDefinition"]["Properties"]["ContainerDefinitions"][0]["Environment"];
    let visibility = env
        .as_array()
        .context("Environment")?
        .iter()
        .find(|v| v["Name"] == "OSSBRIDGE_WORKER__VISIBILITY_TIMEOUT_SECS")
        .context("the transfer is not given worker.visibility_timeout_secs")?;
    ensure!(visibility["Value"] == timeout, "{visibility}");
    for (definition, role) in [
        ("GatewayTaskDefinition", "GatewayTaskRole"),
        ("TransferTaskDefinition", "TransferTaskRole"),
    ] {
        let properties = &resources[definition]["Properties"];
        ensure!(
            properties["TaskRoleArn"] == json!({ "Fn::GetAtt": [role, "Arn"] })
                && properties["RuntimePlatform"]["CpuArchitecture"] == "ARM64",
            "{definition}"
        );
    }
    Ok(())
}

/// The failing-auth alarm: metric filters on the gateway's log group match
/// its `auth_rejected` lines by their top-level JSON field (the JSON logger
/// flattens event fields, runtime/src/logging.rs), one per source (the
/// `Source` dimension from `$.source`) and one total, and an alarm on the
/// total notifies the alarm topic.
#[test]
fn auth_rejections_are_counted_per_source_and_alarmed() -> Result<()> {
    let template = template()?;
    let resources = template["Resources"].as_object().context("no Resources")?;
    let log_group = json!({ "Ref": "GatewayLogGroup" });
    let topic = json!([{ "Ref": "AlarmTopic" }]);

    // (namespace, metric name, dimension keys) of every auth-rejection filter.
    let mut metrics = Vec::new();
    for (name, resource) in resources {
        if resource["Type"] != "AWS::Logs::MetricFilter" {
            continue;
        }
        let properties = &resource["Properties"];
        let pattern = properties["FilterPattern"].as_str().unwrap_or_default();
        if !pattern.contains("auth_rejected") {
            continue;
        }
        ensure!(
            properties["LogGroupName"] == log_group,
            "{name}: not on the gateway log group"
        );
        ensure!(
            pattern
                .replace(' ', "")
                .contains(r#"$.event="auth_rejected""#),
            "{name}: pattern {pattern} does not match the top-level event field"
        );
        let transformations = properties["MetricTransformations"]
            .as_array()
            .context("MetricTransformations")?;
        ensure!(transformations.len() == 1, "{name}: one transformation");
        let t = &transformations[0];
        ensure!(
            t["MetricValue"] == "1" && t["Unit"] == "Count",
            "{name}: counts one per line: {t}"
        );
        let dimensions = t["Dimensions"].as_array().cloned().unwrap_or_default();
        ensure!(
            dimensions.is_empty() || t.get("DefaultValue").is_none(),
            "{name}: DefaultValue cannot be combined with dimensions"
        );
        for d in &dimensions {
            ensure!(
                d["Value"].as_str().is_some_and(|v| v.starts_with("$.")),
                "{name}: a dimension value must be a log field: {d}"
            );
        }
        let keys: Vec<(String, String)> = dimensions
            .iter()
            .map(|d| (strings(&d["Key"]).concat(), strings(&d["Value"]).concat()))
            .collect();
        metrics.push((t["MetricNamespace"].clone(), t["MetricName"].clone(), keys));
    }
    let per_source = metrics
        .iter()
        .find(|(_, name, keys)| {
            *name == "AuthRejections" && keys == &[("Source".to_owned(), "$.source".to_owned())]
        })
        .context("no AuthRejections filter with the Source dimension ($.source)")?;

    // An alarm on an AuthRejections metric the filters produce, notifying
    // the topic.
    let alarm = resources
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::CloudWatch::Alarm")
        .map(|(name, r)| (name, &r["Properties"]))
        .find(|(_, p)| p["MetricName"] == "AuthRejections")
        .context("no alarm on AuthRejections")?;
    let (name, p) = alarm;
    let dimensions = p["Dimensions"].as_array().cloned().unwrap_or_default();
    ensure!(
        metrics
            .iter()
            .any(|(namespace, metric, keys)| *namespace == p["Namespace"]
                && *metric == p["MetricName"]
                && keys.is_empty()
                && dimensions.is_empty()),
        "{name}: alarms on no metric the filters publish (it needs the total, without dimensions)"
    );
    ensure!(
        p["Namespace"] == per_source.0,
        "{name}: the per-source and the total metric are in different namespaces"
    );
    ensure!(
        p["AlarmActions"] == topic && p["OKActions"] == topic,
        "{name}: must notify AlarmTopic on ALARM and OK"
    );
    ensure!(
        p["Threshold"] == json!({ "Ref": "AuthRejectionAlarmThreshold" })
            && p["Statistic"] == "Sum"
            && p["TreatMissingData"] == "notBreaching",
        "{name}: {p}"
    );
    let description = p["AlarmDescription"].as_str().context("AlarmDescription")?;
    ensure!(
        description.is_ascii() && !description.contains('\''),
        "{name}: AlarmDescription must be ASCII without apostrophes"
    );
    ensure!(
        description.contains("auth_rejected"),
        "{name}: the description should point at the auth_rejected log lines"
    );
    Ok(())
}

/// Port 80 forwards only the MNS source's path, only with the plain-HTTP
/// option, and the gateway is told to accept it there and nowhere else.
#[test]
fn port_80_forwards_only_the_mns_source_path_when_asked() -> Result<()> {
    let template = template()?;
    let resources = &template["Resources"];
    let redirect = &resources["HttpRedirectListener"]["Properties"];
    ensure!(
        redirect["Port"] == 80 && redirect["DefaultActions"][0]["Type"] == "redirect",
        "port 80 must redirect by default: {redirect}"
    );
    let rules: Vec<(&String, &Value)> = resources
        .as_object()
        .context("Resources")?
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::ElasticLoadBalancingV2::ListenerRule")
        .filter(|(_, r)| r["Properties"]["ListenerArn"] == json!({ "Ref": "HttpRedirectListener" }))
        .collect();
    ensure!(
        rules.len() == 1,
        "one rule on port 80, found {}",
        rules.len()
    );
    let (name, rule) = rules[0];
    ensure!(
        rule["Condition"] == "UseMnsPlainHttp",
        "{name}: must exist only with MnsPlainHttp"
    );
    let conditions = rule["Properties"]["Conditions"]
        .as_array()
        .context("Conditions")?;
    let paths: Vec<&Value> = conditions
        .iter()
        .filter(|c| c["Field"] == "path-pattern")
        .flat_map(|c| {
            c["PathPatternConfig"]["Values"]
                .as_array()
                .into_iter()
                .flatten()
        })
        .collect();
    ensure!(
        paths == [&sub("/v1/ingest/${SourceId}")],
        "{name}: forwards {paths:?}, not just the source path"
    );
    // The gateway's environment turns allow_plain_http on under the same
    // condition, and the condition needs the topic owner.
    let env =
        resources["GatewayTaskDefinition"]["Properties"]["ContainerDefinitions"][0]["Environment"]
            .as_array()
            .context("gateway Environment")?;
    let plain = env
        .iter()
        .find(|e| e["Fn::If"][0] == "UseMnsPlainHttp")
        .context("no ALLOW_PLAIN_HTTP under UseMnsPlainHttp")?;
    ensure!(
        plain["Fn::If"][1]["Name"]["Fn::Sub"]
            .as_str()
            .is_some_and(|n| n.ends_with("__VERIFIER__ALLOW_PLAIN_HTTP")),
        "{plain}"
    );
    ensure!(
        env.iter()
            .any(|e| e["Name"] == "OSSBRIDGE_RATE_LIMIT__TRUSTED_PROXIES"),
        "the gateway must believe the ALB's X-Forwarded-Proto"
    );
    let condition = &template["Conditions"]["UseMnsPlainHttp"];
    ensure!(
        condition.to_string().contains("HasMnsTopicOwner"),
        "UseMnsPlainHttp must need the topic owner: {condition}"
    );
    ensure!(
        template["Rules"]["MnsPlainHttpNeedsTopicOwner"].is_object(),
        "a stack rule must refuse MnsPlainHttp without MnsTopicOwner"
    );
    Ok(())
}
