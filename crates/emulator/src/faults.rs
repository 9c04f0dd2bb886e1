//! Fault injection (control API `POST /_emulator/faults`): rules that answer matching requests
//! with an error status (with `Retry-After`), delay them, or make the next matching
//! conditional write meet a changed ETag (a concurrent analyst edit).

use regex::Regex;
use serde::Deserialize;

use crate::ids::IdGen;

/// A fault rule as the control API receives it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    /// A regex matched against the query string (without the `?`; empty without one), as
    /// sent or percent-decoded: the rule hits when either matches (`$expand=alerts` and
    /// `%24expand=alerts` both match `\$expand=alerts`).
    #[serde(default)]
    pub query: Option<String>,
    #[serde(default)]
    pub status: Option<u16>,
    /// How many requests the rule hits (default: every matching request).
    #[serde(default)]
    pub times: Option<u32>,
    #[serde(default)]
    pub retry_after: Option<String>,
    #[serde(default)]
    pub delay: Option<String>,
    #[serde(default)]
    pub probability: Option<f64>,
    /// A path regex: the next matching conditional write meets a changed ETag.
    #[serde(default)]
    pub conflict: Option<String>,
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct Fault {
    pub method: Option<String>,
    pub path: Option<Regex>,
    pub query: Option<Regex>,
    pub status: Option<u16>,
    pub remaining: Option<u32>,
    pub retry_after: Option<std::time::Duration>,
    pub delay: Option<std::time::Duration>,
    pub probability: Option<f64>,
    pub conflict: Option<Regex>,
}

/// What a request meets.
#[derive(Debug, Clone, Default)]
pub struct Hit {
    pub status: Option<u16>,
    pub retry_after: Option<std::time::Duration>,
    pub delay: Option<std::time::Duration>,
}

fn std_duration(text: &str, field: &str) -> Result<std::time::Duration, String> {
    crate::duration::parse(text)
        .ok()
        .and_then(|d| d.to_std().ok())
        .ok_or_else(|| format!("{field}: bad duration {text:?}"))
}

impl Fault {
    /// Compiles a rule; `Err` names the bad field.
    pub fn compile(spec: FaultSpec) -> Result<Fault, String> {
        let re = |s: &Option<String>, f: &str| -> Result<Option<Regex>, String> {
            s.as_deref()
                .map(|p| Regex::new(p).map_err(|e| format!("{f}: bad regex: {e}")))
                .transpose()
        };
        let conflict = re(&spec.conflict, "conflict")?;
        if conflict.is_none() && spec.status.is_none() && spec.delay.is_none() {
            return Err("a fault needs a status, a delay or a conflict".into());
        }
        if let Some(s) = spec.status
            && !(100..=599).contains(&s)
        {
            return Err(format!("status: {s} is not an HTTP status"));
        }
        if let Some(p) = spec.probability
            && !(0.0..=1.0).contains(&p)
        {
            return Err("probability: must be within 0 and 1".into());
        }
        Ok(Fault {
            method: spec.method.map(|m| m.to_ascii_uppercase()),
            path: re(&spec.path, "path")?,
            query: re(&spec.query, "query")?,
            status: spec.status,
            remaining: spec
                .times
                .or(if conflict.is_some() { Some(1) } else { None }),
            retry_after: spec
                .retry_after
                .as_deref()
                .map(|t| std_duration(t, "retry_after"))
                .transpose()?,
            delay: spec
                .delay
                .as_deref()
                .map(|t| std_duration(t, "delay"))
                .transpose()?,
            probability: spec.probability,
            conflict,
        })
    }
}

/// The active rules.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    rules: Vec<Fault>,
}

impl Faults {
    /// Adds a rule.
    pub fn add(&mut self, f: Fault) {
        self.rules.push(f);
    }

    /// Removes every rule.
    pub fn clear(&mut self) {
        self.rules.clear();
    }

