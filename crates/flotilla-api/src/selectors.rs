//! Label and field selectors, with Kubernetes' grammar (`=`, `==`, `!=`, `in`, `notin`,
//! existence, `!` non-existence, `>`/`<` for labels; `=`, `==`, `!=` for fields).

use crate::names::{label_key_problem, label_value_problem};

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelReq {
    /// `key` exists.
    Exists(String),
    /// `!key`: key does not exist.
    NotExists(String),
    /// `key in (values)` (also `key=value`, `key==value`).
    In(String, Vec<String>),
    /// `key notin (values)` (also `key!=value`): true when the key is absent.
    NotIn(String, Vec<String>),
    /// `key > n` (the label's value parsed as an integer).
    Gt(String, i64),
    /// `key < n`.
    Lt(String, i64),
}

/// A parsed label selector: all requirements must hold. The empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(pub Vec<LabelReq>);

impl LabelSelector {
    /// Parses the string form used in `?labelSelector=`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        let mut rest = s.trim();
        while !rest.is_empty() {
            let (req, tail) = parse_requirement(rest)?;
            reqs.push(req);
            rest = tail.trim_start();
            if let Some(t) = rest.strip_prefix(',') {
                rest = t.trim_start();
                if rest.is_empty() {
                    return Err("found ',', expected: identifier after ','".into());
                }
            } else if !rest.is_empty() {
                return Err(format!("found '{rest}', expected: ',' or 'end of string'"));
            }
        }
        Ok(Self(reqs))
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.0.iter().all(|r| match r {
            LabelReq::Exists(k) => get(k).is_some(),
            LabelReq::NotExists(k) => get(k).is_none(),
            LabelReq::In(k, vs) => get(k).is_some_and(|v| vs.iter().any(|x| x == v)),
            LabelReq::NotIn(k, vs) => get(k).is_none_or(|v| !vs.iter().any(|x| x == v)),
            LabelReq::Gt(k, n) => get(k)
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v > *n),
            LabelReq::Lt(k, n) => get(k)
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v < *n),
        })
    }

    /// Whether the selector has no requirements.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Builds a selector from a `metav1.LabelSelector` object (matchLabels, matchExpressions).
    pub fn from_object(sel: &serde_json::Value) -> Result<Self, String> {
        let mut reqs = Vec::new();
        if let Some(ml) = sel.get("matchLabels").and_then(|m| m.as_object()) {
            for (k, v) in ml {
                let v = v.as_str().ok_or("matchLabels values must be strings")?;
                reqs.push(LabelReq::In(k.clone(), vec![v.to_string()]));
            }
        }
        if let Some(exprs) = sel.get("matchExpressions").and_then(|m| m.as_array()) {
            for e in exprs {
                let key = e
                    .get("key")
                    .and_then(|k| k.as_str())
                    .ok_or("key is required")?;
                let values: Vec<String> = e
                    .get("values")
                    .and_then(|v| v.as_array())
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                let op = e.get("operator").and_then(|o| o.as_str()).unwrap_or("");
                reqs.push(match op {
                    "In" => LabelReq::In(key.into(), values),
                    "NotIn" => LabelReq::NotIn(key.into(), values),
                    "Exists" => LabelReq::Exists(key.into()),
                    "DoesNotExist" => LabelReq::NotExists(key.into()),
                    other => {
                        return Err(format!("{other:?} is not a valid label selector operator"))
                    }
                });
            }
        }
        Ok(Self(reqs))
    }
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/')
}

fn take_while(s: &str, f: impl Fn(char) -> bool) -> (&str, &str) {
    let end = s.find(|c: char| !f(c)).unwrap_or(s.len());
    s.split_at(end)
}

fn checked_key(k: &str) -> Result<String, String> {
    if k.is_empty() {
        return Err("expected a label key".into());
    }
    if let Some(p) = label_key_problem(k) {
        return Err(format!("unable to parse requirement: key {k:?}: {p}"));
    }
    Ok(k.to_string())
}

