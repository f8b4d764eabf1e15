//! Turns Dhall's "annot mismatch: A != B" (two whole record types, often kilobytes long) into
//! the few field paths where they differ.

#[derive(Debug, PartialEq)]
enum Ty {
    Record(Vec<(String, Ty)>),
    Union(Vec<(String, Option<Ty>)>),
    /// `Optional T` or `List T`.
    App(String, Box<Ty>),
    Other(String),
}

struct Parser<'a> {
    tokens: Vec<&'a str>,
    at: usize,
}

fn tokenize(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut i = 0;
    let b = s.as_bytes();
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if b"{}<>,:|()".contains(&c) {
            out.push(&s[i..i + 1]);
            i += 1;
        } else if c == b'`' {
            let end = s[i + 1..].find('`').map_or(s.len(), |e| i + 1 + e);
            out.push(&s[i + 1..end]);
            i = end + 1;
        } else {
            let start = i;
            while i < b.len() && !b[i].is_ascii_whitespace() && !b"{}<>,:|()`".contains(&b[i]) {
                i += 1;
            }
            out.push(&s[start..i]);
        }
    }
    out
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&'a str> {
        self.tokens.get(self.at).copied()
    }

    fn next(&mut self) -> Option<&'a str> {
        let t = self.peek();
        self.at += 1;
        t
    }

    fn ty(&mut self) -> Option<Ty> {
        match self.peek()? {
            "{" => {
                self.next();
                let mut fields = Vec::new();
                while self.peek()? != "}" {
                    let label = self.next()?.to_owned();
                    if self.next()? != ":" {
                        return None;
                    }
                    fields.push((label, self.ty()?));
                    if self.peek()? == "," {
                        self.next();
                    }
                }
                self.next();
                Some(Ty::Record(fields))
            }
            "<" => {
                self.next();
                let mut alts = Vec::new();
                while self.peek()? != ">" {
                    let label = self.next()?.to_owned();
                    let ty = if self.peek()? == ":" {
                        self.next();
                        Some(self.ty()?)
                    } else {
                        None
                    };
                    alts.push((label, ty));
                    if self.peek()? == "|" {
                        self.next();
                    }
                }
                self.next();
                Some(Ty::Union(alts))
            }
            word @ ("Optional" | "List")
                if matches!(self.tokens.get(self.at + 1), Some(&"{") | Some(&"<")) =>
            {
                self.next();
                Some(Ty::App(word.to_owned(), Box::new(self.ty()?)))
            }
            _ => {
                // An application such as `Optional Text`: keep its text.
                let mut parts = Vec::new();
                let mut depth = 0usize;
                while let Some(t) = self.peek() {
                    if depth == 0 && matches!(t, "," | "}" | ">" | "|" | ")" | "!=") {
                        break;
                    }
                    match t {
                        "{" | "<" | "(" => depth += 1,
                        "}" | ">" | ")" => depth = depth.saturating_sub(1),
                        _ => {}
                    }
                    parts.push(t);
                    self.next();
                }
                Some(Ty::Other(parts.join(" ")))
            }
        }
    }
}

fn render(ty: &Ty) -> String {
    match ty {
        Ty::Other(s) => s.clone(),
        Ty::Record(_) => "a record".into(),
        Ty::Union(_) => "a union".into(),
        Ty::App(f, x) => format!("{f} {}", render(x)),
    }
}

fn diff(path: &str, found: &Ty, expected: &Ty, out: &mut Vec<String>) {
    let join = |label: &str| {
        if path.is_empty() {
            label.to_owned()
        } else {
            format!("{path}.{label}")
        }
    };
    match (found, expected) {
        (Ty::Record(f), Ty::Record(e)) => {
            for (label, ty) in e {
                match f.iter().find(|(l, _)| l == label) {
                    Some((_, fty)) => diff(&join(label), fty, ty, out),
                    None => out.push(format!(
                        "{}: missing (the type needs {})",
                        join(label),
                        render(ty)
                    )),
                }
            }
            for (label, _) in f {
                if !e.iter().any(|(l, _)| l == label) {
                    out.push(format!("{}: not part of the type (a typo?)", join(label)));
                }
            }
        }
        (Ty::App(ff, fx), Ty::App(ef, ex)) if ff == ef => {
            let inner = if ff == "List" {
                format!("{path}[]")
            } else {
                path.to_owned()
            };
            diff(&inner, fx, ex, out)
        }
        (f, e) if f != e => out.push(format!(
            "{}: the value is {}, the type needs {}",
            if path.is_empty() { "(top level)" } else { path },
            render(f),
            render(e)
        )),
        _ => {}
    }
}

/// The differing field paths of an "annot mismatch: FOUND != EXPECTED" message, if it is one.
pub fn explain(message: &str) -> Option<Vec<String>> {
    let rest = &message[message.find("annot mismatch: ")? + "annot mismatch: ".len()..];
    let line = rest.lines().next()?;
    let (found, expected) = line.split_once(" != ")?;
    let found = Parser {
        tokens: tokenize(found),
        at: 0,
    }
    .ty()?;
    let expected = Parser {
        tokens: tokenize(expected),
        at: 0,
    }
    .ty()?;
    let mut out = Vec::new();
    diff("", &found, &expected, &mut out);
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::explain;

    #[test]
    fn names_the_fields_that_differ() {
        let msg = "Type error: error: annot mismatch: { aws : { region : Text, `scim-endpoint` : Natural, arm : Text }, x : Optional Text } != { aws : { region : Text, `scim-endpoint` : Text, arn : Text, flag : Bool }, x : Optional Text }\n  --> here";
        assert_eq!(
            explain(msg).unwrap(),
            [
                "aws.scim-endpoint: the value is Natural, the type needs Text",
                "aws.arn: missing (the type needs Text)",
                "aws.flag: missing (the type needs Bool)",
                "aws.arm: not part of the type (a typo?)",
            ]
        );
    }

    #[test]
    fn understands_lists_unions_and_optionals() {
        let msg = "annot mismatch: { m : List { mapKey : Text, mapValue : Natural }, u : < a | b : Text > } != { m : List { mapKey : Text, mapValue : Text }, u : < a | b : Text > }";
        assert_eq!(
            explain(msg).unwrap(),
            ["m[].mapValue: the value is Natural, the type needs Text"]
        );
        let msg =
            "annot mismatch: { s : Optional { arn : Natural } } != { s : Optional { arn : Text } }";
        assert_eq!(
            explain(msg).unwrap(),
            ["s.arn: the value is Natural, the type needs Text"]
        );
        assert_eq!(explain("something else"), None);
    }
}
