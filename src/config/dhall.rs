//! Reading a Dhall file into plain JSON, so that typed deserialization can name the field path
//! of every error (serde_dhall's own errors name the value, not where it is).

use dhall::semantics::{Nir, NirKind};
use dhall::syntax::NumKind;
use dhall::{Ctxt, Parsed};
use serde_json::{Map, Number, Value};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum DhallError {
    /// The reason in words, not the `io::Error` as a source: the message says it once.
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error(
        "{path}: remote imports are not allowed{url}; copy the file next to the config and import it by path"
    )]
    RemoteImport { path: String, url: String },
    #[error(
        "{path}: environment variable {name} is not set; export it, or give a default with `env:{name} as Text ? \"…\"`"
    )]
    MissingEnv { path: String, name: String },
    #[error("{path}:{line}:{column}: syntax error at {found}: expected {expected}")]
    Syntax {
        path: String,
        line: usize,
        column: usize,
        /// The text where parsing stopped, quoted, or the end of the line or file.
        found: String,
        /// What the parser would have taken there, in words.
        expected: String,
    },
    #[error("{path}: {stage}: {message}")]
    Dhall {
        path: String,
        stage: &'static str,
        message: String,
    },
    #[error(
        "{path}: the value does not match its type annotation:\n{}\n    fix: correct these fields, or remove the annotation to have each field checked on its own",
        .differences.iter().map(|d| format!("  - {d}")).collect::<Vec<_>>().join("\n")
    )]
    Annotation {
        path: String,
        differences: Vec<String>,
    },
}

/// Evaluates a Dhall file (local and `env:` imports allowed, remote imports refused) to JSON.
///
/// dhall-rust built without its HTTP client panics on a remote import instead of returning an
/// error; the panic is caught here and turned into [`DhallError::RemoteImport`].
pub fn load_json(path: &Path) -> Result<Value, DhallError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| DhallError::Read {
        path: shown.clone(),
        reason: match e.kind() {
            std::io::ErrorKind::NotFound => "no such file; check the path given to --config".into(),
            std::io::ErrorKind::PermissionDenied => {
                "permission denied; the file must be readable by this user".into()
            }
            std::io::ErrorKind::IsADirectory => "it is a folder, not a Dhall file".into(),
            _ => e.to_string(),
        },
    })?;
    let evaluated = quietly_catch_unwind(|| {
        Ctxt::with_new(|cx| -> Result<Value, (&'static str, String)> {
            let parsed = Parsed::parse_file(path).map_err(|e| ("syntax error", e.to_string()))?;
            let resolved = parsed
                .resolve(cx)
                .map_err(|e| ("import failed", e.to_string()))?;
            let typed = resolved
                .typecheck(cx)
                .map_err(|e| ("type error", e.to_string()))?;
            let normal = typed.normalize(cx);
            to_json(normal.as_nir()).map_err(|e| ("not a configuration", e))
        })
    });
    match evaluated {
        Ok(Ok(value)) => Ok(value),
        Ok(Err((stage, message))) => Err(explain(&shown, &text, stage, message)),
        Err(panic) if panic.contains("Remote imports") => Err(DhallError::RemoteImport {
            path: shown,
            url: first_remote_import(&text)
                .map(|u| format!(" ({u})"))
                .unwrap_or_default(),
        }),
        Err(panic) => Err(DhallError::Dhall {
            path: shown,
            stage: "the Dhall evaluator failed",
            message: panic,
        }),
    }
}

/// The text that stands in for an `env:` import that is not set, in `config check` without
/// production secrets: long and plain enough to pass every rule a secret must.
pub fn placeholder(name: &str) -> String {
    format!("config-check-placeholder-for-{name}")
}

