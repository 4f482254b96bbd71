//! The template's HttpApi routes: what `ferry-local gateway` serves locally, as API Gateway does once
//! deployed.

use std::collections::BTreeMap;

use anyhow::{Result, bail};

use crate::template::Template;

/// Every (method, path, binary) of the template's HttpApi events, sorted by path then method.
pub fn routes(template: &Template) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = template
        .functions
        .iter()
        .flat_map(|f| {
            f.http_events
                .iter()
                .map(|e| (e.method.clone(), e.path.clone(), f.binary.clone()))
        })
        .collect();
    out.sort_by(|a, b| (&a.1, &a.0, &a.2).cmp(&(&b.1, &b.0, &b.2)));
    out
}

/// Fails if one method and path is routed to two functions (API Gateway would refuse the stack).
pub fn check_unique(template: &Template) -> Result<()> {
    let mut seen: BTreeMap<(String, String), String> = BTreeMap::new();
    for (method, path, binary) in routes(template) {
        if let Some(other) = seen.insert((method.clone(), path.clone()), binary.clone()) {
            bail!("{method} {path} is routed to both {other} and {binary}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn real() -> Template {
        Template::load(&crate::state::default_template_path()).unwrap()
    }

    #[test]
    fn routes_match_the_templates_http_events() {
        let t = real();
        let r = routes(&t);
        let has =
            |m: &str, p: &str, f: &str| r.contains(&(m.to_string(), p.to_string(), f.to_string()));
        assert!(has("POST", "/api/v1/jobs/{id}/run", "api-scheduler"));
        assert!(has("GET", "/health/live", "api-jobs"));
        assert!(has("POST", "/login", "api-jobs"));
        assert!(has("GET", "/users/me", "api-transfers"));
        let events: usize = t.functions.iter().map(|f| f.http_events.len()).sum();
        assert_eq!(r.len(), events);
        let mut sorted = r.clone();
        sorted.sort_by(|a, b| (&a.1, &a.0).cmp(&(&b.1, &b.0)));
        assert_eq!(r, sorted);
        // Workers have no HTTP routes.
        assert!(r.iter().all(|(_, _, f)| !f.starts_with("worker-")));
    }

    #[test]
    fn same_route_to_two_functions_is_an_error() {
        let t = Template::parse(
            r#"
Resources:
  A:
    Type: AWS::Serverless::Function
    Metadata: {BuildProperties: {Binary: a}}
    Properties: {Events: {E: {Type: HttpApi, Properties: {Path: /x, Method: get}}}}
  B:
    Type: AWS::Serverless::Function
    Metadata: {BuildProperties: {Binary: b}}
    Properties: {Events: {E: {Type: HttpApi, Properties: {Path: /x, Method: GET}}}}
"#,
        )
        .unwrap();
        assert!(check_unique(&t).unwrap_err().to_string().contains("GET /x"));
        assert!(check_unique(&real()).is_ok());
    }
}
