//! kubectl's `-o jsonpath=TEMPLATE`: literal text with `{expression}` actions, quoted
//! literals (`{"\n"}`) and `{range EXPR}...{end}` loops. Each expression is translated to
//! RFC 9535 JSONPath and evaluated by `serde_json_path`; the template layer is kubectl's.

use serde_json::Value;
use serde_json_path::JsonPath;

/// A parsed template.
#[derive(Debug)]
pub struct Template(Vec<Node>);

/// Nodes being collected, with the range they belong to (`None` at the top level).
type Frame = (Vec<Node>, Option<(JsonPath, bool)>);

#[derive(Debug)]
enum Node {
    Text(String),
    /// An expression; `relative` ones (`.x`, `@.x`) start at the current range item.
    Expr {
        path: JsonPath,
        relative: bool,
    },
    Range {
        path: JsonPath,
        relative: bool,
        body: Vec<Node>,
    },
}

impl Template {
    /// Parses kubectl's template syntax.
    pub fn parse(template: &str) -> Result<Template, String> {
        let mut stack: Vec<Frame> = vec![(Vec::new(), None)];
        let mut rest = template;
        while !rest.is_empty() {
            let Some(open) = rest.find('{') else {
                push(&mut stack, Node::Text(rest.to_string()));
                break;
            };
            if open > 0 {
                push(&mut stack, Node::Text(rest[..open].to_string()));
            }
            let close = action_end(&rest[open..])
                .ok_or_else(|| format!("unclosed action in template {template:?}"))?;
            let action = rest[open + 1..open + close].trim();
            rest = &rest[open + close + 1..];
            if let Some(lit) = quoted(action) {
                push(&mut stack, Node::Text(lit));
            } else if action == "end" {
                if stack.len() < 2 {
                    return Err("not in range, nothing to end".into());
                }
                let (body, range) = stack.pop().unwrap_or_default();
                if let Some((path, relative)) = range {
                    push(
                        &mut stack,
                        Node::Range {
                            path,
                            relative,
                            body,
                        },
                    );
                }
            } else if let Some(expr) = action.strip_prefix("range ") {
                let (path, relative) = compile(expr.trim())?;
                stack.push((Vec::new(), Some((path, relative))));
            } else if !action.is_empty() {
                let (path, relative) = compile(action)?;
                push(&mut stack, Node::Expr { path, relative });
            }
        }
        if stack.len() > 1 {
            return Err(format!("unclosed range in template {template:?}"));
        }
        Ok(Template(stack.pop().map(|(n, _)| n).unwrap_or_default()))
    }

    /// Renders the template against `root`.
    pub fn render(&self, root: &Value) -> Result<String, String> {
        let mut out = String::new();
        render_nodes(&self.0, root, root, &mut out);
        Ok(out)
    }
}

fn push(stack: &mut [Frame], node: Node) {
    if let Some((nodes, _)) = stack.last_mut() {
        nodes.push(node);
    }
}

fn render_nodes(nodes: &[Node], root: &Value, current: &Value, out: &mut String) {
    for node in nodes {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Expr { path, relative } => {
                let base = if *relative { current } else { root };
                let parts: Vec<String> = path.query(base).all().into_iter().map(text).collect();
                out.push_str(&parts.join(" "));
            }
            Node::Range {
                path,
                relative,
                body,
            } => {
                let base = if *relative { current } else { root };
                for item in path.query(base).all() {
                    render_nodes(body, root, item, out);
                }
            }
        }
    }
}

/// How kubectl prints one result: strings bare, everything else as JSON.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Length of the action starting at `s[0] == '{'`, up to its `}` (quotes may hold braces).
fn action_end(s: &str) -> Option<usize> {
    let mut quote = None;
    let mut escaped = false;
    for (i, c) in s.char_indices().skip(1) {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '}' => return Some(i),
            None => {}
        }
    }
    None
}

/// `"..."` or `'...'` with `\n`, `\t`, `\\` and quote escapes.
fn quoted(action: &str) -> Option<String> {
    let q = action.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let inner = action.strip_prefix(q)?.strip_suffix(q)?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    Some(out)
}

/// Translates a kubectl expression to RFC 9535 and compiles it. kubectl writes `.items`,
/// `$.items` or `@.x`, and allows `-`, `/` and escaped dots (`\.`) in field names, which RFC
/// 9535 spells `['job-name']`.
fn compile(expr: &str) -> Result<(JsonPath, bool), String> {
    let (relative, body) = if let Some(b) = expr.strip_prefix('$') {
        (false, b)
    } else if let Some(b) = expr.strip_prefix('@') {
        (true, b)
    } else {
        (true, expr)
    };
    let mut rfc = String::from("$");
    let chars: Vec<char> = body.chars().collect();
    let mut i = 0;
    segments(&chars, &mut i, &mut rfc, false).map_err(|e| {
        format!("error parsing jsonpath {{{expr}}}: {e} (use e.g. {{.items[*].metadata.name}})")
    })?;
    let path =
        JsonPath::parse(&rfc).map_err(|e| format!("error parsing jsonpath {{{expr}}}: {e}"))?;
    Ok((path, relative))
}

