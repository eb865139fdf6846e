//! deploy/aws/ossbridge.yaml deployed on moto's CloudFormation, driven by
//! the AWS CLI from the project virtualenv (tests/tests/cloudformation_deploy.rs).
//!
//! What moto cannot do, and how these helpers meet it:
//! - `Fn::GetAtt` of `LoadBalancerFullName` and `TargetGroupFullName` is not
//!   implemented (moto 5.2.5 raises). The template is deployed with each
//!   replaced by the same value cut from the resource's ARN (the full name
//!   is the ARN after `loadbalancer/`, and from `targetgroup/` on).
//! - moto's RunTask needs a container-level memory, which Fargate does not:
//!   each container is deployed with its task's memory.
//! - moto stores inline role policies as Python text and leaves an
//!   `AWS::NoValue` list item as null; [`policy_document`] and
//!   [`environment`] read around both.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};

use crate::emulator::Emulator;
use crate::services::Service;

pub const IMAGE: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/ossbridge";

pub const NO_ARGS: &[&str] = &[];

/// The AWS CLI pointed at one emulator.
#[derive(Debug)]
pub struct Cli {
    pub program: PathBuf,
    pub emulator: Emulator,
    dir: tempfile::TempDir,
}

impl Cli {
    pub fn start() -> Result<Cli> {
        Ok(Cli {
            program: crate::tools::aws_cli()?,
            emulator: Emulator::start()?,
            dir: tempfile::tempdir()?,
        })
    }

    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(program);
        let bin = self.program.parent().map(PathBuf::from).unwrap_or_default();
        let path = std::env::var_os("PATH").unwrap_or_default();
        let path = std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(&path)))
            .unwrap_or(path);
        command
            .env("PATH", path)
            .env("AWS_ENDPOINT_URL", self.emulator.endpoint())
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_CONFIG_FILE", self.dir.path().join("config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                self.dir.path().join("credentials"),
            )
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            // Nothing leaves loopback: no proxy, no instance metadata.
            .env("NO_PROXY", "127.0.0.1,localhost,::1")
            .env("no_proxy", "127.0.0.1,localhost,::1")
            .env("AWS_EC2_METADATA_DISABLED", "true");
        command
    }

    /// Runs `aws COMMAND ARGS --output json` (COMMAND: words without
    /// spaces, e.g. "ecs describe-clusters --clusters") and returns its
    /// parsed answer (`null` for commands that print nothing).
    pub fn call<S: AsRef<std::ffi::OsStr>>(&self, command: &str, args: &[S]) -> Result<Value> {
        let output = self
            .command(&self.program)
            // Explicitly: the CLI v1 sends SQS calls to the queue URL's
            // host whatever AWS_ENDPOINT_URL says.
            .args(["--endpoint-url", &self.emulator.endpoint()])
            .args(command.split_whitespace())
            .args(args)
            .args(["--output", "json"])
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("run {}", self.program.display()))?;
        ensure!(
            output.status.success(),
            "aws {command} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        if output.stdout.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&output.stdout).with_context(|| format!("aws {command}: not JSON"))
    }

    pub fn file(&self, name: &str, contents: &str) -> Result<String> {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents)?;
        Ok(format!("file://{}", path.display()))
    }
}

pub fn text(value: &Value) -> Result<&str> {
    value
        .as_str()
        .with_context(|| format!("not a string: {value}"))
}

/// The template as moto can deploy it (see the module doc).
pub fn deployable_template() -> Result<Value> {
    pub fn patch(node: Value) -> Value {
        let cut = |logical: &str, after: &str| json!({ "Fn::Select": [1, { "Fn::Split": [after, { "Ref": logical }] }] });
        match node {
            Value::Object(map) => {
                let get_att = map.get("Fn::GetAtt").cloned();
                if get_att == Some(json!(["LoadBalancer", "LoadBalancerFullName"])) {
                    return cut("LoadBalancer", ":loadbalancer/");
                }
                if get_att == Some(json!(["GatewayTargetGroup", "TargetGroupFullName"])) {
                    let name = cut("GatewayTargetGroup", ":targetgroup/");
                    return json!({ "Fn::Join": ["", ["targetgroup/", name]] });
                }
                Value::Object(map.into_iter().map(|(k, v)| (k, patch(v))).collect())
            }
            Value::Array(items) => Value::Array(items.into_iter().map(patch).collect()),
            other => other,
        }
    }
    let template = crate::tools::cloudformation_template()?;
    let mut patched = patch(template);
    for resource in patched["Resources"]
        .as_object_mut()
        .context("Resources")?
        .values_mut()
    {
        if resource["Type"] == "AWS::ECS::TaskDefinition" {
            let memory: u64 = text(&resource["Properties"]["Memory"])?.parse()?;
            for container in resource["Properties"]["ContainerDefinitions"]
                .as_array_mut()
                .context("ContainerDefinitions")?
            {
                container["Memory"] = json!(memory);
            }
        }
    }
    ensure!(
        patched.to_string().matches(":targetgroup/").count() == 1
            && patched.to_string().matches(":loadbalancer/").count() == 1,
        "the template no longer reads the full names this test replaces"
    );
    Ok(patched)
}