/// [`load_json`] for `config check` without production secrets: an `env:` import that is not
/// set (in the file or in a file it imports) stands in as [`placeholder`]; the names of those
/// variables are returned, in the order they were met.
///
/// It sets those variables in this process, so it must run while no other thread does: the
/// command line's `config check` calls it before it starts anything else.
pub fn load_json_standing_in(path: &Path) -> Result<(Value, Vec<String>), DhallError> {
    let mut missing: Vec<String> = Vec::new();
    let result = loop {
        let unset = match load_json(path) {
            Err(DhallError::MissingEnv { name, .. }) => vec![name],
            Err(DhallError::Dhall { message, .. }) if message.contains("MissingEnvVar") => {
                env_imports(&message)
                    .filter(|n| !n.is_empty() && std::env::var_os(n).is_none())
                    .collect()
            }
            other => break other,
        };
        let unset: Vec<String> = unset.into_iter().filter(|n| !missing.contains(n)).collect();
        if unset.is_empty() {
            break load_json(path);
        }
        for name in unset {
            // SAFETY: see the function's documentation: no other thread runs yet.
            unsafe { std::env::set_var(&name, placeholder(&name)) };
            missing.push(name);
        }
    };
    for name in &missing {
        // SAFETY: as above.
        unsafe { std::env::remove_var(name) };
    }
    result.map(|value| (value, missing))
}

fn quietly_catch_unwind<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    // The default hook would print the panic to stderr before we turn it into an error.
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    std::panic::set_hook(previous);
    result.map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".to_owned())
    })
}

fn explain(path: &str, text: &str, stage: &'static str, message: String) -> DhallError {
    if message.contains("MissingEnvVar")
        && let Some(name) = env_imports(text).find(|n| std::env::var_os(n).is_none())
    {
        return DhallError::MissingEnv {
            path: path.to_owned(),
            name,
        };
    }
    if stage == "syntax error"
        && let Some(syntax) = explain_syntax(path, text, &message)
    {
        return syntax;
    }
    if let Some(differences) = super::annot::explain(&message) {
        return DhallError::Annotation {
            path: path.to_owned(),
            differences,
        };
    }
    let mut message = message;
    if message.contains("\u{2200}(Secret : Type)") {
        message
            .push_str("\n    fix: apply the type to `Text`, e.g. `T.Config Text` or `T.Aws Text`");
    }
    DhallError::Dhall {
        path: path.to_owned(),
        stage,
        message,
    }
}

/// The parser's error (pest: ` --> line:column` and `= expected rule, rule or rule`) in words:
/// where, what stands there, and what could have.
fn explain_syntax(path: &str, text: &str, message: &str) -> Option<DhallError> {
    let at = message.split("--> ").nth(1)?;
    let (line, rest) = at.split_once(':')?;
    let line: usize = line.trim().parse().ok()?;
    let column: usize = rest
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .ok()?;
    let rules: Vec<&str> = message
        .split("= expected ")
        .nth(1)
        .map(|list| {
            list.lines()
                .next()
                .unwrap_or("")
                .split([',', ' '])
                .filter(|r| !r.is_empty() && *r != "or")
                .collect()
        })
        .unwrap_or_default();
    let found: String = text
        .lines()
        .nth(line.saturating_sub(1))
        .map(|l| l.chars().skip(column.saturating_sub(1)).take(30).collect())
        .unwrap_or_default();
    let found = found.trim_end();
    let past_the_text = text.lines().skip(line).all(|l| l.trim().is_empty());
    let found = if found.is_empty() && past_the_text {
        "the end of the file".to_owned()
    } else if found.is_empty() {
        "the end of the line".to_owned()
    } else {
        format!("`{found}`")
    };
    Some(DhallError::Syntax {
        path: path.to_owned(),
        line,
        column,
        found,
        expected: expected_in_words(&rules),
    })
}

