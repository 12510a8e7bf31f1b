//! kubectl's `-o jsonpath=TEMPLATE`: literal text with `{expression}` actions, quoted
//! literals (`{"\n"}`) and `{range EXPR}...{end}` loops. Each expression is translated to
//! RFC 9535 JSONPath and evaluated by `serde_json_path`; the template layer is kubectl's.

use serde_json::Value;
use serde_json_path::JsonPath;

/// A parsed template.
#[derive(Debug)]
pub struct Template(Vec<Node>);

/// Nodes being collected, with the range they belong to (`None` at the top level).
type Frame = (Vec<Node>, Option<(JsonPath, bool, String)>);

#[derive(Debug)]
enum Node {
    Text(String),
    /// An expression; `relative` ones (`.x`, `@.x`) start at the current range item.
    /// `query` is its RFC 9535 text.
    Expr {
        path: JsonPath,
        relative: bool,
        query: String,
    },
    Range {
        path: JsonPath,
        relative: bool,
        query: String,
        body: Vec<Node>,
    },
}

/// A template that reads a `List`'s items one at a time: its text, and one expression over
/// all items (`{.items[*].metadata.name}`, `{.items..metadata.name}`) or one range over them
/// (`{range .items[*]}...{end}`) whose body looks at the item only. The items then need not
/// be gathered into one document first (100,000 pods took 1.2 GB that way).
pub struct ItemWise<'a> {
    before: String,
    each: Each<'a>,
    after: String,
}

enum Each<'a> {
    /// The expression's query on one item; the values of all items are joined by spaces.
    Values(JsonPath),
    /// The range's body, rendered for each item.
    Body(&'a [Node]),
}

/// Renders an [`ItemWise`] template item by item.
pub struct ItemWriter<'a> {
    template: &'a ItemWise<'a>,
    /// Whether a value was written (the next one is preceded by a space).
    wrote: bool,
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
                if let Some((path, relative, query)) = range {
                    push(
                        &mut stack,
                        Node::Range {
                            path,
                            relative,
                            query,
                            body,
                        },
                    );
                }
            } else if let Some(expr) = action.strip_prefix("range ") {
                stack.push((Vec::new(), Some(compile(expr.trim())?)));
            } else if !action.is_empty() {
                let (path, relative, query) = compile(action)?;
                push(
                    &mut stack,
                    Node::Expr {
                        path,
                        relative,
                        query,
                    },
                );
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

    /// The template as an [`ItemWise`] one, if it is of that shape.
    pub fn item_wise(&self) -> Option<ItemWise<'_>> {
        let at = self.0.iter().position(|n| !matches!(n, Node::Text(_)))?;
        let text = |nodes: &[Node]| -> Option<String> {
            nodes
                .iter()
                .map(|n| match n {
                    Node::Text(t) => Some(t.as_str()),
                    _ => None,
                })
                .collect()
        };
        let (before, after) = (text(&self.0[..at])?, text(&self.0[at + 1..])?);
        let each = match &self.0[at] {
            Node::Expr { query, .. } => {
                // `$.items[*]` or `$.items..name`: the items' values come item by item, in
                // order (`$.items..*` or `..[0]` would match the items array's own members).
                let rest = match query.strip_prefix("$.items") {
                    Some(r) if r.starts_with("[*]") => &r[3..],
                    Some(r) if r.starts_with("..") && !r[2..].starts_with(['*', '[']) => r,
                    Some(r) if one_quoted_name(r.strip_prefix("..")?) => r,
                    _ => return None,
                };
                // A filter could look at the root (`$`), which is no longer the List.
                if rest.contains('$') {
                    return None;
                }
                Each::Values(JsonPath::parse(&format!("${rest}")).ok()?)
            }
            Node::Range { query, body, .. } if query == "$.items[*]" && item_only(body) => {
                Each::Body(body)
            }
            _ => return None,
        };
        Some(ItemWise {
            before,
            each,
            after,
        })
    }
}