/// The network, certificate and parameters a stack needs, made on the
/// emulator as an operator would have them.
#[derive(Debug)]
pub struct Prerequisites {
    pub vpc: String,
    pub public_subnets: Vec<String>,
    pub private_subnets: Vec<String>,
    pub certificate: String,
}

pub fn prerequisites(cli: &Cli) -> Result<Prerequisites> {
    let vpc = cli.call("ec2 create-vpc --cidr-block 10.0.0.0/16", NO_ARGS)?;
    let vpc = text(&vpc["Vpc"]["VpcId"])?.to_owned();
    let mut subnets = Vec::new();
    for (i, zone) in ["us-east-1a", "us-east-1b", "us-east-1a", "us-east-1b"]
        .into_iter()
        .enumerate()
    {
        let cidr = format!("10.0.{i}.0/24");
        let subnet = cli.call(
            "ec2 create-subnet --vpc-id",
            &[&vpc, "--cidr-block", &cidr, "--availability-zone", zone],
        )?;
        subnets.push(text(&subnet["Subnet"]["SubnetId"])?.to_owned());
    }
    let certificate = cli.call(
        "acm request-certificate --domain-name events.example.com",
        NO_ARGS,
    )?;
    for (name, value) in [
        (
            "/ossbridge/webhook-secret",
            "whsec_c2VjcmV0LWZvci10aGUtc3RhY2s=",
        ),
        (
            "/ossbridge/oss-credentials",
            r#"{"access_key_id":"LTAI-test","secret_access_key":"not-a-real-key"}"#,
        ),
    ] {
        cli.call(
            "ssm put-parameter --name",
            &[
                name,
                "--value",
                value,
                "--type",
                "SecureString",
                "--overwrite",
            ],
        )?;
    }
    Ok(Prerequisites {
        vpc,
        public_subnets: subnets[..2].to_vec(),
        private_subnets: subnets[2..].to_vec(),
        certificate: text(&certificate["CertificateArn"])?.to_owned(),
    })
}

/// A created stack: its name, parameters and outputs.
#[derive(Debug)]
pub struct Stack {
    pub name: String,
    /// The parameters given at creation (the others took their defaults).
    pub given: Vec<String>,
    pub outputs: serde_json::Map<String, Value>,
}

impl Stack {
    pub fn output(&self, key: &str) -> Result<&str> {
        text(
            self.outputs
                .get(key)
                .with_context(|| format!("no output {key}"))?,
        )
    }
}

/// The arguments create-stack and update-stack share, up to `--parameters`.
pub fn stack_args(name: &str, template: &str) -> Vec<String> {
    let args = ["--stack-name", name, "--template-body", template];
    let capabilities = ["--capabilities", "CAPABILITY_IAM", "--parameters"];
    args.iter()
        .chain(&capabilities)
        .map(|a| (*a).to_owned())
        .collect()
}

pub fn parameter_args(parameters: &[(&str, String)]) -> Vec<String> {
    parameters
        .iter()
        .map(|(key, value)| {
            // The CLI's shorthand splits list values at commas unless the
            // value is escaped; List<...> parameters keep theirs.
            format!(
                "ParameterKey={key},ParameterValue={}",
                value.replace(',', "\\,")
            )
        })
        .collect()
}

