//! Function extraction from one parsed file.
//!
//! One iterative walk over the syntax tree with a stack of enclosing scopes
//! (classes, impls, traits, modules, namespaces, functions). Each language
//! decides what a node is through [`classify`]; the walk itself is shared.

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use tree_sitter::{Node, Parser, Tree};

use crate::FunctionKind;
use crate::lang::Grammar;

/// A function found in one file, before the path and language are attached.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RawFunction {
    /// Qualified name: enclosing classes/impls/modules/functions joined with `.`.
    pub name: String,
    /// Function or method.
    pub kind: FunctionKind,
    /// 1-based line of the first decorator/attribute/template line, else of the definition.
    pub start_line: u32,
    /// 1-based inclusive last line.
    pub end_line: u32,
    /// True when the function is test code (e.g. `#[test]` or inside `#[cfg(test)] mod`).
    pub test: bool,
}

/// What one file yielded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileFunctions {
    /// The functions, in source order.
    pub functions: Vec<RawFunction>,
    /// True when tree-sitter had to recover from syntax errors.
    pub syntax_errors: bool,
    /// True when parsing was abandoned after the time limit.
    pub timed_out: bool,
}

/// Longest time one file may take to parse; a pathological file must never hang a scan.
pub(crate) const PARSE_TIME_LIMIT: Duration = Duration::from_secs(20);

