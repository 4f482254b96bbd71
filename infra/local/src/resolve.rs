//! Evaluates the template's intrinsics (`Ref`, `Fn::GetAtt`, `Fn::Sub`, `Fn::Join`) against local
//! physical values: pseudo parameters, parameter defaults, and what `provision` recorded.

use anyhow::{Context, Result, anyhow, bail};
use serde_yaml::Value;

use crate::state::State;
use crate::template::{Intrinsic, Template};

/// The account moto uses by default, so ARNs built here match the ones moto returns.
pub const ACCOUNT_ID: &str = "123456789012";
pub const DEFAULT_REGION: &str = "us-east-1";
pub const DEFAULT_STACK: &str = "ferry";

/// IAM is not emulated: a role's ARN is made up from its logical id.
const IAM_ROLE: &str = "AWS::IAM::Role";
const FUNCTION: &str = "AWS::Serverless::Function";

pub fn region() -> String {
    std::env::var("AWS_REGION")
        .ok()
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| DEFAULT_REGION.to_string())
}

pub struct Resolver<'a> {
    template: &'a Template,
    state: &'a State,
    pub region: String,
    pub stack: String,
}

impl<'a> Resolver<'a> {
    pub fn new(template: &'a Template, state: &'a State, stack: &str) -> Self {
        Resolver {
            template,
            state,
            region: region(),
            stack: stack.to_string(),
        }
    }

    /// A scalar value: plain strings, numbers and booleans as written, intrinsics evaluated.
    pub fn string(&self, v: &Value) -> Result<String> {
        if let Some(i) = Intrinsic::of(v) {
            return self.intrinsic(&i);
        }
        match v {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            other => bail!("expected a scalar, found {other:?}"),
        }
    }

    /// A whole value as JSON, intrinsics evaluated at any depth.
    pub fn json(&self, v: &Value) -> Result<serde_json::Value> {
        if Intrinsic::of(v).is_some() {
            return self.string(v).map(serde_json::Value::String);
        }
        Ok(match v {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Number(n) => serde_json::to_value(n)?,
            Value::String(s) => serde_json::Value::String(s.clone()),
            Value::Sequence(seq) => {
                serde_json::Value::Array(seq.iter().map(|x| self.json(x)).collect::<Result<_>>()?)
            }
            Value::Mapping(m) => {
                let mut out = serde_json::Map::new();
                for (k, x) in m {
                    let k = k.as_str().ok_or_else(|| anyhow!("non-string key {k:?}"))?;
                    out.insert(k.to_string(), self.json(x)?);
                }
                serde_json::Value::Object(out)
            }
            Value::Tagged(t) => bail!("unsupported tag {}", t.tag),
        })
    }

    fn intrinsic(&self, i: &Intrinsic) -> Result<String> {
        match i {
            Intrinsic::Ref(name) => self.reference(name),
            Intrinsic::GetAtt(id, attr) => self.get_att(id, attr),
            Intrinsic::Sub(text, vars) => self.sub(text, vars),
            Intrinsic::Join(delim, items) => {
                let parts = items
                    .iter()
                    .map(|x| self.string(x))
                    .collect::<Result<Vec<_>>>()?;
                Ok(parts.join(delim))
            }
            Intrinsic::Other(name, _) => bail!("intrinsic {name} is not supported locally"),
        }
    }

    /// What `Ref name` gives: a pseudo parameter, a parameter's default, or a resource's recorded ref.
    pub fn reference(&self, name: &str) -> Result<String> {
        match name {
            "AWS::Region" => return Ok(self.region.clone()),
            "AWS::AccountId" => return Ok(ACCOUNT_ID.to_string()),
            "AWS::StackName" => return Ok(self.stack.clone()),
            "AWS::Partition" => return Ok("aws".to_string()),
            "AWS::URLSuffix" => return Ok("amazonaws.com".to_string()),
            "AWS::StackId" => {
                return Ok(format!(
                    "arn:aws:cloudformation:{}:{ACCOUNT_ID}:stack/{}/local",
                    self.region, self.stack
                ));
            }
            _ => {}
        }
        if let Some(p) = self.template.parameters.get(name) {
            let default = p
                .default
                .as_ref()
                .ok_or_else(|| anyhow!("parameter {name} has no Default"))?;
            return self
                .string(default)
                .with_context(|| format!("parameter {name}"));
        }
        let r = self
            .template
            .resources
            .get(name)
            .ok_or_else(|| anyhow!("Ref to unknown name {name}"))?;
        if r.kind == IAM_ROLE {
            return Ok(self.role_name(name));
        }
        if r.kind == FUNCTION {
            // A function's Ref is its name; locally, the name cargo lambda watch serves it under
            // (so a Lambda Invoke with AWS_ENDPOINT_URL_LAMBDA pointing at watch reaches it).
            return self
                .template
                .functions
                .iter()
                .find(|f| f.logical_id == name)
                .map(|f| f.binary.clone())
                .ok_or_else(|| anyhow!("function {name} has no Metadata.BuildProperties.Binary"));
        }
        Ok(self.provisioned(name)?.reference.clone())
    }

    /// What `Fn::GetAtt [id, attr]` gives.
    pub fn get_att(&self, id: &str, attr: &str) -> Result<String> {
        let r = self
            .template
            .resources
            .get(id)
            .ok_or_else(|| anyhow!("GetAtt of unknown resource {id}"))?;
        if r.kind == IAM_ROLE {
            return match attr {
                "Arn" => Ok(format!(
                    "arn:aws:iam::{ACCOUNT_ID}:role/{}",
                    self.role_name(id)
                )),
                "RoleId" => Ok(format!("AROA{}", id.to_ascii_uppercase())),
                _ => bail!("GetAtt {id}.{attr}: IAM roles only have Arn and RoleId locally"),
            };
        }
        self.provisioned(id)?
            .attributes
            .get(attr)
            .cloned()
            .ok_or_else(|| {
                anyhow!(
                    "GetAtt {id}.{attr}: no such attribute recorded for {id} ({})",
                    r.kind
                )
            })
    }

