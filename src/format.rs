//! The subset of Java's `String.format` that meshStack's name patterns use: `%s` (the next
//! argument), `%N$s` (argument N, 1-based, which does not move the next-argument index, as in
//! Java) and `%%`. Everything else is refused when the pattern is compiled, so a pattern that
//! passed `config check` cannot fail at render time.

use std::fmt;

/// A compiled pattern: literal text and argument slots.
///
/// ```
/// use aws_replicator::format::Pattern;
///
/// let pattern = Pattern::compile("%s.%s.%4$s", 4).unwrap();
/// assert_eq!(pattern.render(&["acme", "web", "4711", "admin"]), "acme.web.admin");
/// assert!(Pattern::compile("%s.%d", 4).is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    source: String,
    segments: Vec<Segment>,
    arity: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Arg(usize),
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("`{spec}` at position {at} is not supported; use %s, %N$s (N from 1 to {arity}) or %%")]
    Unsupported {
        spec: String,
        at: usize,
        arity: usize,
    },
    #[error("the pattern ends in a lone `%`; write %% for a percent sign")]
    TrailingPercent,
    #[error("`{spec}` at position {at} asks for argument {index}, but only {arity} are given")]
    MissingArgument {
        spec: String,
        at: usize,
        index: usize,
        arity: usize,
    },
}