/// Parse `source` with `parser` (already set to the grammar) and list its functions.
pub(crate) fn extract(parser: &mut Parser, grammar: Grammar, source: &[u8]) -> FileFunctions {
    let started = Instant::now();
    let mut calls = 0u32;
    let mut progress = |_: &tree_sitter::ParseState| {
        // Reading the clock on every callback would cost more than the check is worth.
        calls = calls.wrapping_add(1);
        if calls.is_multiple_of(4096) && started.elapsed() > PARSE_TIME_LIMIT {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    };
    let options = tree_sitter::ParseOptions::new().progress_callback(&mut progress);
    let tree = parser.parse_with_options(
        &mut |offset, _| source.get(offset..).unwrap_or_default(),
        None,
        Some(options),
    );
    match tree {
        Some(tree) => walk(&tree, grammar, source),
        None => {
            parser.reset();
            FileFunctions {
                functions: Vec::new(),
                syntax_errors: true,
                timed_out: true,
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScopeKind {
    /// Class-like: functions directly inside are methods.
    Class,
    /// A function: functions inside are nested functions.
    Function,
    /// A module or namespace: functions inside are plain functions.
    Namespace,
}

struct Scope {
    depth: usize,
    name: String,
    kind: ScopeKind,
    test: bool,
    /// This scope or one around it is a test (set when entered, so nesting costs nothing).
    within_test: bool,
}

/// Enclosing scope names kept in a qualified name: deeper ones are dropped (with a leading
/// `…`), so thousands of nested functions cost linear, not quadratic, output and memory.
const MAX_NAME_SCOPES: usize = 8;

/// What the walk does with a node.
enum Visit<'t> {
    /// Do not look inside.
    Skip,
    /// Look inside with the same scopes.
    Descend,
    /// Enter a named scope (a test scope only by its attributes: `#[cfg(test)] mod`).
    Scope { name: String, kind: ScopeKind },
    /// A function: record it and enter it as a scope.
    Function {
        name: String,
        method: bool,
        end: Node<'t>,
        test: bool,
    },
    /// A node whose start line belongs to the function it wraps (Python decorators,
    /// C++ `template<...>`): remember it for that child.
    Wrapper { child_id: usize },
    /// A preceding-sibling attribute or decorator (Rust `#[...]`, TS `@dec`).
    Attribute { test: bool },
}

struct Ctx<'a> {
    grammar: Grammar,
    src: &'a [u8],
}

impl Ctx<'_> {
    fn text(&self, node: Node<'_>) -> &str {
        node.utf8_text(self.src).unwrap_or("")
    }
}

fn walk(tree: &Tree, grammar: Grammar, src: &[u8]) -> FileFunctions {
    let ctx = Ctx { grammar, src };
    let root = tree.root_node();
    let mut out = Vec::new();
    let mut scopes: Vec<Scope> = Vec::new();
    // (node id of the wrapped child, start row of the wrapper)
    let mut wrapper: Option<(usize, usize)> = None;
    // (depth, earliest row, any test attribute) of the run of attributes just visited
    let mut attrs: Option<(usize, usize, bool)> = None;
    let mut cursor = tree.walk();
    let mut depth = 0usize;
    loop {
        let node = cursor.node();
        let visit = classify(&ctx, node);
        let kind = node.kind();
        let is_comment = kind.contains("comment");
        let mut entered: Option<Scope> = None;
        let descend;
        match visit {
            Visit::Skip => descend = false,
            Visit::Descend => descend = true,
            Visit::Attribute { test } => {
                attrs = match attrs {
                    Some((d, row, t)) if d == depth => Some((d, row, t || test)),
                    _ => Some((depth, node.start_position().row, test)),
                };
                descend = false;
            }
            Visit::Wrapper { child_id } => {
                wrapper = Some((child_id, node.start_position().row));
                descend = true;
            }
            Visit::Scope { name, kind } => {
                let (_, attr_test) = take_start(&mut wrapper, &mut attrs, node, depth);
                entered = Some(Scope {
                    depth,
                    name,
                    kind,
                    test: attr_test,
                    within_test: false,
                });
                descend = true;
            }
            Visit::Function {
                name,
                method,
                end,
                test,
            } => {
                let (start_row, attr_test) = take_start(&mut wrapper, &mut attrs, node, depth);
                let enclosing_test = scopes.last().is_some_and(|s| s.within_test);
                let in_class = scopes.last().is_some_and(|s| s.kind == ScopeKind::Class);
                // Only the innermost scopes are looked at, named or not.
                let window = scopes.len().min(8 * MAX_NAME_SCOPES);
                let named: Vec<&str> = scopes[scopes.len() - window..]
                    .iter()
                    .rev()
                    .filter(|s| !s.name.is_empty())
                    .map(|s| s.name.as_str())
                    .take(MAX_NAME_SCOPES + 1)
                    .collect();
                let mut qualified = String::new();
                if named.len() > MAX_NAME_SCOPES || window < scopes.len() {
                    qualified.push('…');
                }
                for scope in named.iter().take(MAX_NAME_SCOPES).rev() {
                    qualified.push_str(scope);
                    qualified.push('.');
                }
                qualified.push_str(&name);
                let start_line = start_row as u32 + 1;
                let end_line = (end_row(&ctx, end) as u32 + 1).max(start_line);
                out.push(RawFunction {
                    name: qualified,
                    kind: if method || in_class {
                        FunctionKind::Method
                    } else {
                        FunctionKind::Function
                    },
                    start_line,
                    end_line,
                    test: test || attr_test || enclosing_test,
                });
                entered = Some(Scope {
                    depth,
                    name,
                    kind: ScopeKind::Function,
                    test: test || attr_test,
                    within_test: false,
                });
                descend = true;
            }
        }
        // A run of attributes applies only to the item right after it.
        if !is_comment
            && !is_attribute(&ctx, node)
            && let Some((d, _, _)) = attrs
            && d == depth
        {
            attrs = None;
        }
        if descend && cursor.goto_first_child() {
            if let Some(mut scope) = entered {
                scope.within_test = scope.test || scopes.last().is_some_and(|s| s.within_test);
                scopes.push(scope);
            }
            depth += 1;
            continue;
        }
        loop {
            if cursor.goto_next_sibling() {
                break;
            }
            if !cursor.goto_parent() {
                return FileFunctions {
                    functions: out,
                    syntax_errors: root.has_error(),
                    timed_out: false,
                };
            }
            depth -= 1;
            if scopes.last().is_some_and(|s| s.depth == depth) {
                scopes.pop();
            }
            if attrs.is_some_and(|(d, _, _)| d > depth) {
                attrs = None;
            }
        }
    }
}

fn is_attribute(ctx: &Ctx<'_>, node: Node<'_>) -> bool {
    matches!(
        (ctx.grammar, node.kind()),
        (Grammar::Rust, "attribute_item")
            | (
                Grammar::TypeScript | Grammar::Tsx | Grammar::JavaScript,
                "decorator"
            )
    )
}

/// The start row of a function or scope: its wrapper's or its attributes' when it has them.
fn take_start(
    wrapper: &mut Option<(usize, usize)>,
    attrs: &mut Option<(usize, usize, bool)>,
    node: Node<'_>,
    depth: usize,
) -> (usize, bool) {
    let mut row = node.start_position().row;
    let mut test = false;
    if let Some((id, wrow)) = *wrapper
        && id == node.id()
    {
        row = row.min(wrow);
        *wrapper = None;
    }
    if let Some((d, arow, t)) = *attrs
        && d == depth
    {
        row = row.min(arow);
        test = t;
        *attrs = None;
    }
    (row, test)
}

/// The last line of a definition, ignoring trailing comments (Python's `ast` does too).
fn end_row(ctx: &Ctx<'_>, node: Node<'_>) -> usize {
    let mut n = node;
    if ctx.grammar == Grammar::Python {
        // Descend along the last non-comment child to find the last real token.
        loop {
            let count = n.child_count();
            let mut next = None;
            for i in (0..count).rev() {
                if let Some(child) = n.child(i)
                    && child.kind() != "comment"
                {
                    next = Some(child);
                    break;
                }
            }
            match next {
                Some(child) => n = child,
                None => break,
            }
        }
    }
    let end = n.end_position();
    if end.column == 0 && end.row > n.start_position().row {
        end.row - 1
    } else {
        end.row
    }
}

fn name_of(ctx: &Ctx<'_>, node: Node<'_>, field: &str) -> Option<String> {
    node.child_by_field_name(field).map(|n| squash(ctx.text(n)))
}

/// Collapse internal whitespace (C++ `operator ()` may span lines).
fn squash(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, part) in text.split_whitespace().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(part);
    }
    out
}