    fn role_name(&self, id: &str) -> String {
        format!("{}-{id}", self.stack)
    }

    fn provisioned(&self, id: &str) -> Result<&crate::state::ResourceState> {
        self.state
            .get(id)
            .ok_or_else(|| anyhow!("{id} is not provisioned locally: run `ferry-local provision`"))
    }

    fn sub(&self, text: &str, vars: &std::collections::BTreeMap<String, Value>) -> Result<String> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| anyhow!("Fn::Sub: unclosed ${{ in {text:?}"))?;
            let name = after[..end].trim();
            if let Some(literal) = name.strip_prefix('!') {
                // `${!Literal}` writes `${Literal}` through unevaluated.
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else if let Some(v) = vars.get(name) {
                out.push_str(&self.string(v)?);
            } else if let Some((id, attr)) = name.split_once('.') {
                out.push_str(&self.get_att(id, attr)?);
            } else {
                out.push_str(&self.reference(name)?);
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::ResourceState;

    fn template() -> Template {
        Template::parse(
            r#"
Parameters:
  Level: {Type: String, Default: debug}
Resources:
  Q:
    Type: AWS::SQS::Queue
  G:
    Type: AWS::Scheduler::ScheduleGroup
    Properties:
      Name: !Sub "${AWS::StackName}-sync"
  Role:
    Type: AWS::IAM::Role
  Worker:
    Type: AWS::Serverless::Function
    Metadata: {BuildMethod: rust-cargolambda, BuildProperties: {Binary: worker-x}}
    Properties: {CodeUri: ../, Handler: bootstrap, Runtime: provided.al2023}
"#,
        )
        .unwrap()
    }

    fn state() -> State {
        let mut s = State::default();
        s.insert(
            "Q",
            ResourceState {
                kind: "AWS::SQS::Queue".into(),
                reference: "http://q/ferry-Q".into(),
                attributes: [(
                    "Arn".to_string(),
                    "arn:aws:sqs:us-east-1:123456789012:ferry-Q".to_string(),
                )]
                .into(),
            },
        );
        s
    }

    fn yaml(s: &str) -> Value {
        serde_yaml::from_str(s).unwrap()
    }

    #[test]
    fn sub_expands_pseudo_parameters_refs_getatts_and_literals() {
        let (t, s) = (template(), state());
        let r = Resolver::new(&t, &s, "ferry");
        let group_name = t.resources["G"].properties.get("Name").unwrap();
        assert_eq!(r.string(group_name).unwrap(), "ferry-sync");
        assert_eq!(
            r.string(&yaml(
                r#"!Sub "${Q.Arn}|${Q}|${!Keep}|${Level}|${AWS::AccountId}|${X}""#
            ))
            .unwrap_err()
            .to_string(),
            "Ref to unknown name X"
        );
        assert_eq!(
            r.string(&yaml(
                r#"!Sub "${Q.Arn}|${Q}|${!Keep}|${Level}|${AWS::AccountId}""#
            ))
            .unwrap(),
            "arn:aws:sqs:us-east-1:123456789012:ferry-Q|http://q/ferry-Q|${Keep}|debug|123456789012"
        );
        assert_eq!(
            r.string(&yaml(r#"Fn::Sub: ["a-${V}", {V: !Ref Level}]"#))
                .unwrap(),
            "a-debug"
        );
    }

    #[test]
    fn getatt_arn_comes_from_state_in_both_forms() {
        let (t, s) = (template(), state());
        let r = Resolver::new(&t, &s, "ferry");
        let want = "arn:aws:sqs:us-east-1:123456789012:ferry-Q";
        assert_eq!(r.string(&yaml("!GetAtt Q.Arn")).unwrap(), want);
        assert_eq!(r.string(&yaml("Fn::GetAtt: [Q, Arn]")).unwrap(), want);
        assert!(r.string(&yaml("!GetAtt Q.Nope")).is_err());
        assert_eq!(
            r.string(&yaml("!GetAtt Role.Arn")).unwrap(),
            "arn:aws:iam::123456789012:role/ferry-Role"
        );
    }

    #[test]
    fn a_functions_ref_is_the_name_watch_serves_it_under() {
        let (t, s) = (template(), state());
        let r = Resolver::new(&t, &s, "ferry");
        assert_eq!(r.string(&yaml("!Ref Worker")).unwrap(), "worker-x");
    }

    #[test]
    fn unprovisioned_resource_says_to_provision() {
        let t = template();
        let empty = State::default();
        let r = Resolver::new(&t, &empty, "ferry");
        let err = r.string(&yaml("!Ref Q")).unwrap_err().to_string();
        assert!(err.contains("ferry-local provision"), "{err}");
    }

    #[test]
    fn join_and_json_resolve_nested_values() {
        let (t, s) = (template(), state());
        let r = Resolver::new(&t, &s, "ferry");
        assert_eq!(
            r.string(&yaml(r#"!Join [":", [a, !Ref Level, 3]]"#))
                .unwrap(),
            "a:debug:3"
        );
        let j = r
            .json(&yaml(
                "{deadLetterTargetArn: !GetAtt Q.Arn, maxReceiveCount: 5}",
            ))
            .unwrap();
        assert_eq!(
            j,
            serde_json::json!({"deadLetterTargetArn": "arn:aws:sqs:us-east-1:123456789012:ferry-Q", "maxReceiveCount": 5})
        );
    }
}
