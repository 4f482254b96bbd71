//! Request fields the way the original docloading server took them: a JSON object whose numbers may
//! come as strings ("port": "27017"), for GET routes also (or instead) as query parameters. A missing
//! field is a 422 whose body lists the route's required parameters (the original's shape) beside
//! ferry's JSON error.

use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use ferry_shared::http::ApiError;
use serde_json::{Map, Value, json};

pub struct Fields(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for Fields {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let query = req.uri().query().unwrap_or("").to_string();
        let mut map: Map<String, Value> = if query.is_empty() {
            Map::new()
        } else {
            ferry_shared::http::parse_form::<std::collections::BTreeMap<String, String>>(
                query.as_bytes(),
            )?
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect()
        };
        let bytes = axum::body::to_bytes(req.into_body(), ferry_shared::http::MAX_BODY_BYTES)
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "body too large",
                )
                .field("body")
            })?;
        if !bytes.iter().all(u8::is_ascii_whitespace) {
            let body: Map<String, Value> = ferry_shared::http::parse_json(&bytes)?;
            map.extend(body);
        }
        Ok(Fields(map))
    }
}

impl Fields {
    fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Fails with 422 naming every missing one of `required` (all listed, as the original did).
    pub fn require(&self, required: &[&str]) -> Result<(), ApiError> {
        let missing: Vec<&str> = required.iter().copied().filter(|f| !self.has(f)).collect();
        match missing.first() {
            None => Ok(()),
            Some(first) => Err(missing_error(first, &missing, required)),
        }
    }

    pub fn str(&self, name: &str) -> Result<Option<String>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.trim().to_string()).filter(|s| !s.is_empty())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => Err(ApiError::invalid(name, "must be a string")),
        }
    }

    pub fn u64(&self, name: &str) -> Result<Option<u64>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .or_else(|| {
                    n.as_f64()
                        .filter(|f| *f >= 0.0 && f.fract() == 0.0)
                        .map(|f| f as u64)
                })
                .map(Some)
                .ok_or_else(|| ApiError::invalid(name, "must be a whole number >= 0")),
            Some(Value::String(s)) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| ApiError::invalid(name, "must be a whole number >= 0")),
            Some(_) => Err(ApiError::invalid(name, "must be a whole number >= 0")),
        }
    }

    pub fn f64(&self, name: &str) -> Result<Option<f64>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => Ok(n.as_f64()),
            Some(Value::String(s)) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| ApiError::invalid(name, "must be a number")),
            Some(_) => Err(ApiError::invalid(name, "must be a number")),
        }
    }

    pub fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Ok(Some(true)),
                "false" | "0" | "no" => Ok(Some(false)),
                _ => Err(ApiError::invalid(name, "must be true or false")),
            },
            Some(Value::Number(n)) => Ok(Some(n.as_u64() == Some(1))),
            Some(_) => Err(ApiError::invalid(name, "must be true or false")),
        }
    }

    pub fn port(&self, name: &str, default: u16) -> Result<u16, ApiError> {
        match self.u64(name)? {
            None => Ok(default),
            Some(p) if (1..=65535).contains(&p) => Ok(p as u16),
            Some(_) => Err(ApiError::invalid(
                name,
                "must be a port between 1 and 65535",
            )),
        }
    }

    pub fn value(&self, name: &str) -> Option<&Value> {
        self.get(name)
    }
}

pub fn missing_error(field: &str, missing: &[&str], required: &[&str]) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "missing_field",
        format!("missing required parameters: {}", missing.join(", ")),
    )
    .field(field)
    .with("required_parameters", json!(required))
    .with("missing_parameters", json!(missing))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(v: Value) -> Fields {
        Fields(v.as_object().unwrap().clone())
    }

    #[test]
    fn missing_fields_are_listed_with_every_required_parameter() {
        let e = f(json!({"ip": "h"}))
            .require(&["ip", "database_name", "collection_name"])
            .unwrap_err();
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        let b = e.body();
        assert_eq!(
            b["required_parameters"],
            json!(["ip", "database_name", "collection_name"])
        );
        assert_eq!(
            b["missing_parameters"],
            json!(["database_name", "collection_name"])
        );
        assert_eq!(b["error"]["field"], "database_name");
    }

    #[test]
    fn numbers_may_come_as_strings() {
        let x = f(json!({"port": "27017", "n": 5, "bad": "x", "b": "true"}));
        assert_eq!(x.port("port", 1).unwrap(), 27017);
        assert_eq!(x.u64("n").unwrap(), Some(5));
        assert_eq!(x.u64("bad").unwrap_err().field.as_deref(), Some("bad"));
        assert_eq!(x.bool("b").unwrap(), Some(true));
    }
}
