//! The cfn-guard rules of deploy/aws/guard/ossbridge.guard pass on the
//! template, and each one fails on the defect it was written for (applied
//! to a copy of the template here), so CI catches them coming back.

use anyhow::{Context, Result, ensure};
use cfn_guard::{ValidateInput, run_checks};
use ossbridge_testkit::repo_root;
use ossbridge_testkit::tools::cloudformation_template;
use serde_json::{Value, json};

const RULES: &str = "deploy/aws/guard/ossbridge.guard";

/// The rules that did not pass on `template`, by name.
fn failing_rules(template: &Value) -> Result<Vec<String>> {
    let rules = std::fs::read_to_string(repo_root().join(RULES))?;
    let data = template.to_string();
    let report = run_checks(
        ValidateInput {
            content: &data,
            file_name: "ossbridge.yaml",
        },
        ValidateInput {
            content: &rules,
            file_name: RULES,
        },
        true,
    )
    .map_err(|e| anyhow::anyhow!("cfn-guard: {e}"))?;
    // The verbose form: the summary form is cut off past 8 KiB (cfn-guard
    // 3.2 returns only what its BufWriter had not yet flushed).
    let report: Value = serde_json::from_str(&report).context("cfn-guard report")?;
    let mut failing: Vec<String> = report["children"]
        .as_array()
        .context("rule records")?
        .iter()
        .filter_map(|r| {
            let check = &r["container"]["RuleCheck"];
            (check["status"] == "FAIL").then(|| check["name"].as_str().map(str::to_owned))?
        })
        .collect();
    ensure!(
        report["children"]
            .as_array()
            .is_some_and(|rules| rules.len() == 6),
        "expected the 6 rules of {RULES}"
    );
    failing.sort();
    failing.dedup();
    Ok(failing)
}

#[test]
fn the_template_passes_every_guard_rule() -> Result<()> {
    let template = cloudformation_template()?;
    let failing = failing_rules(&template)?;
    ensure!(failing.is_empty(), "failing guard rules: {failing:?}");
    Ok(())
}

#[test]
fn each_rule_fails_on_its_defect() -> Result<()> {
    let template = cloudformation_template()?;
    type Defect = fn(&mut Value);
    let defects: [(&str, Defect); 5] = [
        (
            "ec2_rule_resource_descriptions_use_the_allowed_characters",
            |t| {
                t["Resources"]["LoadBalancerToGateway"]["Properties"]["Description"] =
                    json!("The gateway's public listener only");
            },
        ),
        ("ec2_descriptions_use_the_allowed_characters", |t| {
            t["Resources"]["LoadBalancerSecurityGroup"]["Properties"]["SecurityGroupIngress"][0]
                ["Description"] = json!("HTTPS from Aliyun's MNS");
        }),
        ("alarm_topics_use_a_key_of_this_stack", |t| {
            t["Resources"]["AlarmTopic"]["Properties"]["KmsMasterKeyId"] = json!("alias/aws/sns");
        }),
        (
            "autoscaled_services_leave_desired_count_to_the_autoscaler",
            |t| {
                t["Resources"]["TransferService"]["Properties"]["DesiredCount"] = json!(0);
            },
        ),
        ("alb_idle_timeout_is_below_the_gateway_keep_alive", |t| {
            t["Resources"]["LoadBalancer"]["Properties"]["LoadBalancerAttributes"] =
                json!([{ "Key": "idle_timeout.timeout_seconds", "Value": "120" }]);
        }),
    ];
    for (rule, break_it) in defects {
        let mut broken = template.clone();
        break_it(&mut broken);
        let failing = failing_rules(&broken)?;
        ensure!(
            failing == [rule],
            "{rule}: the defect made {failing:?} fail"
        );
    }
    // The key policy must let CloudWatch use the alarm key.
    let mut broken = template.clone();
    let statements = broken["Resources"]["AlarmTopicKey"]["Properties"]["KeyPolicy"]["Statement"]
        .as_array_mut()
        .context("AlarmTopicKey statements")?;
    statements.retain(|s| s["Principal"]["Service"] != "cloudwatch.amazonaws.com");
    ensure!(failing_rules(&broken)? == ["cloudwatch_may_use_the_stack_keys"]);
    Ok(())
}