fn classify<'t>(ctx: &Ctx<'_>, node: Node<'t>) -> Visit<'t> {
    match ctx.grammar {
        Grammar::Python => python(ctx, node),
        Grammar::Rust => rust(ctx, node),
        Grammar::JavaScript | Grammar::TypeScript | Grammar::Tsx => javascript(ctx, node),
        Grammar::Go => go(ctx, node),
        Grammar::Java => java(ctx, node),
        Grammar::C | Grammar::Cpp => c_family(ctx, node),
    }
}

fn function<'t>(name: String, method: bool, end: Node<'t>) -> Visit<'t> {
    if name.is_empty() {
        // Error recovery can leave a definition without a name: look inside, list nothing.
        Visit::Descend
    } else {
        Visit::Function {
            name,
            method,
            end,
            test: false,
        }
    }
}

fn python<'t>(ctx: &Ctx<'_>, node: Node<'t>) -> Visit<'t> {
    match node.kind() {
        "function_definition" => {
            function(name_of(ctx, node, "name").unwrap_or_default(), false, node)
        }
        "class_definition" => Visit::Scope {
            name: name_of(ctx, node, "name").unwrap_or_default(),
            kind: ScopeKind::Class,
        },
        "decorated_definition" => match node.child_by_field_name("definition") {
            Some(def) => Visit::Wrapper { child_id: def.id() },
            None => Visit::Descend,
        },
        // `def` only ever appears at statement level, so expressions are never entered:
        // this keeps the walk to a small part of the tree.
        "module"
        | "block"
        | "if_statement"
        | "elif_clause"
        | "else_clause"
        | "for_statement"
        | "while_statement"
        | "try_statement"
        | "except_clause"
        | "except_group_clause"
        | "finally_clause"
        | "with_statement"
        | "match_statement"
        | "case_clause"
        | "ERROR" => Visit::Descend,
        _ => Visit::Skip,
    }
}