/// Translates `.name`, `..name` and `[...]` segments from `chars[*i]` on. In a filter
/// (`in_filter`), a path ends at the first character that cannot continue it (`==`, `)`...).
fn segments(
    chars: &[char],
    i: &mut usize,
    out: &mut String,
    in_filter: bool,
) -> Result<(), String> {
    while let Some(&c) = chars.get(*i) {
        match c {
            '.' => {
                let mut dots = 0;
                while chars.get(*i) == Some(&'.') {
                    dots += 1;
                    *i += 1;
                }
                let mut name = String::new();
                while let Some(&c) = chars.get(*i) {
                    if c == '\\' && chars.get(*i + 1) == Some(&'.') {
                        name.push('.');
                        *i += 2;
                    } else if c == '.' || c == '[' || (in_filter && !is_name_char(c)) {
                        break;
                    } else {
                        name.push(c);
                        *i += 1;
                    }
                }
                let deep = if dots > 1 { ".." } else { "" };
                if name.is_empty() {
                    // `..[0]` or a bare trailing dot.
                    out.push_str(deep);
                } else if name == "*" || is_shorthand(&name) {
                    out.push_str(if dots > 1 { ".." } else { "." });
                    out.push_str(&name);
                } else {
                    out.push_str(&format!("{deep}['{}']", name.replace('\'', "\\'")));
                }
            }
            '[' => bracket(chars, i, out)?,
            _ if in_filter => return Ok(()),
            c => return Err(format!("unexpected {c:?}")),
        }
    }
    Ok(())
}

/// Copies a `[...]` selector, translating the `@`/`$` paths of filters inside it.
fn bracket(chars: &[char], i: &mut usize, out: &mut String) -> Result<(), String> {
    out.push('[');
    *i += 1;
    let mut quote: Option<char> = None;
    while let Some(&c) = chars.get(*i) {
        if let Some(q) = quote {
            out.push(c);
            *i += 1;
            if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' => {
                quote = Some(c);
                out.push(c);
                *i += 1;
            }
            ']' => {
                out.push(c);
                *i += 1;
                return Ok(());
            }
            '[' => bracket(chars, i, out)?,
            '@' | '$' => {
                out.push(c);
                *i += 1;
                segments(chars, i, out, true)?;
            }
            _ => {
                out.push(c);
                *i += 1;
            }
        }
    }
    Err("unclosed '['".into())
}

fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '/' | '*' | '\\')
}

fn is_shorthand(name: &str) -> bool {
    let mut cs = name.chars();
    cs.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && cs.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn list() -> Value {
        json!({"kind": "List", "items": [
            {"metadata": {"name": "pi-abcde", "labels": {"job-name": "pi"}}, "status": {"phase": "Succeeded"}},
            {"metadata": {"name": "pi-fghjk", "labels": {"job-name": "pi"}}, "status": {"phase": "Failed"}},
        ]})
    }

    fn render(t: &str) -> String {
        Template::parse(t).unwrap().render(&list()).unwrap()
    }

    #[test]
    fn renders_the_docs_forms() {
        assert_eq!(render("{.items[*].metadata.name}"), "pi-abcde pi-fghjk");
        assert_eq!(render("{.items..metadata.name}"), "pi-abcde pi-fghjk");
        assert_eq!(render("{$.items[0].metadata.name}"), "pi-abcde");
        assert_eq!(render("{.items[1].metadata.labels.job-name}"), "pi");
        assert_eq!(
            render("{range .items[*]}{.metadata.name}{\"\\t\"}{.status.phase}{\"\\n\"}{end}"),
            "pi-abcde\tSucceeded\npi-fghjk\tFailed\n"
        );
        assert_eq!(
            render("{.items[?(@.status.phase==\"Failed\")].metadata.name}"),
            "pi-fghjk"
        );
        assert_eq!(
            render("{.items[?(@.metadata.labels.job-name=='pi')].status.phase}"),
            "Succeeded Failed"
        );
        assert_eq!(
            render("names: {.items[*].metadata.name}!"),
            "names: pi-abcde pi-fghjk!"
        );
        assert_eq!(
            render("{.items[0].metadata.labels}"),
            "{\"job-name\":\"pi\"}"
        );
        assert_eq!(render("{.missing}"), "");
    }

    #[test]
    fn rejects_broken_templates() {
        for bad in [
            "{.items",
            "{end}",
            "{range .items[*]}{.x}",
            "{.items[}",
            "{items}",
        ] {
            assert!(Template::parse(bad).is_err(), "{bad} should be rejected");
        }
    }
}
