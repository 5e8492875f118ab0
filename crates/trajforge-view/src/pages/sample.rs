//! The training sample view: a trajectory rendered in an export format exactly as `trajforge
//! export` writes it, every turn marked as trained on (in the loss) or not.

use std::fmt::Write;

use serde_json::Value;
use trajforge_export::{Format, Measure, Sample};

use crate::html::esc;

/// The formats offered, by name.
pub const FORMATS: [&str; 3] = ["hermes", "openai", "sharegpt"];

/// The sample page's body: `row` is the export's row for the trajectory in `format`;
/// `measure` the exact token figures and the `--max-tokens` limit, given a tokenizer.
pub fn body(
    sample: &Sample,
    format: Format,
    row: &Value,
    measure: Option<(Measure, Option<usize>)>,
) -> String {
    let mut o = String::new();
    let m = &sample.meta;
    let _ = write!(
        o,
        "<h1>Training sample <span class=\"muted\">trajectory {} of <a href=\"/job/{}#t{}\">job {}</a>, {} · {}</span></h1>\
         <nav class=\"formats\">format:",
        m.id,
        m.job_id,
        m.id,
        m.job_id,
        esc(m.rollout.as_str()),
        if m.kept {
            "kept"
        } else {
            "not kept (export leaves it out by default)"
        }
    );
    for f in FORMATS {
        let current = if f == format.as_str() {
            " aria-current=\"page\""
        } else {
            ""
        };
        let _ = write!(
            o,
            " <a href=\"/sample/{}?format={f}\"{current}>{f}</a>",
            m.id
        );
    }
    o.push_str(
        "</nav><p class=\"legend\"><span class=\"turn train\">trained on (in the loss)</span> \
         <span class=\"turn\">context only (masked out)</span></p>",
    );
    match measure {
        Some((m, max)) => {
            let _ = write!(
                o,
                "<p id=\"tokens\"><b id=\"n-tokens\">{}</b> tokens with the student's chat template",
                m.total_tokens
            );
            match max {
                Some(max) if m.keep < m.messages => {
                    let _ = write!(
                        o,
                        "; <span class=\"bad\">--max-tokens {max} cuts it after message <b id=\"cut\">{}</b> of {}</span> ({} tokens kept; the turns shown are what is kept)",
                        m.keep, m.messages, m.tokens
                    );
                }
                Some(max) => {
                    let _ = write!(o, "; fits --max-tokens {max}");
                }
                None => {}
            }
            o.push_str("</p>");
        }
        None => o.push_str(
            "<p class=\"muted\">Start the viewer with --tokenizer (and --max-tokens) for exact token counts and the cut.</p>",
        ),
    }
    let turns = turns(format, row);
    let trained = turns.iter().filter(|t| t.2).count();
    let _ = write!(
        o,
        "<p id=\"mask-summary\">{} turns, <span id=\"n-trained\">{trained}</span> in the loss</p><ol class=\"turns\">",
        turns.len()
    );
    for (role, text, train) in &turns {
        let _ = write!(
            o,
            "<li class=\"turn{}\" data-train=\"{}\"><div class=\"role\">{}{}</div><pre>{}</pre></li>",
            if *train { " train" } else { "" },
            train,
            esc(role),
            if *train { " · loss" } else { "" },
            esc(text)
        );
    }
    o.push_str("</ol>");
    if let Some(tools) = row.get("tools") {
        let text = match tools {
            Value::String(s) => s.clone(),
            v => serde_json::to_string_pretty(v).unwrap_or_default(),
        };
        let _ = write!(
            o,
            "<details><summary>tools column</summary><pre>{}</pre></details>",
            esc(&text)
        );
    }
    o
}

/// The turns of a rendered row with whether each is in the loss: hermes rows carry the flag
/// (`train`); OpenAI rows train on assistant turns; ShareGPT rows on model (`gpt`,
/// `function_call`) turns, as the trainers each format is written for do.
fn turns(format: Format, row: &Value) -> Vec<(String, String, bool)> {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    };
    let mut out = Vec::new();
    match format {
        Format::Hermes | Format::Openai => {
            for m in row["messages"].as_array().into_iter().flatten() {
                let role = m["role"].as_str().unwrap_or("").to_string();
                let train = match format {
                    Format::Hermes => m["train"].as_bool().unwrap_or(false),
                    _ => role == "assistant",
                };
                let mut body = text(&m["content"]);
                if let Some(calls) = m.get("tool_calls") {
                    body.push_str("\n\ntool_calls: ");
                    body.push_str(&text(calls));
                }
                out.push((role, body, train));
            }
        }
        Format::Sharegpt => {
            if let Some(system) = row["system"].as_str().filter(|s| !s.is_empty()) {
                out.push(("system".to_string(), system.to_string(), false));
            }
            for m in row["conversations"].as_array().into_iter().flatten() {
                let from = m["from"].as_str().unwrap_or("").to_string();
                let train = matches!(from.as_str(), "gpt" | "function_call");
                out.push((from, text(&m["value"]), train));
            }
        }
        Format::Raw => {}
    }
    out
}
