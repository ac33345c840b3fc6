//! YAML request bodies, decoded with libyaml (kube-apiserver's go-yaml is a port of it), their
//! errors worded as go-yaml words them: `yaml: line N: <libyaml's problem>`.

use serde_json::Value;

/// The JSON value of a YAML document, or go-yaml's message for why it is not one
/// (`yaml: line N: <problem>`); callers add the prefix of the decoder kube-apiserver used.
pub(crate) fn to_json(body: &[u8]) -> Result<Value, String> {
    serde_yaml::from_slice(body).map_err(|e| go_yaml_message(&e))
}

/// go-yaml's wording of a libyaml error: the problem, after the line of the problem mark
/// (0-based, as go-yaml counts; one more for scanner errors, which stop before the line
/// advances), else of the context mark, else no line.
///
/// serde_yaml shows libyaml's error kind and marks only in its Debug form
/// (`Error { kind: SCANNER, problem: "..", problem_mark: Mark { line: 2, column: 3 }, context:
/// "..", context_mark: Mark { line: 1, column: 4 } }`, lines 1-based), so that is read.
fn go_yaml_message(e: &serde_yaml::Error) -> String {
    let debug = format!("{e:?}");
    let field = |name: &str| {
        let start = debug.find(&format!("{name}: "))? + name.len() + 2;
        Some(&debug[start..])
    };
    let mark_line = |name: &str| -> usize {
        field(name)
            .and_then(|m| m.strip_prefix("Mark { line: "))
            .and_then(|m| m.split(',').next())
            .and_then(|l| l.parse::<usize>().ok())
            .map_or(0, |l| l.saturating_sub(1))
    };
    let Some(problem) = field("problem")
        .and_then(|p| p.strip_prefix('"'))
        .and_then(|p| p.split_once('"'))
        .map(|(p, _)| p.to_string())
    else {
        // Not a libyaml error (serde_yaml's own, such as a recursion limit).
        return format!("yaml: {e}");
    };
    let scanner = field("kind").is_some_and(|k| k.starts_with("SCANNER"));
    let (problem_line, context_line) = (mark_line("problem_mark"), mark_line("context_mark"));
    let line = if problem_line != 0 {
        problem_line + usize::from(scanner)
    } else {
        context_line
    };
    if line == 0 {
        format!("yaml: {problem}")
    } else {
        format!("yaml: line {line}: {problem}")
    }
}

#[cfg(test)]
mod tests {
    use super::to_json;

    #[test]
    fn errors_read_as_go_yaml_writes_them() {
        // Each expectation is kube-apiserver's (sigs.k8s.io/yaml over go-yaml v2) answer.
        for (body, want) in [
            (
                "a: [unclosed",
                "yaml: line 1: did not find expected ',' or ']'",
            ),
            (
                "a: b\n c: d",
                "yaml: line 2: mapping values are not allowed in this context",
            ),
            (
                "a:\n  - b\n  c: d",
                "yaml: line 2: did not find expected '-' indicator",
            ),
            ("a: \"open", "yaml: found unexpected end of stream"),
            ("\t- a", "yaml: found character that cannot start any token"),
        ] {
            assert_eq!(to_json(body.as_bytes()).unwrap_err(), want, "{body:?}");
        }
        assert_eq!(to_json(b"a: 1").unwrap(), serde_json::json!({"a": 1}));
    }
}
