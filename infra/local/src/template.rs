//! The SAM template as the local stack needs it: parameters, the functions with their env vars and event
//! sources, and every resource by logical id. Intrinsics stay unevaluated here; [`crate::resolve`]
//! evaluates them against what `provision` recorded.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use serde_yaml::Value;

/// Lambda's own default when neither the function nor Globals set a timeout.
const LAMBDA_DEFAULT_TIMEOUT_SECS: u64 = 3;
/// Lambda's default batch size for an SQS event source.
const SQS_DEFAULT_BATCH_SIZE: u32 = 10;

pub const FUNCTION_TYPE: &str = "AWS::Serverless::Function";

#[derive(Debug, Clone)]
pub struct Template {
    pub parameters: BTreeMap<String, Parameter>,
    /// Globals.Function.Environment.Variables, unevaluated.
    pub global_env: BTreeMap<String, Value>,
    pub functions: Vec<Function>,
    /// Every resource (functions included) by logical id.
    pub resources: BTreeMap<String, Resource>,
}

#[derive(Debug, Clone)]
pub struct Parameter {
    pub default: Option<Value>,
}

#[derive(Debug, Clone)]
pub struct Resource {
    pub logical_id: String,
    pub kind: String,
    /// `Properties`, or an empty mapping.
    pub properties: Value,
}