fn checked_value(v: &str) -> Result<String, String> {
    if let Some(p) = label_value_problem(v) {
        return Err(format!("unable to parse requirement: value {v:?}: {p}"));
    }
    Ok(v.to_string())
}

fn parse_requirement(s: &str) -> Result<(LabelReq, &str), String> {
    if let Some(rest) = s.strip_prefix('!') {
        let (key, tail) = take_while(rest.trim_start(), is_key_char);
        return Ok((LabelReq::NotExists(checked_key(key)?), tail));
    }
    let (key, tail) = take_while(s, is_key_char);
    let key = checked_key(key)?;
    let t = tail.trim_start();
    let value_of = |t: &str| -> Result<(String, usize), String> {
        let t2 = t.trim_start();
        // After an operator comes a value, a comma or the end; another operator is what
        // Kubernetes' lexer reports, by its token.
        if let Some(op) = ["==", "!=", "=", "!", "(", ")", ">", "<"]
            .iter()
            .find(|op| t2.starts_with(**op))
        {
            return Err(format!("found '{op}', expected: identifier"));
        }
        let (v, _) = take_while(t2, |c| is_key_char(c) && c != '/');
        Ok((checked_value(v)?, t.len() - t2.len() + v.len()))
    };
    if let Some(r) = t.strip_prefix("==").or_else(|| t.strip_prefix('=')) {
        let (v, n) = value_of(r)?;
        return Ok((LabelReq::In(key, vec![v]), &r[n..]));
    }
    if let Some(r) = t.strip_prefix("!=") {
        let (v, n) = value_of(r)?;
        return Ok((LabelReq::NotIn(key, vec![v]), &r[n..]));
    }
    for (op, gt) in [(">", true), ("<", false)] {
        if let Some(r) = t.strip_prefix(op) {
            let r2 = r.trim_start();
            let (v, tail) = take_while(r2, |c| c.is_ascii_digit() || c == '-');
            let n: i64 = v
                .parse()
                .map_err(|_| format!("unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer, got {v:?}"))?;
            return Ok((
                if gt {
                    LabelReq::Gt(key, n)
                } else {
                    LabelReq::Lt(key, n)
                },
                tail,
            ));
        }
    }
    for (word, is_in) in [("notin", false), ("in", true)] {
        if let Some(r) = t.strip_prefix(word) {
            if !r.starts_with(|c: char| c.is_whitespace() || c == '(') {
                continue;
            }
            let r = r.trim_start();
            let r = r
                .strip_prefix('(')
                .ok_or_else(|| format!("found '{r}', expected: '('"))?;
            let close = r.find(')').ok_or("found end of string, expected: ')'")?;
            let values = r[..close]
                .split(',')
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
                .map(checked_value)
                .collect::<Result<Vec<_>, _>>()?;
            if values.is_empty() && is_in {
                return Err("for 'in', 'notin' operators, values set can't be empty".into());
            }
            let req = if is_in {
                LabelReq::In(key, values)
            } else {
                LabelReq::NotIn(key, values)
            };
            return Ok((req, &r[close + 1..]));
        }
    }
    Ok((LabelReq::Exists(key), tail))
}

/// One requirement of a field selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldReq {
    /// Field path, e.g. `metadata.name`.
    pub field: String,
    /// Value compared against.
    pub value: String,
    /// True for `!=`.
    pub negate: bool,
}

/// A parsed field selector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(pub Vec<FieldReq>);

