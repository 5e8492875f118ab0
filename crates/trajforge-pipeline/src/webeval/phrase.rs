//! The teacher phrases a drawn target as a visitor would ask for it, and the phrasing is
//! checked: no URL, path or file name (the task would give the way away), and for answer
//! tasks an answer the target page states and the request does not. A phrasing that fails
//! is sent back once or twice with the reason; a target that still fails is skipped.

use std::sync::Arc;

use serde::Deserialize;
use trajforge_eval::WebIntent;
use trajforge_teacher::{ChatMessage, Teacher, TeacherError, Usage};

use crate::web::{leaks_path, same_answer};

/// Phrasings asked for one target before it is skipped.
pub const PHRASE_ATTEMPTS: usize = 3;

/// The phrasing teacher's system prompt.
pub const SYSTEM: &str = "You write the requests that visitors of a website type into a browsing \
assistant, in their own words.";

/// Most characters of the target page's snapshot shown to the teacher.
const PAGE_CHARS: usize = 4000;

/// Why a phrasing was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Refusal {
    /// It names a URL, a path or a file name.
    LeaksUrl,
    /// The reply was not the JSON asked for, or its request was empty.
    Unreadable,
    /// An answer task without an answer the target page states.
    AnswerNotOnPage,
    /// The request gives the answer away.
    AnswerInRequest,
}

impl Refusal {
    /// The name counted in reports.
    pub fn name(self) -> &'static str {
        match self {
            Refusal::LeaksUrl => "leaks_url",
            Refusal::Unreadable => "unreadable",
            Refusal::AnswerNotOnPage => "answer_not_on_page",
            Refusal::AnswerInRequest => "answer_in_request",
        }
    }

    /// What the teacher is told when asked again.
    fn feedback(self) -> &'static str {
        match self {
            Refusal::LeaksUrl => {
                "That gives the address away (a URL, a path or a file name). Write it again without any."
            }
            Refusal::Unreadable => {
                "That is not the JSON object asked for. Answer with the JSON only."
            }
            Refusal::AnswerNotOnPage => {
                "That answer is not written on the page. Pick a fact the page states, copied exactly."
            }
            Refusal::AnswerInRequest => {
                "The request already contains the answer. Ask for the fact without stating it."
            }
        }
    }
}

/// What a target page looks like to the phrasing teacher.
#[derive(Debug, Clone)]
pub struct TargetPage {
    /// The start page's URL and title.
    pub start_url: String,
    /// Its title.
    pub start_title: String,
    /// The target's URL.
    pub url: String,
    /// Its title.
    pub title: String,
    /// Its snapshot.
    pub snapshot: String,
    /// What the task asks.
    pub intent: WebIntent,
}

/// An accepted phrasing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phrasing {
    /// The visitor's request.
    pub request: String,
    /// The answer (answer tasks).
    pub answer: Option<String>,
}

/// What phrasing one target came to.
#[derive(Debug, Clone)]
pub struct Phrased {
    /// The accepted phrasing, or `None` when every attempt was refused.
    pub phrasing: Option<Phrasing>,
    /// Why attempts were refused, in order.
    pub refused: Vec<Refusal>,
    /// Tokens used.
    pub usage: Usage,
}

/// The teacher's task for `page`.
pub fn prompt(page: &TargetPage) -> String {
    let snapshot: String = page.snapshot.chars().take(PAGE_CHARS).collect();
    let ask = match page.intent {
        WebIntent::Navigate => {
            "Write the request this visitor would make to a browsing assistant to be brought to this \
page: what they want to find or do there, in one or two sentences, in their own voice. Answer with a JSON \
object only: {\"request\": \"...\"}"
        }
        WebIntent::Answer => {
            "Pick one short fact this page states that a visitor could want to know (a name, a number, an \
option, a term: a few words copied exactly as the page writes them). Write the question this visitor would \
ask a browsing assistant to learn it, in their own voice, without stating the fact. Answer with a JSON \
object only: {\"request\": \"...\", \"answer\": \"...\"}"
        }
    };
    format!(
        "A visitor of a website is on the page \"{}\". The page they need is \"{}\"; it shows:\n\n\
<page>\n{}\n</page>\n\n{ask} Never mention URLs, paths, file names, link or button names to click, menus, \
or the steps to take: a real visitor does not know them.",
        page.start_title,
        page.title,
        snapshot.trim()
    )
}

/// True when `text` names a URL, a path or a file name: what [`leaks_path`] finds (any
/// http(s) URL, the target's multi-segment path), and any word that looks like an address
/// (`www.`, `://`, a leading `/`, an `.html`-like file name).
pub fn leaks_url(text: &str, target_url: &str, start_url: &str) -> bool {
    if leaks_path(text, target_url, start_url) {
        return true;
    }
    text.split_whitespace().any(|word| {
        let w = word
            .trim_matches(|c: char| "\"'()[]{}<>,;:!?`".contains(c))
            .trim_end_matches('.')
            .to_lowercase();
        let file = [".html", ".htm", ".php", ".asp", ".aspx", ".jsp"]
            .iter()
            .any(|ext| w.ends_with(ext) || w.contains(&format!("{ext}#")));
        w.contains("://") || w.starts_with("www.") || (w.starts_with('/') && w.len() > 1) || file
    })
}

#[derive(Deserialize)]
struct Reply {
    request: String,
    #[serde(default)]
    answer: Option<String>,
}