#[derive(Debug, Clone)]
pub struct Function {
    pub logical_id: String,
    /// Metadata.BuildProperties.Binary: the cargo binary, and the name cargo lambda watch serves it under.
    pub binary: String,
    pub timeout_secs: u64,
    /// The function's own Environment.Variables (without Globals), unevaluated.
    pub env: BTreeMap<String, Value>,
    pub http_events: Vec<HttpEvent>,
    pub sqs_events: Vec<SqsEventSource>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpEvent {
    pub name: String,
    pub path: String,
    pub method: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqsEventSource {
    pub name: String,
    /// Logical id of the queue (from `Queue: !GetAtt X.Arn`).
    pub queue: String,
    pub batch_size: u32,
    pub function_response_types: Vec<String>,
    /// `ScalingConfig.MaximumConcurrency`: how many batches of this source are in flight at once.
    pub max_concurrency: Option<u32>,
}

impl SqsEventSource {
    pub fn reports_batch_item_failures(&self) -> bool {
        self.function_response_types
            .iter()
            .any(|t| t == "ReportBatchItemFailures")
    }
}

impl Template {
    pub fn load(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("parsing {}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self> {
        let doc: Value = serde_yaml::from_str(text)?;

        let mut parameters = BTreeMap::new();
        if let Some(params) = doc.get("Parameters").and_then(Value::as_mapping) {
            for (name, p) in params {
                parameters.insert(
                    key_str(name)?,
                    Parameter {
                        default: p.get("Default").cloned(),
                    },
                );
            }
        }

        let globals = doc.get("Globals").and_then(|g| g.get("Function"));
        let global_env = env_vars(globals)?;
        let global_timeout = match globals.and_then(|g| g.get("Timeout")) {
            Some(t) => as_u64(t).context("Globals.Function.Timeout")?,
            None => LAMBDA_DEFAULT_TIMEOUT_SECS,
        };

        let mut resources = BTreeMap::new();
        let mut functions = Vec::new();
        let res = doc
            .get("Resources")
            .and_then(Value::as_mapping)
            .ok_or_else(|| anyhow!("the template has no Resources"))?;
        for (id, r) in res {
            let logical_id = key_str(id)?;
            let kind = r
                .get("Type")
                .and_then(Value::as_str)
                .ok_or_else(|| anyhow!("resource {logical_id} has no Type"))?
                .to_string();
            let properties = r
                .get("Properties")
                .cloned()
                .unwrap_or(Value::Mapping(Default::default()));
            if kind == FUNCTION_TYPE {
                functions.push(
                    parse_function(&logical_id, r, &properties, global_timeout)
                        .with_context(|| format!("function {logical_id}"))?,
                );
            }
            resources.insert(
                logical_id.clone(),
                Resource {
                    logical_id,
                    kind,
                    properties,
                },
            );
        }

        Ok(Template {
            parameters,
            global_env,
            functions,
            resources,
        })
    }

    pub fn function_by_binary(&self, binary: &str) -> Option<&Function> {
        self.functions.iter().find(|f| f.binary == binary)
    }

    pub fn resources_of_type<'a>(
        &'a self,
        kind: &'a str,
    ) -> impl Iterator<Item = &'a Resource> + 'a {
        self.resources.values().filter(move |r| r.kind == kind)
    }
}

fn parse_function(
    logical_id: &str,
    r: &Value,
    props: &Value,
    global_timeout: u64,
) -> Result<Function> {
    let binary = r
        .get("Metadata")
        .and_then(|m| m.get("BuildProperties"))
        .and_then(|b| b.get("Binary"))
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("no Metadata.BuildProperties.Binary"))?
        .to_string();
    let timeout_secs = match props.get("Timeout") {
        Some(t) => as_u64(t).context("Timeout")?,
        None => global_timeout,
    };
    let env = env_vars(Some(props))?;

    let mut http_events = Vec::new();
    let mut sqs_events = Vec::new();
    if let Some(events) = props.get("Events").and_then(Value::as_mapping) {
        for (name, ev) in events {
            let name = key_str(name)?;
            let ep = ev.get("Properties").cloned().unwrap_or(Value::Null);
            match ev.get("Type").and_then(Value::as_str) {
                Some("HttpApi") => {
                    let path = ep.get("Path").and_then(Value::as_str);
                    let method = ep.get("Method").and_then(Value::as_str);
                    let (Some(path), Some(method)) = (path, method) else {
                        // An HttpApi event without Path/Method is the API's catch-all: no route to generate.
                        bail!("HttpApi event {name} needs Path and Method for local routing");
                    };
                    http_events.push(HttpEvent {
                        name,
                        path: path.to_string(),
                        method: method.to_ascii_uppercase(),
                    });
                }
                Some("SQS") => {
                    let queue = ep.get("Queue").and_then(getatt_arn_target).ok_or_else(|| {
                        anyhow!("SQS event {name}: Queue must be !GetAtt <Queue>.Arn")
                    })?;
                    let batch_size = match ep.get("BatchSize") {
                        Some(b) => u32::try_from(as_u64(b)?).context("BatchSize")?,
                        None => SQS_DEFAULT_BATCH_SIZE,
                    };
                    let max_concurrency = match ep
                        .get("ScalingConfig")
                        .and_then(|c| c.get("MaximumConcurrency"))
                    {
                        Some(v) => Some(
                            u32::try_from(as_u64(v)?)
                                .ok()
                                .filter(|n| (2..=1000).contains(n))
                                .ok_or_else(|| {
                                    anyhow!(
                                        "SQS event {name}: ScalingConfig.MaximumConcurrency must be 2..=1000"
                                    )
                                })?,
                        ),
                        None => None,
                    };
                    let function_response_types = ep
                        .get("FunctionResponseTypes")
                        .and_then(Value::as_sequence)
                        .map(|s| {
                            s.iter()
                                .filter_map(Value::as_str)
                                .map(String::from)
                                .collect()
                        })
                        .unwrap_or_default();
                    sqs_events.push(SqsEventSource {
                        name,
                        queue,
                        batch_size,
                        function_response_types,
                        max_concurrency,
                    });
                }
                // Other event types (Schedule, S3 direct, ...) have no local stand-in yet.
                _ => {}
            }
        }
    }
    Ok(Function {
        logical_id: logical_id.to_string(),
        binary,
        timeout_secs,
        env,
        http_events,
        sqs_events,
    })
}

fn env_vars(owner: Option<&Value>) -> Result<BTreeMap<String, Value>> {
    let mut out = BTreeMap::new();
    if let Some(vars) = owner
        .and_then(|o| o.get("Environment"))
        .and_then(|e| e.get("Variables"))
        .and_then(Value::as_mapping)
    {
        for (k, v) in vars {
            out.insert(key_str(k)?, v.clone());
        }
    }
    Ok(out)
}

fn key_str(v: &Value) -> Result<String> {
    v.as_str()
        .map(String::from)
        .ok_or_else(|| anyhow!("expected a string key, found {v:?}"))
}

pub(crate) fn as_u64(v: &Value) -> Result<u64> {
    match v {
        Value::Number(n) => n
            .as_u64()
            .ok_or_else(|| anyhow!("{n} is not a whole number")),
        Value::String(s) => s
            .trim()
            .parse()
            .with_context(|| format!("{s:?} is not a whole number")),
        other => bail!("expected a number, found {other:?}"),
    }
}

/// The logical id X of `!GetAtt X.Arn` / `Fn::GetAtt: [X, Arn]`.
fn getatt_arn_target(v: &Value) -> Option<String> {
    match Intrinsic::of(v)? {
        Intrinsic::GetAtt(id, attr) if attr == "Arn" => Some(id),
        _ => None,
    }
}

/// An intrinsic function call, in whichever form it was written (`!Ref X` or `Ref: X`, ...).
#[derive(Debug, Clone, PartialEq)]
pub enum Intrinsic {
    Ref(String),
    GetAtt(String, String),
    /// The template string and its explicit variables (`!Sub [text, {vars}]`).
    Sub(String, BTreeMap<String, Value>),
    Join(String, Vec<Value>),
    /// Any other `Fn::*` function: name and argument.
    Other(String, Value),
}

impl Intrinsic {
    /// Recognises `Value::Tagged` short forms and single-key `Ref` / `Fn::*` mappings; anything else is
    /// a plain value.
    pub fn of(v: &Value) -> Option<Intrinsic> {
        let (name, arg) = match v {
            Value::Tagged(t) => {
                let tag = t.tag.to_string();
                let tag = tag.trim_start_matches('!');
                let name = if tag == "Ref" {
                    "Ref".to_string()
                } else {
                    format!("Fn::{tag}")
                };
                (name, t.value.clone())
            }
            Value::Mapping(m) if m.len() == 1 => {
                let (k, arg) = m.iter().next()?;
                let k = k.as_str()?;
                if k != "Ref" && !k.starts_with("Fn::") {
                    return None;
                }
                (k.to_string(), arg.clone())
            }
            _ => return None,
        };
        Some(match name.as_str() {
            "Ref" => match arg.as_str() {
                Some(s) => Intrinsic::Ref(s.to_string()),
                None => Intrinsic::Other(name, arg),
            },
            "Fn::GetAtt" => match &arg {
                Value::String(s) => match s.split_once('.') {
                    Some((id, attr)) => Intrinsic::GetAtt(id.to_string(), attr.to_string()),
                    None => Intrinsic::Other(name, arg),
                },
                Value::Sequence(seq) => match (
                    seq.first().and_then(Value::as_str),
                    seq.get(1).and_then(Value::as_str),
                ) {
                    (Some(id), Some(attr)) if seq.len() == 2 => {
                        Intrinsic::GetAtt(id.to_string(), attr.to_string())
                    }
                    _ => Intrinsic::Other(name, arg),
                },
                _ => Intrinsic::Other(name, arg),
            },
            "Fn::Sub" => match &arg {
                Value::String(s) => Intrinsic::Sub(s.clone(), BTreeMap::new()),
                Value::Sequence(seq) if seq.len() == 2 => {
                    let (Some(text), Some(vars)) = (seq[0].as_str(), seq[1].as_mapping()) else {
                        return Some(Intrinsic::Other(name, arg));
                    };
                    let vars = vars
                        .iter()
                        .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.clone())))
                        .collect();
                    Intrinsic::Sub(text.to_string(), vars)
                }
                _ => Intrinsic::Other(name, arg),
            },
            "Fn::Join" => match &arg {
                Value::Sequence(seq) if seq.len() == 2 => {
                    match (seq[0].as_str(), seq[1].as_sequence()) {
                        (Some(d), Some(items)) => Intrinsic::Join(d.to_string(), items.clone()),
                        _ => Intrinsic::Other(name, arg),
                    }
                }
                _ => Intrinsic::Other(name, arg),
            },
            _ => Intrinsic::Other(name, arg),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_forms_are_the_same_intrinsic() {
        let short: Value = serde_yaml::from_str("!GetAtt Q.Arn").unwrap();
        let long: Value = serde_yaml::from_str("Fn::GetAtt: [Q, Arn]").unwrap();
        assert_eq!(
            Intrinsic::of(&short),
            Some(Intrinsic::GetAtt("Q".into(), "Arn".into()))
        );
        assert_eq!(Intrinsic::of(&short), Intrinsic::of(&long));

        let r: Value = serde_yaml::from_str("Ref: X").unwrap();
        assert_eq!(Intrinsic::of(&r), Some(Intrinsic::Ref("X".into())));
        let plain: Value = serde_yaml::from_str("{Name: X}").unwrap();
        assert_eq!(Intrinsic::of(&plain), None);
    }