fn rust<'t>(ctx: &Ctx<'_>, node: Node<'t>) -> Visit<'t> {
    match node.kind() {
        "function_item" => function(name_of(ctx, node, "name").unwrap_or_default(), false, node),
        "impl_item" => Visit::Scope {
            name: node
                .child_by_field_name("type")
                .map(|t| type_name(ctx.text(t)))
                .unwrap_or_default(),
            kind: ScopeKind::Class,
        },
        "trait_item" => Visit::Scope {
            name: name_of(ctx, node, "name").unwrap_or_default(),
            kind: ScopeKind::Class,
        },
        "mod_item" => {
            if node.child_by_field_name("body").is_some() {
                Visit::Scope {
                    name: name_of(ctx, node, "name").unwrap_or_default(),
                    kind: ScopeKind::Namespace,
                }
            } else {
                Visit::Skip
            }
        }
        "attribute_item" => Visit::Attribute {
            test: rust_test_attribute(ctx.text(node)),
        },
        "line_comment"
        | "block_comment"
        | "string_literal"
        | "raw_string_literal"
        | "macro_invocation"
        | "macro_definition"
        | "function_signature_item"
        | "use_declaration"
        | "inner_attribute_item" => Visit::Skip,
        _ => Visit::Descend,
    }
}

/// `#[test]`, `#[tokio::test]`, `#[rstest]`, `#[cfg(test)]`, `#[cfg(all(test, ...))]`.
fn rust_test_attribute(text: &str) -> bool {
    let inner = text
        .trim()
        .trim_start_matches("#[")
        .trim_end_matches(']')
        .trim();
    let path = inner.split(['(', '=', ' ']).next().unwrap_or("").trim();
    match path {
        "test" | "rstest" | "test_case" | "quickcheck" | "proptest" => true,
        "cfg" => {
            !inner.contains("not(test")
                && inner
                    .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .any(|word| word == "test")
        }
        _ => path.ends_with("::test") || path.ends_with("::rstest"),
    }
}

/// `Foo<T>` -> `Foo`, `crate::a::Foo` -> `Foo`, `&'a mut Foo` -> `Foo`, `*Server` -> `Server`.
fn type_name(text: &str) -> String {
    let no_generics = strip_generics(text, '<', '>');
    let no_generics = strip_generics(&no_generics, '[', ']');
    let trimmed = no_generics
        .trim()
        .trim_start_matches(['&', '*'])
        .trim_start_matches("'static")
        .trim();
    let trimmed = trimmed.strip_prefix("mut ").unwrap_or(trimmed).trim();
    let last = trimmed.rsplit("::").next().unwrap_or(trimmed);
    squash(
        last.trim_start_matches(['&', '*', '('])
            .trim_end_matches(')'),
    )
}

fn strip_generics(text: &str, open: char, close: char) -> String {
    let mut out = String::with_capacity(text.len());
    let mut depth = 0usize;
    for c in text.chars() {
        if c == open {
            depth += 1;
        } else if c == close && depth > 0 {
            depth -= 1;
        } else if depth == 0 {
            out.push(c);
        }
    }
    out
}

fn is_function_value(node: Node<'_>) -> bool {
    matches!(
        node.kind(),
        "arrow_function" | "function_expression" | "function" | "generator_function"
    )
}

