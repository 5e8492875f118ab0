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