impl FieldSelector {
    /// Parses `a=b,c!=d`. Values may escape `,`, `=` and `\` with a backslash.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut out = Vec::new();
        if s.trim().is_empty() {
            return Ok(Self(out));
        }
        for term in split_unescaped(s) {
            let (field, value, negate) = if let Some(i) = term.find("!=") {
                (&term[..i], &term[i + 2..], true)
            } else if let Some(i) = term.find("==") {
                (&term[..i], &term[i + 2..], false)
            } else if let Some(i) = term.find('=') {
                (&term[..i], &term[i + 1..], false)
            } else {
                return Err(format!(
                    "invalid selector: '{s}'; can't understand '{term}'"
                ));
            };
            out.push(FieldReq {
                field: field.trim().to_string(),
                value: unescape(value.trim()),
                negate,
            });
        }
        Ok(Self(out))
    }

    /// Whether the fields (looked up by `get`) satisfy every requirement.
    pub fn matches<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.0.iter().all(|r| {
            let v = get(&r.field).unwrap_or("");
            (v == r.value) != r.negate
        })
    }

    /// The value an equality requirement demands of `field`, if there is one.
    pub fn exact(&self, field: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|r| r.field == field && !r.negate)
            .map(|r| r.value.as_str())
    }
}

fn split_unescaped(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            cur.push('\\');
            cur.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    out.push(cur);
    out
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            out.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn check(selector: &str, cases: &[(&[(&str, &str)], bool)]) {
        let sel = LabelSelector::parse(selector).unwrap_or_else(|e| panic!("{selector}: {e}"));
        for (labels, want) in cases {
            let m: HashMap<&str, &str> = labels.iter().copied().collect();
            assert_eq!(
                sel.matches(|k| m.get(k).copied()),
                *want,
                "{selector} on {labels:?}"
            );
        }
    }

    #[test]
    fn label_selectors_match_like_kubernetes() {
        let web: &[(&str, &str)] = &[("app", "web"), ("tier", "front")];
        let db: &[(&str, &str)] = &[("app", "db")];
        let none: &[(&str, &str)] = &[];
        check("", &[(web, true), (none, true)]);
        check("app=web", &[(web, true), (db, false), (none, false)]);
        check("app==web", &[(web, true), (db, false)]);
        check("app!=web", &[(web, false), (db, true), (none, true)]);
        check(
            "app in (web, db)",
            &[(web, true), (db, true), (none, false)],
        );
        check("app notin (web)", &[(web, false), (db, true), (none, true)]);
        check("tier", &[(web, true), (db, false)]);
        check("!tier", &[(web, false), (db, true)]);
        check("app=web,tier=front", &[(web, true), (db, false)]);
        check("app, !tier", &[(web, false), (db, true), (none, false)]);
        check(
            "example.com/app=web",
            &[(&[("example.com/app", "web")], true), (web, false)],
        );
        check(
            "n>3",
            &[
                (&[("n", "4")], true),
                (&[("n", "3")], false),
                (&[("n", "x")], false),
            ],
        );
        check("n<3", &[(&[("n", "2")], true), (none, false)]);
    }

    #[test]
    fn bad_label_selectors_are_rejected() {
        for bad in [
            "app=",
            "app in ()",
            "app in (a",
            "=x",
            "app=web,",
            "app==we b",
            "-app=x",
            "app=x y",
        ] {
            let r = LabelSelector::parse(bad);
            // "app=" is a valid empty value in Kubernetes; everything else must fail.
            if bad == "app=" {
                assert_eq!(
                    r.unwrap().0,
                    vec![LabelReq::In("app".into(), vec!["".into()])]
                );
            } else {
                assert!(r.is_err(), "{bad} parsed as {r:?}");
            }
        }
    }

    #[test]
    fn field_selectors() {
        let sel = FieldSelector::parse("metadata.name=a,type!=Opaque").unwrap();
        let fields: HashMap<&str, &str> = [("metadata.name", "a"), ("type", "tls")].into();
        assert!(sel.matches(|k| fields.get(k).copied()));
        let fields: HashMap<&str, &str> = [("metadata.name", "a"), ("type", "Opaque")].into();
        assert!(!sel.matches(|k| fields.get(k).copied()));
        assert_eq!(sel.exact("metadata.name"), Some("a"));
        let esc = FieldSelector::parse(r"a=x\,y").unwrap();
        assert_eq!(esc.0[0].value, "x,y");
        assert!(FieldSelector::parse("nonsense").is_err());
    }
}