/// Read and check one reply of the teacher for `page`.
pub fn check(reply: &str, page: &TargetPage) -> Result<Phrasing, Refusal> {
    let json = match (reply.find('{'), reply.rfind('}')) {
        (Some(a), Some(b)) if a < b => &reply[a..=b],
        _ => return Err(Refusal::Unreadable),
    };
    let Reply { request, answer } = serde_json::from_str(json).map_err(|_| Refusal::Unreadable)?;
    let request = request.trim().to_string();
    if request.is_empty() {
        return Err(Refusal::Unreadable);
    }
    let answer = answer
        .map(|a| a.trim().to_string())
        .filter(|a| !a.is_empty());
    let leaks = |t: &str| leaks_url(t, &page.url, &page.start_url);
    if leaks(&request) {
        return Err(Refusal::LeaksUrl);
    }
    match page.intent {
        WebIntent::Navigate => Ok(Phrasing {
            request,
            answer: None,
        }),
        WebIntent::Answer => {
            let Some(answer) = answer else {
                return Err(Refusal::AnswerNotOnPage);
            };
            // The answer must be written on the page (whole words), and not in the request.
            if !same_answer(&answer, &page.snapshot) || leaks(&answer) {
                return Err(Refusal::AnswerNotOnPage);
            }
            if same_answer(&answer, &request) {
                return Err(Refusal::AnswerInRequest);
            }
            Ok(Phrasing {
                request,
                answer: Some(answer),
            })
        }
    }
}

/// Ask `teacher` to phrase `page`, sending a refused phrasing back with the reason, at most
/// [`PHRASE_ATTEMPTS`] times.
pub async fn phrase(teacher: Arc<dyn Teacher>, page: TargetPage) -> Result<Phrased, TeacherError> {
    let mut messages = vec![
        ChatMessage::system(SYSTEM),
        ChatMessage::user(prompt(&page)),
    ];
    let mut refused = Vec::new();
    let mut usage = Usage::default();
    for _ in 0..PHRASE_ATTEMPTS {
        let c = teacher.complete(&messages, &[]).await?;
        usage.prompt_tokens += c.usage.prompt_tokens;
        usage.completion_tokens += c.usage.completion_tokens;
        let reply = c.message.content.clone().unwrap_or_default();
        match check(&reply, &page) {
            Ok(p) => {
                return Ok(Phrased {
                    phrasing: Some(p),
                    refused,
                    usage,
                });
            }
            Err(r) => {
                refused.push(r);
                messages.push(ChatMessage::assistant(Some(reply), Vec::new()));
                messages.push(ChatMessage::user(r.feedback()));
            }
        }
    }
    Ok(Phrased {
        phrasing: None,
        refused,
        usage,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(intent: WebIntent) -> TargetPage {
        TargetPage {
            start_url: "http://h/index.html".into(),
            start_title: "Home".into(),
            url: "http://h/docs/install.html".into(),
            title: "Installation".into(),
            snapshot:
                "- heading \"Installation\" [level=1]\n- text: Requires Python 3.9 or later.\n"
                    .into(),
            intent,
        }
    }

    #[test]
    fn urls_paths_and_file_names_are_leaks() {
        let (t, s) = ("http://h/docs/install.html", "http://h/index.html");
        for leak in [
            "See http://h/docs/install.html please",
            "open docs/install.html",
            "the install.html page",
            "go to www.example.org",
            "under /docs please",
            "ftp://x/y",
        ] {
            assert!(leaks_url(leak, t, s), "{leak}");
        }
        for fine in [
            "How do I install this library?",
            "Which Python version do I need (3.9 or later)?",
            "Is there a page on installation/setup?",
        ] {
            assert!(!leaks_url(fine, t, s), "{fine}");
        }
    }

    #[test]
    fn replies_are_checked_for_their_intent() {
        let nav = page(WebIntent::Navigate);
        assert_eq!(
            check("{\"request\": \"How do I install it?\"}", &nav),
            Ok(Phrasing {
                request: "How do I install it?".into(),
                answer: None
            })
        );
        assert_eq!(
            check("{\"request\": \"Open docs/install.html\"}", &nav),
            Err(Refusal::LeaksUrl)
        );
        assert_eq!(check("sure!", &nav), Err(Refusal::Unreadable));
        assert_eq!(
            check("{\"request\": \"  \"}", &nav),
            Err(Refusal::Unreadable)
        );
        let ans = page(WebIntent::Answer);
        let ok = check(
            "Here: {\"request\": \"Which Python do I need?\", \"answer\": \"Python 3.9\"}",
            &ans,
        )
        .expect("accepted");
        assert_eq!(ok.answer.as_deref(), Some("Python 3.9"));
        assert_eq!(
            check(
                "{\"request\": \"Which Python do I need?\", \"answer\": \"Python 2.7\"}",
                &ans
            ),
            Err(Refusal::AnswerNotOnPage)
        );
        assert_eq!(
            check("{\"request\": \"Which Python do I need?\"}", &ans),
            Err(Refusal::AnswerNotOnPage)
        );
        assert_eq!(
            check(
                "{\"request\": \"Is Python 3.9 enough?\", \"answer\": \"Python 3.9\"}",
                &ans
            ),
            Err(Refusal::AnswerInRequest)
        );
    }

    #[test]
    fn the_prompt_shows_the_page_and_asks_for_json() {
        let p = prompt(&page(WebIntent::Answer));
        assert!(p.contains("\"Installation\""), "{p}");
        assert!(p.contains("Requires Python 3.9"), "{p}");
        assert!(p.contains("\"answer\""), "{p}");
        assert!(!prompt(&page(WebIntent::Navigate)).contains("\"answer\""));
    }
}
