//! One fixture per language, written to cover each language's definition forms.

use trajforge_ingest::{Language, extract_source};

fn render(language: Language, file: &str, tsx: bool) -> String {
    let source = std::fs::read_to_string(crate::fixtures().join(file)).expect("fixture");
    let found = extract_source(language, &source, tsx);
    assert!(!found.syntax_errors, "{file} should parse cleanly");
    let mut out = String::new();
    for f in &found.functions {
        let test = if f.test { " [test]" } else { "" };
        out.push_str(&format!(
            "{:>3}-{:<3} {:<8} {}{test}\n",
            f.start_line,
            f.end_line,
            format!("{:?}", f.kind).to_lowercase(),
            f.name
        ));
    }
    out
}

/// One snapshot test per language: `name: (language, fixture file, tsx)`.
macro_rules! snapshot_tests {
    ($($name:ident: ($language:expr, $file:literal, $tsx:literal),)*) => {$(
        #[test]
        fn $name() {
            insta::assert_snapshot!(stringify!($name), render($language, $file, $tsx));
        }
    )*};
}

snapshot_tests! {
    python: (Language::Python, "sample.py", false),
    rust: (Language::Rust, "sample.rs", false),
    javascript: (Language::JavaScript, "sample.js", false),
    typescript: (Language::TypeScript, "sample.ts", false),
    tsx: (Language::TypeScript, "sample.tsx", true),
    go: (Language::Go, "sample.go", false),
    java: (Language::Java, "Sample.java", false),
    c: (Language::C, "sample.c", false),
    cpp: (Language::Cpp, "sample.cpp", false),
}

#[test]
fn syntax_errors_still_yield_recovered_functions() {
    let source = "def good():\n    return 1\n\ndef broken(:\n    pass\n\nclass K:\n    def also_good(self):\n        return 2\n";
    let found = extract_source(Language::Python, source, false);
    assert!(found.syntax_errors);
    let names: Vec<&str> = found.functions.iter().map(|f| f.name.as_str()).collect();
    assert!(names.contains(&"good"), "{names:?}");
    assert!(names.contains(&"K.also_good"), "{names:?}");
}

#[test]
fn empty_and_garbage_inputs_do_not_panic() {
    for lang in Language::ALL {
        for text in [
            "",
            "\n\n",
            "}}}{{{",
            "def fn func function (((",
            "\u{feff}x",
        ] {
            let found = extract_source(lang, text, false);
            assert!(found.functions.iter().all(|f| f.start_line <= f.end_line));
        }
    }
}

#[test]
fn extract_path_picks_the_grammar_from_the_name() {
    let names = |path: &str, source: &str| {
        trajforge_ingest::extract_path(path, source)
            .map(|f| f.functions.into_iter().map(|f| f.name).collect::<Vec<_>>())
    };
    let python = "class A:\n    def m(self):\n        pass\n";
    assert_eq!(names("pkg/a.py", python), Some(vec!["A.m".to_string()]));
    let same = extract_source(Language::Python, python, false);
    assert_eq!(trajforge_ingest::extract_path("a.py", python), Some(same));
    assert_eq!(
        names("x.tsx", "const f = () => <div/>;\n"),
        Some(vec!["f".to_string()])
    );
    assert_eq!(
        names("lib.h", "int add(int a, int b) { return a + b; }\n"),
        Some(vec!["add".to_string()])
    );
    assert_eq!(names("README.md", "# not code\n"), None);
    assert_eq!(names("types.d.ts", "declare function f(): void;\n"), None);
}

#[test]
fn deeply_nested_functions_keep_names_of_bounded_length() {
    let n = 3000;
    let source: String = (0..n)
        .map(|i| format!("function f{i}() {{\n"))
        .chain((0..n).map(|_| "}\n".to_string()))
        .collect();
    let found = extract_source(Language::JavaScript, &source, false);
    assert_eq!(found.functions.len(), n);
    let names: Vec<&str> = found.functions.iter().map(|f| f.name.as_str()).collect();
    // Shallow ones keep their whole path; deep ones the innermost scopes behind a mark.
    assert_eq!(names[2], "f0.f1.f2");
    assert_eq!(names[8], "f0.f1.f2.f3.f4.f5.f6.f7.f8");
    assert_eq!(names[9], "…f1.f2.f3.f4.f5.f6.f7.f8.f9");
    assert_eq!(
        names[n - 1],
        "…f2991.f2992.f2993.f2994.f2995.f2996.f2997.f2998.f2999"
    );
    let total: usize = names.iter().map(|n| n.len()).sum();
    assert!(total < 100 * n, "{total} bytes of names for {n} functions");
}