impl Pattern {
    /// Compiles `source` for a formatter that receives `arity` arguments.
    pub fn compile(source: &str, arity: usize) -> Result<Self, PatternError> {
        let mut segments = Vec::new();
        let mut literal = String::new();
        let mut next_ordinary = 0usize;
        let mut chars = source.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            if c != '%' {
                literal.push(c);
                continue;
            }
            // Collect the conversion: optional digits, optional `$`, then one conversion char.
            let mut digits = String::new();
            while let Some(&(_, d)) = chars.peek() {
                if d.is_ascii_digit() {
                    digits.push(d);
                    chars.next();
                } else {
                    break;
                }
            }
            let dollar = matches!(chars.peek(), Some(&(_, '$')));
            if dollar {
                chars.next();
            }
            let Some((end, conv)) = chars.next() else {
                return Err(if digits.is_empty() && !dollar {
                    PatternError::TrailingPercent
                } else {
                    PatternError::Unsupported {
                        spec: source[at..].to_owned(),
                        at,
                        arity,
                    }
                });
            };
            let spec = source[at..end + conv.len_utf8()].to_owned();
            let unsupported = || PatternError::Unsupported {
                spec: spec.clone(),
                at,
                arity,
            };
            let index = match (digits.as_str(), dollar, conv) {
                ("", false, '%') => {
                    literal.push('%');
                    continue;
                }
                ("", false, 's') => {
                    next_ordinary += 1;
                    next_ordinary
                }
                (n, true, 's') if !n.is_empty() => match n.parse::<usize>() {
                    Ok(i) if i >= 1 => i,
                    _ => return Err(unsupported()),
                },
                _ => return Err(unsupported()),
            };
            if index > arity {
                return Err(PatternError::MissingArgument {
                    spec,
                    at,
                    index,
                    arity,
                });
            }
            if !literal.is_empty() {
                segments.push(Segment::Literal(std::mem::take(&mut literal)));
            }
            segments.push(Segment::Arg(index - 1));
        }
        if !literal.is_empty() {
            segments.push(Segment::Literal(literal));
        }
        Ok(Self {
            source: source.to_owned(),
            segments,
            arity,
        })
    }

    /// Fills the pattern. `args` must hold the `arity` arguments the pattern was compiled for.
    pub fn render(&self, args: &[&str]) -> String {
        let mut out = String::with_capacity(self.source.len() + 32);
        self.render_into(args, &mut out);
        out
    }

    /// [`Pattern::render`], appending to `out`: lets a caller that renders many names reuse
    /// one buffer.
    pub fn render_into(&self, args: &[&str], out: &mut String) {
        assert_eq!(args.len(), self.arity, "pattern compiled for another arity");
        for segment in &self.segments {
            match segment {
                Segment::Literal(text) => out.push_str(text),
                Segment::Arg(i) => out.push_str(args[*i]),
            }
        }
    }

    /// Whether argument `n` (1-based) appears in the output.
    pub fn uses(&self, n: usize) -> bool {
        self.segments
            .iter()
            .any(|s| matches!(s, Segment::Arg(i) if *i + 1 == n))
    }

    /// The literal text of the pattern, `%%` already turned into `%`.
    pub fn literal_text(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Literal(t) => Some(t.as_str()),
            Segment::Arg(_) => None,
        })
    }

    /// The longest output, given the longest value of each argument.
    pub fn max_len(&self, arg_max_len: &[usize]) -> usize {
        self.segments
            .iter()
            .map(|s| match s {
                Segment::Literal(t) => t.chars().count(),
                Segment::Arg(i) => arg_max_len[*i],
            })
            .sum()
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn render(p: &str, args: &[&str]) -> Result<String, PatternError> {
        Pattern::compile(p, args.len()).map(|p| p.render(args))
    }

    #[test]
    fn matches_java_for_the_documented_patterns() {
        // Expected values are what java.lang.String.format returns for the same input.
        let args = ["acme", "web", "4711", "admin"];
        assert_eq!(render("%s.%s.%4$s", &args).unwrap(), "acme.web.admin");
        assert_eq!(render("%s.%s", &args[..3]).unwrap(), "acme.web");
        assert_eq!(render("%2$s-%s-%s", &args[..2]).unwrap(), "web-acme-web");
        assert_eq!(render("%3$s_%4$s", &args).unwrap(), "4711_admin");
        assert_eq!(render("100%% %s", &args[..1]).unwrap(), "100% acme");
        assert_eq!(
            render("aws+%s@meshcloud.io", &["acme.web"]).unwrap(),
            "aws+acme.web@meshcloud.io"
        );
        assert_eq!(render("plain", &[]).unwrap(), "plain");
        assert_eq!(render("ä%sö", &["ü"]).unwrap(), "äüö");
    }

    #[test]
    fn refuses_what_java_would_format_differently_or_reject() {
        let e = |p: &str| Pattern::compile(p, 4).unwrap_err();
        assert!(matches!(e("%d"), PatternError::Unsupported { .. }));
        assert!(matches!(e("%S"), PatternError::Unsupported { .. }));
        assert!(matches!(e("%n"), PatternError::Unsupported { .. }));
        assert!(matches!(e("%0$s"), PatternError::Unsupported { .. }));
        assert!(matches!(e("%10s"), PatternError::Unsupported { .. }));
        assert!(matches!(e("%-s"), PatternError::Unsupported { .. }));
        assert!(matches!(e("%<s"), PatternError::Unsupported { .. }));
        assert!(matches!(e("%1$"), PatternError::Unsupported { .. }));
        assert_eq!(e("abc%"), PatternError::TrailingPercent);
        assert!(matches!(
            e("%5$s"),
            PatternError::MissingArgument { index: 5, .. }
        ));
        assert!(matches!(
            e("%s%s%s%s%s"),
            PatternError::MissingArgument { index: 5, .. }
        ));
        assert!(matches!(
            e("%99999999999999999999999$s"),
            PatternError::Unsupported { .. }
        ));
    }

    #[test]
    fn errors_say_where_and_what_to_write() {
        let msg = Pattern::compile("%s.%d", 4).unwrap_err().to_string();
        assert_eq!(
            msg,
            "`%d` at position 3 is not supported; use %s, %N$s (N from 1 to 4) or %%"
        );
    }

    #[test]
    fn knows_which_arguments_it_uses() {
        let p = Pattern::compile("%s.%s.%4$s", 4).unwrap();
        assert!(p.uses(1) && p.uses(2) && !p.uses(3) && p.uses(4));
        assert_eq!(p.max_len(&[16, 30, 20, 10]), 16 + 1 + 30 + 1 + 10);
    }

    /// A reference model written the other way round: expand each spec in one pass over the
    /// string with Java's documented index rules.
    fn reference(p: &str, args: &[String]) -> String {
        let mut out = String::new();
        let mut ordinary = 0;
        let b = p.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' {
                if b[i + 1] == b'%' {
                    out.push('%');
                    i += 2;
                } else if b[i + 1] == b's' {
                    out.push_str(&args[ordinary]);
                    ordinary += 1;
                    i += 2;
                } else {
                    let n = (b[i + 1] - b'0') as usize;
                    out.push_str(&args[n - 1]);
                    i += 4; // %N$s with one digit
                }
            } else {
                out.push(b[i] as char);
                i += 1;
            }
        }
        out
    }

    fn token() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z.\\-_+@]{0,3}",
            Just("%s".to_owned()),
            Just("%%".to_owned()),
            (1usize..=4).prop_map(|n| format!("%{n}$s")),
        ]
    }

    proptest! {
        #[test]
        fn agrees_with_the_reference(
            tokens in proptest::collection::vec(token(), 0..8),
            args in proptest::collection::vec("[a-z0-9\\-]{0,6}", 4),
        ) {
            let pattern: String = tokens.concat();
            let ordinary = tokens.iter().filter(|t| *t == "%s").count();
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            match Pattern::compile(&pattern, 4) {
                Ok(p) => {
                    prop_assert!(ordinary <= 4);
                    prop_assert_eq!(p.render(&refs), reference(&pattern, &args));
                }
                Err(PatternError::MissingArgument { .. }) => prop_assert!(ordinary > 4),
                Err(other) => prop_assert!(false, "unexpected {other}"),
            }
        }

        #[test]
        fn never_panics_on_any_input(pattern in ".{0,24}", arity in 0usize..6) {
            if let Ok(p) = Pattern::compile(&pattern, arity) {
                let args = vec!["x"; arity];
                let _ = p.render(&args);
            }
        }
    }
}