fn javascript<'t>(ctx: &Ctx<'_>, node: Node<'t>) -> Visit<'t> {
    match node.kind() {
        "function_declaration" | "generator_function_declaration" => {
            function(name_of(ctx, node, "name").unwrap_or_default(), false, node)
        }
        "method_definition" => {
            function(name_of(ctx, node, "name").unwrap_or_default(), false, node)
        }
        "class_declaration" | "class" | "abstract_class_declaration" => Visit::Scope {
            name: name_of(ctx, node, "name").unwrap_or_default(),
            kind: ScopeKind::Class,
        },
        "internal_module" | "module" => Visit::Scope {
            name: name_of(ctx, node, "name").unwrap_or_default(),
            kind: ScopeKind::Namespace,
        },
        "variable_declarator" => match node.child_by_field_name("value") {
            Some(value) if is_function_value(value) => {
                let name = node
                    .child_by_field_name("name")
                    .filter(|n| n.kind() == "identifier")
                    .map(|n| ctx.text(n).to_string())
                    .unwrap_or_default();
                function(name, false, value)
            }
            _ => Visit::Descend,
        },
        "pair" => match node.child_by_field_name("value") {
            Some(value) if is_function_value(value) => {
                let key = name_of(ctx, node, "key").unwrap_or_default();
                function(key.trim_matches(['"', '\'', '`']).to_string(), false, value)
            }
            _ => Visit::Descend,
        },
        "assignment_expression" => match node.child_by_field_name("right") {
            Some(right) if is_function_value(right) => {
                let left = name_of(ctx, node, "left").unwrap_or_default();
                function(js_assigned_name(&left), false, right)
            }
            _ => Visit::Descend,
        },
        "field_definition" | "public_field_definition" => match node.child_by_field_name("value") {
            Some(value) if is_function_value(value) => {
                let name = name_of(ctx, node, "property")
                    .or_else(|| name_of(ctx, node, "name"))
                    .unwrap_or_default();
                function(name, true, value)
            }
            _ => Visit::Descend,
        },
        "decorator" => Visit::Attribute { test: false },
        "function_signature"
        | "method_signature"
        | "abstract_method_signature"
        | "interface_declaration"
        | "type_alias_declaration"
        | "comment"
        | "string"
        | "template_string"
        | "regex"
        | "import_statement" => Visit::Skip,
        _ => Visit::Descend,
    }
}

/// `Foo.prototype.bar` -> `Foo.bar`, `module.exports.baz` -> `baz`, `this.qux` -> `qux`.
fn js_assigned_name(left: &str) -> String {
    let mut name = left.replace(".prototype.", ".");
    for prefix in ["module.exports.", "exports.", "this.", "window.", "self."] {
        if let Some(rest) = name.strip_prefix(prefix) {
            name = rest.to_string();
            break;
        }
    }
    name.replace(' ', "")
}

fn go<'t>(ctx: &Ctx<'_>, node: Node<'t>) -> Visit<'t> {
    match node.kind() {
        "function_declaration" => {
            function(name_of(ctx, node, "name").unwrap_or_default(), false, node)
        }
        "method_declaration" => {
            let name = name_of(ctx, node, "name").unwrap_or_default();
            let receiver = node
                .child_by_field_name("receiver")
                .and_then(|r| r.named_child(0))
                .and_then(|p| p.child_by_field_name("type"))
                .map(|t| type_name(ctx.text(t)))
                .unwrap_or_default();
            let full = if receiver.is_empty() || name.is_empty() {
                name
            } else {
                format!("{receiver}.{name}")
            };
            function(full, true, node)
        }
        "comment" | "interpreted_string_literal" | "raw_string_literal" | "import_declaration" => {
            Visit::Skip
        }
        _ => Visit::Descend,
    }
}

fn java<'t>(ctx: &Ctx<'_>, node: Node<'t>) -> Visit<'t> {
    match node.kind() {
        "method_declaration" | "constructor_declaration" | "compact_constructor_declaration" => {
            if node.child_by_field_name("body").is_some() {
                function(name_of(ctx, node, "name").unwrap_or_default(), false, node)
            } else {
                Visit::Skip
            }
        }
        "class_declaration"
        | "interface_declaration"
        | "enum_declaration"
        | "record_declaration"
        | "annotation_type_declaration" => Visit::Scope {
            name: name_of(ctx, node, "name").unwrap_or_default(),
            kind: ScopeKind::Class,
        },
        // An anonymous class: its methods are methods, named under the enclosing function.
        "class_body" => Visit::Scope {
            name: String::new(),
            kind: ScopeKind::Class,
        },
        "line_comment"
        | "block_comment"
        | "string_literal"
        | "import_declaration"
        | "package_declaration" => Visit::Skip,
        _ => Visit::Descend,
    }
}

