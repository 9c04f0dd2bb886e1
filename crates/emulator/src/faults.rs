//! Fault injection (control API `POST /_emulator/faults`): rules that answer matching requests
//! with an error status (with `Retry-After`), delay them, or make the next matching
//! conditional write meet a changed ETag (a concurrent analyst edit).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
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
    /// Header regexes, by header name (any case): the rule hits only requests whose headers
    /// all match (`{"x-ms-lease-action": "^renew$"}` fails lease renewals only).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// How long the rule lasts from when it is added, on the emulator's clock (`"30s"`);
    /// default: until its `times` are used up or the rules are cleared.
    #[serde(default)]
    pub lasting: Option<String>,
}

/// What a fault rule matches a request on.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// The query string as sent (without `?`).
    pub query: &'a str,
    pub headers: &'a hyper::HeaderMap,
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
    /// Header name (lower case) and the regex its value must match.
    pub headers: Vec<(String, Regex)>,
    pub lasting: Option<chrono::Duration>,
    /// The emulator's instant the rule ends at (set when it is added, from `lasting`).
    pub until: Option<DateTime<Utc>>,
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
        let mut headers = Vec::new();
        for (name, pattern) in &spec.headers {
            let re = Regex::new(pattern).map_err(|e| format!("headers.{name}: bad regex: {e}"))?;
            headers.push((name.to_ascii_lowercase(), re));
        }
        let lasting = spec
            .lasting
            .as_deref()
            .map(|t| {
                crate::duration::parse(t)
                    .ok()
                    .filter(|d| *d > chrono::Duration::zero())
                    .ok_or_else(|| format!("lasting: bad duration {t:?}"))
            })
            .transpose()?;
        Ok(Fault {
            headers,
            lasting,
            until: None,
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
    /// Adds a rule at the emulator's `now` (a rule `lasting` a while ends that long after).
    pub fn add(&mut self, mut f: Fault, now: DateTime<Utc>) {
        f.until = f.lasting.map(|d| now + d);
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
    pub fn check(&mut self, req: &Request<'_>, now: DateTime<Utc>, rng: &mut IdGen) -> Hit {
        let (method, path, query) = (req.method, req.path, req.query);
        self.rules.retain(|r| r.until.is_none_or(|u| now < u));
        let mut hit = Hit::default();
        for rule in self.rules.iter_mut().filter(|r| r.conflict.is_none()) {
            if rule.remaining == Some(0) {
                continue;
            }
            let headers_match = rule.headers.iter().all(|(name, re)| {
                req.headers
                    .get_all(name.as_str())
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .any(|v| re.is_match(v))
            });
            if !headers_match {
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

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-07T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn req<'a>(
        method: &'a str,
        path: &'a str,
        query: &'a str,
        headers: &'a hyper::HeaderMap,
    ) -> Request<'a> {
        Request {
            method,
            path,
            query,
            headers,
        }
    }

    #[test]
    fn times_and_conflicts() {
        let mut f = Faults::default();
        let mut rng = IdGen::from_seed(b"s");
        let h = hyper::HeaderMap::new();
        f.add(spec(
            serde_json::json!({"method": "PUT", "path": "incidents", "status": 503, "times": 2}),
        ), now());
        f.add(
            spec(serde_json::json!({"conflict": "incidents/abc"})),
            now(),
        );
        assert_eq!(
            f.check(&req("GET", "/x/incidents/1", "", &h), now(), &mut rng)
                .status,
            None
        );
        assert_eq!(
            f.check(&req("PUT", "/x/incidents/1", "", &h), now(), &mut rng)
                .status,
            Some(503)
        );
        assert_eq!(
            f.check(&req("PUT", "/x/incidents/1", "", &h), now(), &mut rng)
                .status,
            Some(503)
        );
        assert_eq!(
            f.check(&req("PUT", "/x/incidents/1", "", &h), now(), &mut rng)
                .status,
            None
        );
        assert!(!f.take_conflict("/x/incidents/zzz"));
        assert!(f.take_conflict("/x/incidents/abc"));
        assert!(!f.take_conflict("/x/incidents/abc"));
        assert!(f.is_empty());
    }

    #[test]
    fn query_regex_matches_the_raw_query_string() {
        let mut f = Faults::default();
        let mut rng = IdGen::from_seed(b"s");
        let h = hyper::HeaderMap::new();
        f.add(
            spec(serde_json::json!({
                "method": "GET", "path": "^/v1.0/security/incidents$",
                "query": "(^|&)\\$expand=alerts", "status": 500
            })),
            now(),
        );
        let path = "/v1.0/security/incidents";
        assert_eq!(
            f.check(&req("GET", path, "%24top=50", &h), now(), &mut rng)
                .status,
            None
        );
        assert_eq!(
            f.check(&req("GET", path, "", &h), now(), &mut rng).status,
            None
        );
        assert_eq!(
            f.check(
                &req("GET", path, "%24top=50&%24expand=alerts", &h),
                now(),
                &mut rng
            )
            .status,
            Some(500)
        );
        assert_eq!(
            f.check(&req("GET", path, "%24expand=alerts", &h), now(), &mut rng)
                .status,
            Some(500)
        );
    }

    #[test]
    fn header_rules_and_rules_lasting_a_while() {
        let mut f = Faults::default();
        let mut rng = IdGen::from_seed(b"s");
        f.add(
            spec(serde_json::json!({"method": "PUT", "path": "^/storage/",
                "headers": {"X-MS-Lease-Action": "^renew$"}, "status": 503, "lasting": "30s"})),
            now(),
        );
        let mut renew = hyper::HeaderMap::new();
        renew.insert("x-ms-lease-action", "renew".parse().unwrap());
        let mut acquire = hyper::HeaderMap::new();
        acquire.insert("x-ms-lease-action", "acquire".parse().unwrap());
        let path = "/storage/st/c/b";
        assert_eq!(
            f.check(&req("PUT", path, "comp=lease", &renew), now(), &mut rng)
                .status,
            Some(503)
        );
        assert_eq!(
            f.check(&req("PUT", path, "comp=lease", &acquire), now(), &mut rng)
                .status,
            None
        );
        let later = now() + chrono::Duration::seconds(29);
        assert_eq!(
            f.check(&req("PUT", path, "comp=lease", &renew), later, &mut rng)
                .status,
            Some(503)
        );
        let over = now() + chrono::Duration::seconds(30);
        assert_eq!(
            f.check(&req("PUT", path, "comp=lease", &renew), over, &mut rng)
                .status,
            None
        );
        assert!(f.is_empty());
    }
}
