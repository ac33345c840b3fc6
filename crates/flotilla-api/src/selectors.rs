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
    /// Parses the string form used in `?labelSelector=`, as apimachinery's `labels.Parse`
    /// does: its lexer, its grammar, its error messages.
    pub fn parse(s: &str) -> Result<Self, String> {
        Parser::new(s).parse().map(Self)
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

/// A token of apimachinery's label selector lexer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Error,
    End,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

fn keyword(s: &str) -> Option<Tok> {
    Some(match s {
        ")" => Tok::ClosedPar,
        "," => Tok::Comma,
        "!" => Tok::DoesNotExist,
        "==" => Tok::DoubleEquals,
        "=" => Tok::Equals,
        ">" => Tok::GreaterThan,
        "in" => Tok::In,
        "<" => Tok::LessThan,
        "!=" => Tok::NotEquals,
        "notin" => Tok::NotIn,
        "(" => Tok::OpenPar,
        _ => return None,
    })
}

fn special(b: u8) -> bool {
    matches!(b, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

fn space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Splits a selector into tokens as apimachinery's `Lexer` does (a NUL byte ends it too).
fn lex(s: &str) -> Vec<(Tok, String)> {
    let b = s.as_bytes();
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    let b = &b[..end];
    let mut i = 0;
    let mut out = Vec::new();
    loop {
        while i < b.len() && space(b[i]) {
            i += 1;
        }
        if i >= b.len() {
            out.push((Tok::End, String::new()));
            return out;
        }
        let start = i;
        if special(b[i]) {
            // The longest run of symbols that is a token; an unknown run is an error token.
            let mut last: Option<(Tok, usize)> = None;
            while i < b.len() && special(b[i]) {
                let run = String::from_utf8_lossy(&b[start..=i]);
                if let Some(t) = keyword(&run) {
                    last = Some((t, i + 1));
                } else if last.is_some() {
                    break;
                }
                i += 1;
            }
            match last {
                Some((t, e)) => {
                    i = e;
                    out.push((t, String::from_utf8_lossy(&b[start..e]).into_owned()));
                }
                None => out.push((
                    Tok::Error,
                    format!(
                        "error expected: keyword found '{}'",
                        String::from_utf8_lossy(&b[start..i])
                    ),
                )),
            }
        } else {
            while i < b.len() && !special(b[i]) && !space(b[i]) {
                i += 1;
            }
            let word = String::from_utf8_lossy(&b[start..i]).into_owned();
            out.push((keyword(&word).unwrap_or(Tok::Identifier), word));
        }
    }
}

/// apimachinery's label selector `Parser`, in its structure, so its errors come out the same.
struct Parser {
    items: Vec<(Tok, String)>,
    at: usize,
}

/// `in` and `notin` read as identifiers where values are expected.
#[derive(Clone, Copy, PartialEq)]
enum Context {
    KeyAndOperator,
    Values,
}

impl Parser {
    fn new(s: &str) -> Self {
        Self {
            items: lex(s),
            at: 0,
        }
    }

    fn peek(&self, ctx: Context) -> (Tok, String) {
        let (t, l) = self.items[self.at.min(self.items.len() - 1)].clone();
        match (ctx, t) {
            (Context::Values, Tok::In | Tok::NotIn) => (Tok::Identifier, l),
            _ => (t, l),
        }
    }

    fn next(&mut self, ctx: Context) -> (Tok, String) {
        let r = self.peek(ctx);
        self.at += 1;
        r
    }

    fn parse(&mut self) -> Result<Vec<LabelReq>, String> {
        let mut reqs = Vec::new();
        loop {
            let (t, lit) = self.peek(Context::Values);
            match t {
                Tok::Identifier | Tok::DoesNotExist => {
                    let r = self
                        .requirement()
                        .map_err(|e| format!("unable to parse requirement: {e}"))?;
                    reqs.push(r);
                    let (t, lit) = self.next(Context::Values);
                    match t {
                        Tok::End => return Ok(reqs),
                        Tok::Comma => {
                            let (t2, l2) = self.peek(Context::Values);
                            if t2 != Tok::Identifier && t2 != Tok::DoesNotExist {
                                return Err(format!(
                                    "found '{l2}', expected: identifier after ','"
                                ));
                            }
                        }
                        _ => {
                            return Err(format!("found '{lit}', expected: ',' or 'end of string'"))
                        }
                    }
                }
                Tok::End => return Ok(reqs),
                _ => {
                    return Err(format!(
                        "found '{lit}', expected: !, identifier, or 'end of string'"
                    ))
                }
            }
        }
    }

    fn requirement(&mut self) -> Result<LabelReq, String> {
        let (t, mut lit) = self.next(Context::Values);
        let mut not = false;
        let mut t = t;
        if t == Tok::DoesNotExist {
            not = true;
            (t, lit) = self.next(Context::Values);
        }
        if t != Tok::Identifier {
            return Err(format!("found '{lit}', expected: identifier"));
        }
        if let Some(p) = label_key_problem(&lit) {
            return Err(format!("<nil>: Invalid value: {lit:?}: {p}"));
        }
        let key = lit;
        let (after, _) = self.peek(Context::Values);
        if not {
            return Ok(LabelReq::NotExists(key));
        }
        if matches!(after, Tok::End | Tok::Comma) {
            return Ok(LabelReq::Exists(key));
        }
        let (op, lit) = self.next(Context::KeyAndOperator);
        let values = match op {
            Tok::In | Tok::NotIn => self.values()?,
            Tok::Equals | Tok::DoubleEquals | Tok::NotEquals | Tok::GreaterThan | Tok::LessThan => {
                self.exact_value()?
            }
            _ => {
                return Err(format!(
                    "found '{lit}', expected: in, notin, =, ==, !=, gt, lt"
                ))
            }
        };
        // NewRequirement's checks of the values.
        let mut errors = Vec::new();
        if matches!(op, Tok::GreaterThan | Tok::LessThan) {
            for (i, v) in values.iter().enumerate() {
                if v.parse::<i64>().is_err() {
                    errors.push(format!(
                        "values[{i}]: Invalid value: {v:?}: for 'Gt', 'Lt' operators, the value must be an integer"
                    ));
                }
            }
        }
        for (i, v) in values.iter().enumerate() {
            if let Some(p) = label_value_problem(v) {
                errors.push(format!("values[{i}][{key}]: Invalid value: {v:?}: {p}"));
            }
        }
        match errors.len() {
            0 => {}
            1 => return Err(errors.remove(0)),
            _ => return Err(format!("[{}]", errors.join(", "))),
        }
        Ok(match op {
            Tok::In | Tok::Equals | Tok::DoubleEquals => LabelReq::In(key, values),
            Tok::NotIn | Tok::NotEquals => LabelReq::NotIn(key, values),
            Tok::GreaterThan => LabelReq::Gt(key, values[0].parse().unwrap_or_default()),
            _ => LabelReq::Lt(key, values[0].parse().unwrap_or_default()),
        })
    }

    /// `(a, b)`: a set, sorted and without repeats; `()` and empty items are the empty value.
    fn values(&mut self) -> Result<Vec<String>, String> {
        let (t, lit) = self.next(Context::Values);
        if t != Tok::OpenPar {
            return Err(format!("found '{lit}' expected: '('"));
        }
        let (t, lit) = self.peek(Context::Values);
        let mut set = std::collections::BTreeSet::new();
        match t {
            Tok::Identifier | Tok::Comma => {
                self.identifiers(&mut set)?;
                if self.next(Context::Values).0 != Tok::ClosedPar {
                    return Err(format!("found '{lit}', expected: ')'"));
                }
            }
            Tok::ClosedPar => {
                self.next(Context::Values);
                set.insert(String::new());
            }
            _ => return Err(format!("found '{lit}', expected: ',', ')' or identifier")),
        }
        Ok(set.into_iter().collect())
    }

    fn identifiers(&mut self, set: &mut std::collections::BTreeSet<String>) -> Result<(), String> {
        loop {
            let (t, lit) = self.next(Context::Values);
            match t {
                Tok::Identifier => {
                    set.insert(lit);
                    let (t2, l2) = self.peek(Context::Values);
                    match t2 {
                        Tok::Comma => continue,
                        Tok::ClosedPar => return Ok(()),
                        _ => return Err(format!("found '{l2}', expected: ',' or ')'")),
                    }
                }
                Tok::Comma => {
                    if set.is_empty() {
                        set.insert(String::new());
                    }
                    match self.peek(Context::Values).0 {
                        Tok::ClosedPar => {
                            set.insert(String::new());
                            return Ok(());
                        }
                        Tok::Comma => {
                            self.next(Context::Values);
                            set.insert(String::new());
                        }
                        _ => {}
                    }
                }
                _ => return Err(format!("found '{lit}', expected: ',', or identifier")),
            }
        }
    }

    fn exact_value(&mut self) -> Result<Vec<String>, String> {
        let (t, _) = self.peek(Context::Values);
        if matches!(t, Tok::End | Tok::Comma) {
            return Ok(vec![String::new()]);
        }
        let (t, lit) = self.next(Context::Values);
        if t == Tok::Identifier {
            Ok(vec![lit])
        } else {
            Err(format!("found '{lit}', expected: identifier"))
        }
    }
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
    fn bad_label_selectors_are_refused_in_kube_apiservers_words() {
        // kube-apiserver v1.33's answers (the differential suite's error-statuses case asks it).
        for (bad, message) in [
            ("app in (a", "unable to parse requirement: found '', expected: ',' or ')'"),
            ("=x", "found '=', expected: !, identifier, or 'end of string'"),
            ("app=web,", "found '', expected: identifier after ','"),
            ("app==we b", "found 'b', expected: ',' or 'end of string'"),
            ("app x", "unable to parse requirement: found 'x', expected: in, notin, =, ==, !=, gt, lt"),
            ("n>x", "unable to parse requirement: values[0]: Invalid value: \"x\": for 'Gt', 'Lt' operators, the value must be an integer"),
            ("!app=x", "found '=', expected: ',' or 'end of string'"),
            ("app=-bad-", "unable to parse requirement: values[0][app]: Invalid value: \"-bad-\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"),
            ("-app=x", "unable to parse requirement: <nil>: Invalid value: \"-app\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"),
        ] {
            assert_eq!(LabelSelector::parse(bad).unwrap_err(), message, "{bad}");
        }
        // What kube-apiserver accepts although it looks odd: empty values and empty sets.
        for (ok, reqs) in [
            ("app=", vec![LabelReq::In("app".into(), vec!["".into()])]),
            (
                "app in ()",
                vec![LabelReq::In("app".into(), vec!["".into()])],
            ),
            (
                "app in (b,,a)",
                vec![LabelReq::In(
                    "app".into(),
                    vec!["".into(), "a".into(), "b".into()],
                )],
            ),
            ("!app", vec![LabelReq::NotExists("app".into())]),
        ] {
            assert_eq!(LabelSelector::parse(ok).unwrap().0, reqs, "{ok}");
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
        assert_eq!(
            FieldSelector::parse("nonsense").unwrap_err(),
            "invalid selector: 'nonsense'; can't understand 'nonsense'"
        );
    }
}