fn c_family<'t>(ctx: &Ctx<'_>, node: Node<'t>) -> Visit<'t> {
    match node.kind() {
        // `= default` and `= delete` definitions have no body to change.
        "function_definition" if node.child_by_field_name("body").is_none() => Visit::Skip,
        "function_definition" => match c_function_name(ctx, node) {
            Some(name) => {
                let qualified = name.contains('.');
                function(name, qualified, node)
            }
            None => Visit::Descend,
        },
        "class_specifier" | "struct_specifier" | "union_specifier" => {
            if node.child_by_field_name("body").is_some() {
                Visit::Scope {
                    name: node
                        .child_by_field_name("name")
                        .map(|n| type_name(ctx.text(n)))
                        .unwrap_or_default(),
                    kind: ScopeKind::Class,
                }
            } else {
                Visit::Skip
            }
        }
        "namespace_definition" => Visit::Scope {
            name: name_of(ctx, node, "name")
                .unwrap_or_default()
                .replace("::", "."),
            kind: ScopeKind::Namespace,
        },
        "template_declaration" => {
            let mut cursor = node.walk();
            let wrapped = node.named_children(&mut cursor).find(|c| {
                matches!(
                    c.kind(),
                    "function_definition"
                        | "class_specifier"
                        | "struct_specifier"
                        | "union_specifier"
                )
            });
            match wrapped {
                Some(child) => Visit::Wrapper {
                    child_id: child.id(),
                },
                None => Visit::Descend,
            }
        }
        "comment"
        | "string_literal"
        | "raw_string_literal"
        | "preproc_include"
        | "preproc_def"
        | "preproc_function_def"
        | "preproc_call"
        | "enumerator_list" => Visit::Skip,
        _ => Visit::Descend,
    }
}

/// The name a C/C++ definition declares: `Foo::bar` becomes `Foo.bar`.
///
/// Declarators nest (`int (*get(void))(int)` is a function returning a function pointer),
/// so follow `declarator` fields down to the innermost name.
fn c_function_name(ctx: &Ctx<'_>, def: Node<'_>) -> Option<String> {
    let mut decl = def.child_by_field_name("declarator")?;
    for _ in 0..32 {
        match decl.kind() {
            "identifier"
            | "field_identifier"
            | "qualified_identifier"
            | "destructor_name"
            | "operator_name"
            | "template_function"
            | "operator_cast" => {
                return c_declared_name(ctx, decl);
            }
            _ => {
                decl = match decl.child_by_field_name("declarator") {
                    Some(d) => d,
                    // reference and parenthesized declarators hold their inner declarator unnamed
                    None => decl.named_child(decl.named_child_count().checked_sub(1)? as u32)?,
                };
            }
        }
    }
    None
}

fn c_declared_name(ctx: &Ctx<'_>, node: Node<'_>) -> Option<String> {
    let text = squash(ctx.text(node));
    if text.is_empty() {
        return None;
    }
    let parts: Vec<String> = split_scope(&text)
        .into_iter()
        .filter(|p| !p.is_empty())
        .map(|p| {
            if p.starts_with("operator") {
                p.to_string()
            } else {
                strip_generics(p, '<', '>')
            }
        })
        .map(|p| p.trim().to_string())
        .collect();
    if parts.is_empty() {
        None
    } else {
        Some(parts.join("."))
    }
}

/// Split `a::b<c::d>::operator<<` on the `::` that are not inside template arguments.
fn split_scope(text: &str) -> Vec<&str> {
    let bytes = text.as_bytes();
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if text[i..].starts_with("operator") {
            break;
        }
        match bytes[i] {
            b'<' => depth += 1,
            b'>' => depth -= 1,
            b':' if depth <= 0 && bytes.get(i + 1) == Some(&b':') => {
                parts.push(&text[start..i]);
                i += 2;
                start = i;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    parts.push(&text[start..]);
    parts
}