/// The grammar's rule names as a reader of the config would say them.
fn expected_in_words(rules: &[&str]) -> String {
    const OPERATORS: [&str; 14] = [
        "import_alt",
        "bool_or",
        "natural_plus",
        "text_append",
        "list_append",
        "bool_and",
        "natural_times",
        "bool_eq",
        "bool_ne",
        "combine",
        "combine_types",
        "equivalent",
        "prefer",
        "arrow",
    ];
    let mut words: Vec<String> = Vec::new();
    let mut say = |w: &str| {
        if !words.iter().any(|x| x == w) {
            words.push(w.to_owned());
        }
    };
    for rule in rules {
        match *rule {
            r if OPERATORS.contains(&r) => say(
                "a `,` or a closing bracket (is a comma missing before it, or a bracket not closed?)",
            ),
            "primitive_expression"
            | "import_hashed"
            | "expression"
            | "missing"
            | "if_"
            | "merge"
            | "NaN"
            | "Some_"
            | "toMap"
            | "assert"
            | "forall_keyword" => say("a value"),
            "let_binding" => say("`in` after the `let` bindings"),
            "double_quote_char" => say("the closing `\"` of a text"),
            "any_label_or_some" | "label" | "any_label" => say("a field name"),
            "record_type_entry" | "empty_record_literal" => say("`=` after the field name"),
            "EOI" => say("the end of the file (is a bracket closed twice?)"),
            other => say(&other.replace('_', " ")),
        }
    }
    match words.len() {
        0 => "something else".to_owned(),
        1 => words.remove(0),
        _ => {
            let last = words.pop().expect("two or more");
            format!("{}, or {last}", words.join(", "))
        }
    }
}

fn env_imports(text: &str) -> impl Iterator<Item = String> + '_ {
    text.match_indices("env:").map(move |(i, _)| {
        text[i + 4..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    })
}

/// A URL that stands as an import, not inside a string literal.
fn first_remote_import(text: &str) -> Option<String> {
    for scheme in ["https://", "http://"] {
        for (i, _) in text.match_indices(scheme) {
            if text[..i].ends_with('"') {
                continue;
            }
            let url: String = text[i..]
                .chars()
                .take_while(|c| !c.is_whitespace() && *c != ')')
                .collect();
            return Some(url);
        }
    }
    None
}

/// A normalized Dhall value as JSON. Dhall maps (`List { mapKey, mapValue }`) stay lists of
/// entries, so that validation sees duplicate keys. Functions, types and anything else that is
/// not plain data are refused.
fn to_json(nir: &Nir) -> Result<Value, String> {
    Ok(match nir.kind() {
        NirKind::Num(NumKind::Bool(b)) => Value::Bool(*b),
        NirKind::Num(NumKind::Natural(n)) => Value::Number((*n).into()),
        NirKind::Num(NumKind::Integer(n)) => Value::Number((*n).into()),
        NirKind::Num(NumKind::Double(d)) => {
            Number::from_f64(f64::from(*d)).map_or(Value::Null, Value::Number)
        }
        NirKind::TextLit(t) => {
            Value::String(t.as_text().ok_or("a text value is not fully evaluated")?)
        }
        NirKind::EmptyOptionalLit(_) => Value::Null,
        NirKind::NEOptionalLit(v) => to_json(v)?,
        NirKind::EmptyListLit(_) => Value::Array(Vec::new()),
        NirKind::NEListLit(items) => {
            Value::Array(items.iter().map(to_json).collect::<Result<_, _>>()?)
        }
        NirKind::RecordLit(fields) => {
            let mut map = Map::new();
            for (label, v) in fields {
                map.insert(label.to_string(), to_json(v)?);
            }
            Value::Object(map)
        }
        NirKind::UnionLit(label, v, _) => {
            Value::Object(Map::from_iter([(label.to_string(), to_json(v)?)]))
        }
        NirKind::UnionConstructor(label, alternatives)
            if matches!(alternatives.get(label), Some(None)) =>
        {
            Value::String(label.to_string())
        }
        NirKind::LamClosure { .. } => {
            return Err("the file evaluates to a function; apply it (e.g. to `Text`) so that it is a record".into());
        }
        _ => return Err(
            "the file holds something that is not plain data (a type or an unevaluated expression)"
                .into(),
        ),
    })
}