/// Whether `segment` starts with a bracket holding one quoted name (`['job-name']`), which
/// no member of an array matches (`['a',0]`, `[0]` or `[?...]` would pick items).
fn one_quoted_name(segment: &str) -> bool {
    let Some(name) = segment.strip_prefix("['") else {
        return false;
    };
    let mut escaped = false;
    for (i, c) in name.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '\'' => return name[i + 1..].starts_with(']'),
            _ => {}
        }
    }
    false
}

/// Whether `nodes` look at the current item only (no `$` path anywhere).
fn item_only(nodes: &[Node]) -> bool {
    nodes.iter().all(|n| match n {
        Node::Text(_) => true,
        Node::Expr {
            relative, query, ..
        } => *relative && !query[1..].contains('$'),
        Node::Range {
            relative,
            query,
            body,
            ..
        } => *relative && !query[1..].contains('$') && item_only(body),
    })
}

impl ItemWise<'_> {
    /// The text before the items.
    pub fn before(&self) -> &str {
        &self.before
    }

    /// The text after the items.
    pub fn after(&self) -> &str {
        &self.after
    }

    /// A writer of the items' part.
    pub fn writer(&self) -> ItemWriter<'_> {
        ItemWriter {
            template: self,
            wrote: false,
        }
    }
}

impl ItemWriter<'_> {
    /// Appends what `item` gives to `out`.
    pub fn item(&mut self, item: &Value, out: &mut String) {
        match &self.template.each {
            Each::Values(path) => {
                for v in path.query(item).all() {
                    if std::mem::replace(&mut self.wrote, true) {
                        out.push(' ');
                    }
                    out.push_str(&text(v));
                }
            }
            Each::Body(body) => render_nodes(body, item, item, out),
        }
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
            Node::Expr { path, relative, .. } => {
                let base = if *relative { current } else { root };
                let parts: Vec<String> = path.query(base).all().into_iter().map(text).collect();
                out.push_str(&parts.join(" "));
            }
            Node::Range {
                path,
                relative,
                body,
                ..
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
fn compile(expr: &str) -> Result<(JsonPath, bool, String), String> {
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
    Ok((path, relative, rfc))
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

    /// Rendered item by item, if the template allows it.
    fn item_by_item(t: &str) -> Option<String> {
        let template = Template::parse(t).unwrap();
        let wise = template.item_wise()?;
        let mut out = wise.before().to_string();
        let mut items = wise.writer();
        for item in list()["items"].as_array().unwrap() {
            items.item(item, &mut out);
        }
        out.push_str(wise.after());
        Some(out)
    }

    #[test]
    fn templates_over_the_items_render_item_by_item_as_over_the_list() {
        for t in [
            "{.items[*].metadata.name}",
            "{.items..metadata.name}",
            "{$.items[*].metadata.labels.job-name}",
            "{.items..['metadata'].name}",
            "{.items..metadata.labels['job-name']}",
            "names: {.items[*].metadata.name}!",
            "{.items[*]}",
            "{range .items[*]}{.metadata.name}{\"\\t\"}{.status.phase}{\"\\n\"}{end}",
            "{range .items[*]}{range .metadata.labels}{@}{end};{end}",
        ] {
            assert_eq!(item_by_item(t), Some(render(t)), "{t}");
        }
        // Those that look at the list itself, or could match the items array's own members.
        for t in [
            "{.items[0].metadata.name}",
            "{.items[?(@.status.phase==\"Failed\")].metadata.name}",
            "{.kind} {.items[*].metadata.name}",
            "{range .items[*]}{$.kind}{end}",
            "{.items..*}",
            "{.items..[0]}",
            "{.items..['metadata',0]}",
            "{.items..['metadata',*]}",
            "{.items[*].metadata.name}{.items[*].status.phase}",
        ] {
            assert!(item_by_item(t).is_none(), "{t}");
        }
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