pub fn wait_for(cli: &Cli, stack: &str, done: &str) -> Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let described = cli.call("cloudformation describe-stacks --stack-name", &[stack])?;
        let description = described["Stacks"][0].clone();
        let status = text(&description["StackStatus"])?.to_owned();
        if status == done {
            return Ok(description);
        }
        ensure!(
            status.ends_with("_IN_PROGRESS") && Instant::now() < deadline,
            "stack {stack} is {status}, not {done}: {}",
            description["StackStatusReason"]
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Where the stack is told the OSS keys are: the SSM parameter
/// `prerequisites` made, or a Secrets Manager secret's ARN.
pub const KEYS_IN_SSM: (&str, &str) = (
    "SourceCredentialsParameterName",
    "/ossbridge/oss-credentials",
);

pub fn create_stack(cli: &Cli, network: &Prerequisites, keys: (&str, &str)) -> Result<Stack> {
    let name = crate::aws::unique_name("ossbridge-stack");
    let template = cli.file("template.json", &deployable_template()?.to_string())?;
    let parameters = [
        ("VpcId", network.vpc.clone()),
        ("PublicSubnetIds", network.public_subnets.join(",")),
        ("PrivateSubnetIds", network.private_subnets.join(",")),
        ("CertificateArn", network.certificate.clone()),
        ("ImageUri", format!("{IMAGE}:1.0.0")),
        (
            "WebhookSecretParameterName",
            "/ossbridge/webhook-secret".into(),
        ),
        ("MnsTopicOwner", "1234567890123456".into()),
        ("MnsPlainHttp", "true".into()),
        ("SourceBucket", "example-source".into()),
        ("SourceRegion", "oss-cn-hangzhou".into()),
        (
            "SourceEndpointUrl",
            "https://oss-cn-hangzhou.aliyuncs.com".into(),
        ),
        (keys.0, keys.1.into()),
        ("DestinationBucket", "example-destination".into()),
        ("AlarmEmail", "ops@example.com".into()),
    ];
    let mut args = stack_args(&name, &template);
    args.extend(parameter_args(&parameters));
    cli.call("cloudformation create-stack", &args)?;
    let description = wait_for(cli, &name, "CREATE_COMPLETE")?;
    let outputs = description["Outputs"]
        .as_array()
        .context("no Outputs")?
        .iter()
        .map(|o| Ok((text(&o["OutputKey"])?.to_owned(), o["OutputValue"].clone())))
        .collect::<Result<_>>()?;
    let given = parameters.iter().map(|(k, _)| (*k).to_owned()).collect();
    Ok(Stack {
        name,
        given,
        outputs,
    })
}

pub fn physical_ids(cli: &Cli, stack: &str) -> Result<serde_json::Map<String, Value>> {
    let resources = cli.call(
        "cloudformation describe-stack-resources --stack-name",
        &[stack],
    )?;
    Ok(resources["StackResources"]
        .as_array()
        .context("StackResources")?
        .iter()
        .filter_map(|r| {
            Some((
                r["LogicalResourceId"].as_str()?.to_owned(),
                r["PhysicalResourceId"].clone(),
            ))
        })
        .collect())
}

pub fn environment(container: &Value) -> Result<BTreeMap<String, String>> {
    container["environment"]
        .as_array()
        .context("environment")?
        .iter()
        // moto leaves an `!If [..., ..., !Ref AWS::NoValue]` list item as
        // null; CloudFormation drops it.
        .filter(|e| !e.is_null())
        .map(|e| Ok((text(&e["name"])?.to_owned(), text(&e["value"])?.to_owned())))
        .collect()
}

/// An inline policy as IAM returns it (JSON), or as moto stores one that a
/// template made (Python's repr of the parsed document).
pub fn policy_document(cli: &Cli, document: &Value) -> Result<Value> {
    let Some(text) = document.as_str() else {
        return Ok(document.clone());
    };
    if let Ok(json) = serde_json::from_str(text) {
        return Ok(json);
    }
    let python = cli.program.with_file_name("python");
    let output = Command::new(python)
        .args([
            "-c",
            "import ast, json, sys; json.dump(ast.literal_eval(sys.argv[1]), sys.stdout)",
            text,
        ])
        .output()?;
    ensure!(output.status.success(), "policy document {text}");
    Ok(serde_json::from_slice(&output.stdout)?)
}

/// The strings of an IAM field that is one string or a list of them (any
/// other value, e.g. an unresolved intrinsic, as its JSON text).
pub fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items.iter().flat_map(strings).collect(),
        _ => vec![format!("{value}")],
    }
}

/// Starts `binary` with the environment the deployed task definition gives
/// `container`, changed only where a test must stay on loopback: listeners
/// bind 127.0.0.1:0, AWS calls go to the emulator, and OSS's endpoint
/// names a closed loopback port (nothing is copied). Each changed variable
/// must be one the stack sets, so a renamed one is noticed.
pub async fn start_as_deployed(
    cli: &Cli,
    stack: &Stack,
    container: &str,
    ready: &str,
) -> Result<Service> {
    // The task definition's family (`${AWS::StackName}-gateway`, ...).
    let family = format!("{}-{container}", stack.name);
    let definition = cli.call("ecs describe-task-definition --task-definition", &[&family])?;
    let definition = &definition["taskDefinition"]["containerDefinitions"][0];
    ensure!(definition["name"] == container, "{definition}");
    let mut environment = environment(definition)?;
    let loopback: &[(&str, &str)] = match container {
        "gateway" => &[
            ("OSSBRIDGE_LISTEN", "127.0.0.1:0"),
            ("OSSBRIDGE_ADMIN_LISTEN", "127.0.0.1:0"),
        ],
        _ => &[
            ("OSSBRIDGE_METRICS__LISTEN", "127.0.0.1:0"),
            ("OSSBRIDGE_SOURCE__ENDPOINT_URL", "http://127.0.0.1:9"),
        ],
    };
    for (key, value) in loopback {
        let old = environment
            .get_mut(*key)
            .with_context(|| format!("the {container} task sets no {key}"))?;
        *old = (*value).to_owned();
    }
    environment.insert(
        "OSSBRIDGE_AWS__ENDPOINT_URL".into(),
        cli.emulator.endpoint(),
    );
    let env: Vec<(&str, &str)> = environment
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    // An empty file: every setting comes from the environment, as in the
    // task.
    Service::spawn_with_env(&format!("ossbridge-{container}"), "", ready, &env).await
}

pub fn services(
    cli: &Cli,
    stack: &Stack,
    ids: &serde_json::Map<String, Value>,
) -> Result<Vec<Value>> {
    let cluster = stack.output("ClusterName")?;
    let described = cli.call(
        "ecs describe-services --cluster",
        &[
            cluster,
            "--services",
            text(&ids["GatewayService"])?,
            text(&ids["TransferService"])?,
        ],
    )?;
    Ok(described["services"]
        .as_array()
        .context("services")?
        .clone())
}