    #[test]
    fn real_template_parses_with_binaries_event_sources_and_gsi() {
        let t = Template::load(&crate::state::default_template_path()).unwrap();
        assert!(t.functions.len() >= 9, "{} functions", t.functions.len());
        for f in &t.functions {
            assert!(!f.binary.is_empty(), "{} has no binary", f.logical_id);
            assert!(f.timeout_secs > 0);
        }
        let sync = t.function_by_binary("worker-sync").expect("worker-sync");
        assert_eq!(sync.timeout_secs, 300);
        let src = sync
            .sqs_events
            .iter()
            .find(|e| e.queue == "SyncQueue")
            .expect("SyncQueue event source");
        assert_eq!(src.batch_size, 10);
        assert!(src.reports_batch_item_failures());
        assert_eq!(src.max_concurrency, Some(20));
        let ticks = t.function_by_binary("worker-loader").unwrap();
        assert_eq!(ticks.sqs_events[0].max_concurrency, Some(50));
        let s3_ticks = t.function_by_binary("worker-loader-s3").unwrap();
        assert_eq!(s3_ticks.sqs_events[0].queue, "LoaderS3Queue");
        // Globals' Timeout applies where a function sets none.
        assert_eq!(t.function_by_binary("api-jobs").unwrap().timeout_secs, 29);
        assert!(t.global_env.contains_key("TABLE_NAME"));

        let table = &t.resources["FerryTable"];
        assert_eq!(table.kind, "AWS::DynamoDB::Table");
        let gsis = table
            .properties
            .get("GlobalSecondaryIndexes")
            .and_then(Value::as_sequence)
            .unwrap();
        assert!(
            gsis.iter()
                .any(|g| g.get("IndexName").and_then(Value::as_str) == Some("gsi1"))
        );
        assert_eq!(t.resources_of_type("AWS::SQS::Queue").count(), 10);
    }

    #[test]
    fn function_without_binary_is_rejected() {
        let t = "Resources:\n  F:\n    Type: AWS::Serverless::Function\n    Properties: {}\n";
        let err = Template::parse(t).unwrap_err();
        assert!(
            format!("{err:#}").contains("BuildProperties.Binary"),
            "{err:#}"
        );
    }

    #[test]
    fn defaults_apply_for_timeout_and_batch_size() {
        let t = r#"
Resources:
  Q:
    Type: AWS::SQS::Queue
  F:
    Type: AWS::Serverless::Function
    Metadata: {BuildProperties: {Binary: f}}
    Properties:
      Events:
        E:
          Type: SQS
          Properties: {Queue: !GetAtt Q.Arn}
"#;
        let t = Template::parse(t).unwrap();
        let f = &t.functions[0];
        assert_eq!(f.timeout_secs, 3);
        assert_eq!(f.sqs_events[0].batch_size, 10);
        assert_eq!(f.sqs_events[0].queue, "Q");
        assert!(!f.sqs_events[0].reports_batch_item_failures());
        assert_eq!(f.sqs_events[0].max_concurrency, None);
    }
}
