//! `ferry-local env`: the functions' environment variables (Globals + each function's own), resolved
//! against `resources.json`, as `export KEY='VALUE'` lines for a shell to eval before
//! `cargo lambda watch`. cargo lambda watch gives every function one environment, so a variable that two
//! functions need with different values is an error rather than a silent pick.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, anyhow, bail};

use crate::resolve::{DEFAULT_STACK, Resolver};
use crate::state::State;
use crate::template::{Function, Template};

/// The names of the variables the template sets for `binary` (Globals included), without resolving
/// them. Reads the repo's `infra/template.yaml`.
pub fn env_vars_of(binary: &str) -> Result<BTreeSet<String>> {
    let template = Template::load(&crate::state::default_template_path())?;
    let f = function(&template, binary)?;
    Ok(template
        .global_env
        .keys()
        .chain(f.env.keys())
        .cloned()
        .collect())
}

/// The resolved environment of `binary`, using `resources.json` from the state dir
/// (`$FERRY_STATE_DIR`, default `.ferry`).
pub fn function_env(template: &Template, binary: &str) -> Result<BTreeMap<String, String>> {
    let state = State::load(&crate::state::state_dir())?;
    function_env_with(template, &state, binary)
}

/// The resolved environment of `binary` against an explicit state.
pub fn function_env_with(
    template: &Template,
    state: &State,
    binary: &str,
) -> Result<BTreeMap<String, String>> {
    let f = function(template, binary)?;
    resolve_env(template, state, f)
}

fn function<'a>(template: &'a Template, binary: &str) -> Result<&'a Function> {
    template.function_by_binary(binary).ok_or_else(|| {
        let known: Vec<_> = template
            .functions
            .iter()
            .map(|f| f.binary.as_str())
            .collect();
        anyhow!("no function with binary {binary:?} in the template (known: {known:?})")
    })
}

fn resolve_env(
    template: &Template,
    state: &State,
    f: &Function,
) -> Result<BTreeMap<String, String>> {
    let res = Resolver::new(template, state, DEFAULT_STACK);
    let mut out = BTreeMap::new();
    // A function's own value overrides Globals, as in SAM.
    for (k, v) in template.global_env.iter().chain(f.env.iter()) {
        let value = res
            .string(v)
            .with_context(|| format!("{} (function {}): {k}", f.logical_id, f.binary))?;
        out.insert(k.clone(), value);
    }
    Ok(out)
}

/// The union of every function's environment. Fails, naming both functions, if one variable would need
/// two different values.
pub fn union_env(template: &Template, state: &State) -> Result<BTreeMap<String, String>> {
    let mut out: BTreeMap<String, (String, String)> = BTreeMap::new();
    for f in &template.functions {
        for (k, v) in resolve_env(template, state, f)? {
            match out.get(&k) {
                Some((other_value, other_fn)) if *other_value != v => bail!(
                    "{k} needs different values for {other_fn} ({other_value:?}) and {} ({v:?}); \
                     cargo lambda watch gives all functions one environment, so rename one of them in the template",
                    f.binary
                ),
                Some(_) => {}
                None => {
                    out.insert(k, (v, f.binary.clone()));
                }
            }
        }
    }
    Ok(out.into_iter().map(|(k, (v, _))| (k, v)).collect())
}

/// `export KEY='VALUE'` lines, single-quoted for POSIX shells.
pub fn render_exports(env: &BTreeMap<String, String>) -> String {
    env.iter()
        .map(|(k, v)| format!("export {k}='{}'\n", v.replace('\'', r"'\''")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::ResourceState;

    fn state_with(ids: &[&str]) -> State {
        let mut s = State::default();
        for id in ids {
            s.insert(
                id,
                ResourceState {
                    kind: "AWS::SQS::Queue".into(),
                    reference: format!("http://q/{id}"),
                    attributes: Default::default(),
                },
            );
        }
        s
    }

    const TWO_FUNCTIONS: &str = r#"
Globals:
  Function:
    Environment:
      Variables:
        RUST_LOG: info
Resources:
  A: {Type: AWS::SQS::Queue}
  B: {Type: AWS::SQS::Queue}
  F1:
    Type: AWS::Serverless::Function
    Metadata: {BuildProperties: {Binary: one}}
    Properties:
      Environment: {Variables: {QUEUE_URL: !Ref A, SHARED: x}}
  F2:
    Type: AWS::Serverless::Function
    Metadata: {BuildProperties: {Binary: two}}
    Properties:
      Environment: {Variables: {QUEUE_URL: !Ref B, SHARED: x}}
"#;

    #[test]
    fn conflicting_values_fail_naming_both_functions() {
        let t = Template::parse(TWO_FUNCTIONS).unwrap();
        let err = union_env(&t, &state_with(&["A", "B"]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("QUEUE_URL") && err.contains("one") && err.contains("two"),
            "{err}"
        );
    }

    #[test]
    fn equal_values_merge_and_globals_apply() {
        let t = Template::parse(&TWO_FUNCTIONS.replace("!Ref B", "!Ref A")).unwrap();
        let env = union_env(&t, &state_with(&["A", "B"])).unwrap();
        assert_eq!(env["QUEUE_URL"], "http://q/A");
        assert_eq!(env["RUST_LOG"], "info");
        assert_eq!(env["SHARED"], "x");
        let one = function_env_with(&t, &state_with(&["A"]), "one").unwrap();
        assert_eq!(
            one.keys().collect::<Vec<_>>(),
            ["QUEUE_URL", "RUST_LOG", "SHARED"]
        );
    }

    #[test]
    fn exports_are_quoted_for_the_shell() {
        let env = BTreeMap::from([("A".to_string(), "it's $x".to_string())]);
        assert_eq!(render_exports(&env), "export A='it'\\''s $x'\n");
    }

    #[test]
    fn env_var_names_of_the_real_template() {
        let names = env_vars_of("api-scheduler").unwrap();
        for n in [
            "RUST_LOG",
            "TABLE_NAME",
            "JWT_SECRET_ARN",
            "SYNC_QUEUE_URL",
            "SCHEDULE_GROUP",
            "SCHEDULER_ROLE_ARN",
        ] {
            assert!(names.contains(n), "{n} missing from {names:?}");
        }
        assert!(
            !env_vars_of("worker-ingest")
                .unwrap()
                .contains("JWT_SECRET_ARN")
        );
        assert!(env_vars_of("no-such-binary").is_err());
    }
}