    /// The number of active rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether no rule is active.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The status/delay rules a request meets (the first matching status rule wins; delays add).
    pub fn check(&mut self, method: &str, path: &str, query: &str, rng: &mut IdGen) -> Hit {
        let mut hit = Hit::default();
        for rule in self.rules.iter_mut().filter(|r| r.conflict.is_none()) {
            if rule.remaining == Some(0) {
                continue;
            }
            if rule.method.as_deref().is_some_and(|m| m != method) {
                continue;
            }
            if rule.path.as_ref().is_some_and(|re| !re.is_match(path)) {
                continue;
            }
            if let Some(re) = &rule.query
                && !re.is_match(query)
                && !re.is_match(&percent_encoding::percent_decode_str(query).decode_utf8_lossy())
            {
                continue;
            }
            if hit.status.is_some() && rule.status.is_some() {
                continue;
            }
            if let Some(p) = rule.probability
                && rng.next_f64() >= p
            {
                continue;
            }
            if let Some(n) = rule.remaining.as_mut() {
                *n -= 1;
            }
            if let Some(d) = rule.delay {
                hit.delay = Some(hit.delay.unwrap_or_default() + d);
            }
            if rule.status.is_some() {
                hit.status = rule.status;
                hit.retry_after = rule.retry_after;
            }
        }
        self.rules.retain(|r| r.remaining != Some(0));
        hit
    }

    /// Whether a conditional write to `path` meets a concurrent edit (consumes the rule).
    pub fn take_conflict(&mut self, path: &str) -> bool {
        let found = self.rules.iter_mut().find(|r| {
            r.remaining != Some(0) && r.conflict.as_ref().is_some_and(|re| re.is_match(path))
        });
        let hit = match found {
            Some(r) => {
                if let Some(n) = r.remaining.as_mut() {
                    *n -= 1;
                }
                true
            }
            None => false,
        };
        self.rules.retain(|r| r.remaining != Some(0));
        hit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: serde_json::Value) -> Fault {
        Fault::compile(serde_json::from_value(v).unwrap()).unwrap()
    }

    #[test]
    fn times_and_conflicts() {
        let mut f = Faults::default();
        let mut rng = IdGen::from_seed(b"s");
        f.add(spec(
            serde_json::json!({"method": "PUT", "path": "incidents", "status": 503, "times": 2}),
        ));
        f.add(spec(serde_json::json!({"conflict": "incidents/abc"})));
        assert_eq!(f.check("GET", "/x/incidents/1", "", &mut rng).status, None);
        assert_eq!(
            f.check("PUT", "/x/incidents/1", "", &mut rng).status,
            Some(503)
        );
        assert_eq!(
            f.check("PUT", "/x/incidents/1", "", &mut rng).status,
            Some(503)
        );
        assert_eq!(f.check("PUT", "/x/incidents/1", "", &mut rng).status, None);
        assert!(!f.take_conflict("/x/incidents/zzz"));
        assert!(f.take_conflict("/x/incidents/abc"));
        assert!(!f.take_conflict("/x/incidents/abc"));
        assert!(f.is_empty());
    }

    #[test]
    fn query_regex_matches_the_raw_query_string() {
        let mut f = Faults::default();
        let mut rng = IdGen::from_seed(b"s");
        f.add(spec(serde_json::json!({
            "method": "GET", "path": "^/v1.0/security/incidents$",
            "query": "(^|&)\\$expand=alerts", "status": 500
        })));
        let path = "/v1.0/security/incidents";
        assert_eq!(f.check("GET", path, "%24top=50", &mut rng).status, None);
        assert_eq!(f.check("GET", path, "", &mut rng).status, None);
        assert_eq!(
            f.check("GET", path, "%24top=50&%24expand=alerts", &mut rng)
                .status,
            Some(500)
        );
        assert_eq!(
            f.check("GET", path, "%24expand=alerts", &mut rng).status,
            Some(500)
        );
    }
}
