//! The charter's claim-constraint language.
//!
//! ```text
//! constraint := or
//! or         := and ("or" and)*
//! and        := unary ("and" unary)*
//! unary      := "not" unary | "(" or ")" | test
//! test       := path ("==" | "!=" | ">=" | "<=" | ">" | "<") literal
//!             | path "contains" literal
//!             | path "in" "[" literal ("," literal)* "]"
//! path       := CredentialType "." claim ("." claim)*
//! literal    := 'text' | "text" | number | true | false
//! ```
//!
//! A path names a claim of the holder's accepted credential of that type; a test holds if
//! the claim of some such credential satisfies it. A missing claim, or a claim of another
//! JSON type than the literal, satisfies no test (fail closed): `not` of such a test holds.
//! Strings compare by code point, so ISO dates (`'2026-04-01'`) compare as dates.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::fmt;

use serde_json::{Map, Value};

/// Longest constraint accepted, in bytes.
const MAX_CONSTRAINT_LEN: usize = 1024;
/// Deepest nesting of parentheses and `not`.
const MAX_DEPTH: usize = 32;

/// A constraint that does not parse, with the column (1-based, in characters) where it fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct ConstraintError {
    /// Where in the constraint the problem is.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

/// A parsed constraint.
#[derive(Debug, Clone, PartialEq)]
pub struct Constraint {
    source: String,
    expr: Expr,
}

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Or(Vec<Expr>),
    And(Vec<Expr>),
    Not(Box<Expr>),
    Compare(ClaimPath, CompareOp, Literal),
    Contains(ClaimPath, Literal),
    In(ClaimPath, Vec<Literal>),
}

/// `Type.claim.subclaim`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ClaimPath {
    type_name: String,
    claims: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CompareOp {
    Eq,
    Ne,
    Ge,
    Le,
    Gt,
    Lt,
}

#[derive(Debug, Clone, PartialEq)]
enum Literal {
    Text(String),
    Number(f64),
    Bool(bool),
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl Constraint {
    /// Parses a constraint.
    pub fn parse(source: &str) -> Result<Self, ConstraintError> {
        if source.len() > MAX_CONSTRAINT_LEN {
            return Err(ConstraintError {
                column: 1,
                message: format!("longer than {MAX_CONSTRAINT_LEN} bytes"),
            });
        }
        let tokens = tokenize(source)?;
        let mut parser = Parser {
            tokens,
            position: 0,
            depth: 0,
        };
        let expr = parser.or()?;
        if let Some(token) = parser.peek() {
            return Err(error_at(token.column, format!("unexpected {}", token.kind)));
        }
        Ok(Self {
            source: source.to_owned(),
            expr,
        })
    }

    /// The credential types the constraint reads.
    pub fn types(&self) -> BTreeSet<&str> {
        let mut types = BTreeSet::new();
        self.expr.collect_types(&mut types);
        types
    }

    /// Evaluates against the claims of the holder's credentials: `claims_of(type)` lists the
    /// claim maps of every accepted credential of that type.
    pub fn evaluate<'a>(&self, claims_of: &dyn Fn(&str) -> Vec<&'a Map<String, Value>>) -> bool {
        self.expr.evaluate(claims_of)
    }
}

impl Expr {
    fn collect_types<'a>(&'a self, types: &mut BTreeSet<&'a str>) {
        match self {
            Expr::Or(items) | Expr::And(items) => {
                items.iter().for_each(|item| item.collect_types(types))
            }
            Expr::Not(inner) => inner.collect_types(types),
            Expr::Compare(path, ..) | Expr::Contains(path, _) | Expr::In(path, _) => {
                types.insert(&path.type_name);
            }
        }
    }

    fn evaluate<'a>(&self, claims_of: &dyn Fn(&str) -> Vec<&'a Map<String, Value>>) -> bool {
        let any_value = |path: &ClaimPath, test: &dyn Fn(&Value) -> bool| {
            claims_of(&path.type_name)
                .into_iter()
                .filter_map(|claims| path.resolve(claims))
                .any(test)
        };
        match self {
            Expr::Or(items) => items.iter().any(|item| item.evaluate(claims_of)),
            Expr::And(items) => items.iter().all(|item| item.evaluate(claims_of)),
            Expr::Not(inner) => !inner.evaluate(claims_of),
            Expr::Compare(path, op, literal) => {
                any_value(path, &|value| compare(value, *op, literal))
            }
            Expr::Contains(path, literal) => any_value(path, &|value| {
                value
                    .as_array()
                    .is_some_and(|items| items.iter().any(|item| literal.equals(item)))
            }),
            Expr::In(path, literals) => any_value(path, &|value| {
                literals.iter().any(|literal| literal.equals(value))
            }),
        }
    }
}

impl ClaimPath {
    fn resolve<'a>(&self, claims: &'a Map<String, Value>) -> Option<&'a Value> {
        let (first, rest) = self.claims.split_first()?;
        rest.iter()
            .try_fold(claims.get(first)?, |value, claim| value.get(claim))
    }
}

impl Literal {
    fn equals(&self, value: &Value) -> bool {
        match (self, value) {
            (Literal::Text(text), Value::String(value)) => text == value,
            (Literal::Bool(flag), Value::Bool(value)) => flag == value,
            (Literal::Number(number), Value::Number(value)) => value.as_f64() == Some(*number),
            _ => false,
        }
    }

    fn ordering(&self, value: &Value) -> Option<Ordering> {
        match (self, value) {
            (Literal::Text(text), Value::String(value)) => Some(value.as_str().cmp(text.as_str())),
            (Literal::Number(number), Value::Number(value)) => value.as_f64()?.partial_cmp(number),
            (Literal::Bool(flag), Value::Bool(value)) => Some(value.cmp(flag)),
            _ => None,
        }
    }
}

fn compare(value: &Value, op: CompareOp, literal: &Literal) -> bool {
    let Some(ordering) = literal.ordering(value) else {
        return false;
    };
    match op {
        CompareOp::Eq => ordering == Ordering::Equal,
        CompareOp::Ne => ordering != Ordering::Equal,
        CompareOp::Ge => ordering != Ordering::Less,
        CompareOp::Le => ordering != Ordering::Greater,
        CompareOp::Gt => ordering == Ordering::Greater,
        CompareOp::Lt => ordering == Ordering::Less,
    }
}

#[derive(Debug, Clone, PartialEq)]
enum TokenKind {
    Word(String),
    Text(String),
    Number(f64),
    Op(CompareOp),
    Dot,
    Comma,
    Open,
    Close,
    OpenBracket,
    CloseBracket,
}

impl fmt::Display for TokenKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenKind::Word(word) => write!(f, "'{word}'"),
            TokenKind::Text(text) => write!(f, "string {text:?}"),
            TokenKind::Number(number) => write!(f, "number {number}"),
            TokenKind::Op(op) => write!(f, "operator {op:?}"),
            TokenKind::Dot => f.write_str("'.'"),
            TokenKind::Comma => f.write_str("','"),
            TokenKind::Open => f.write_str("'('"),
            TokenKind::Close => f.write_str("')'"),
            TokenKind::OpenBracket => f.write_str("'['"),
            TokenKind::CloseBracket => f.write_str("']'"),
        }
    }
}

#[derive(Debug, Clone)]
struct Token {
    kind: TokenKind,
    column: usize,
    width: usize,
}

fn error_at(column: usize, message: String) -> ConstraintError {
    ConstraintError { column, message }
}

impl Token {
    fn is_word(&self, word: &str) -> bool {
        matches!(&self.kind, TokenKind::Word(w) if w == word)
    }
}

fn tokenize(source: &str) -> Result<Vec<Token>, ConstraintError> {
    let chars: Vec<char> = source.chars().collect();
    let mut tokens = Vec::new();
    let mut at = 0;
    while at < chars.len() {
        let column = at + 1;
        let error = |message: &str| ConstraintError {
            column,
            message: message.into(),
        };
        let c = chars[at];
        let next = chars.get(at + 1).copied();
        let (kind, width) = match c {
            c if c.is_whitespace() => {
                at += 1;
                continue;
            }
            '.' => (TokenKind::Dot, 1),
            ',' => (TokenKind::Comma, 1),
            '(' => (TokenKind::Open, 1),
            ')' => (TokenKind::Close, 1),
            '[' => (TokenKind::OpenBracket, 1),
            ']' => (TokenKind::CloseBracket, 1),
            '=' if next == Some('=') => (TokenKind::Op(CompareOp::Eq), 2),
            '!' if next == Some('=') => (TokenKind::Op(CompareOp::Ne), 2),
            '>' if next == Some('=') => (TokenKind::Op(CompareOp::Ge), 2),
            '<' if next == Some('=') => (TokenKind::Op(CompareOp::Le), 2),
            '>' => (TokenKind::Op(CompareOp::Gt), 1),
            '<' => (TokenKind::Op(CompareOp::Lt), 1),
            '=' => return Err(error("use '==' to compare")),
            '\'' | '"' => {
                let mut text = String::new();
                let mut end = at + 1;
                loop {
                    match chars.get(end) {
                        None => return Err(error("string is not closed")),
                        Some('\\') => {
                            text.extend(chars.get(end + 1));
                            end += 2;
                        }
                        Some(&quote) if quote == c => break,
                        Some(&other) => {
                            text.push(other);
                            end += 1;
                        }
                    }
                }
                (TokenKind::Text(text), end + 1 - at)
            }
            c if c.is_ascii_digit() || (c == '-' && next.is_some_and(|n| n.is_ascii_digit())) => {
                let end = (at + 1..chars.len())
                    .find(|&i| !(chars[i].is_ascii_digit() || chars[i] == '.'))
                    .unwrap_or(chars.len());
                let text: String = chars[at..end].iter().collect();
                let number = text.parse().map_err(|_| error("not a number"))?;
                (TokenKind::Number(number), end - at)
            }
            c if c.is_alphabetic() || c == '_' => {
                let end = (at..chars.len())
                    .find(|&i| !(chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '-'))
                    .unwrap_or(chars.len());
                (TokenKind::Word(chars[at..end].iter().collect()), end - at)
            }
            other => return Err(error(&format!("unexpected character {other:?}"))),
        };
        tokens.push(Token {
            kind,
            column,
            width,
        });
        at += width;
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    position: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.position)
    }

    fn next(&mut self, expected: &str) -> Result<Token, ConstraintError> {
        let token = self
            .tokens
            .get(self.position)
            .cloned()
            .ok_or_else(|| ConstraintError {
                column: self.end_column(),
                message: format!("expected {expected} at the end"),
            })?;
        self.position += 1;
        Ok(token)
    }

    fn end_column(&self) -> usize {
        self.tokens
            .last()
            .map_or(1, |token| token.column + token.width)
    }

    fn eat_word(&mut self, word: &str) -> bool {
        let found = self.peek().is_some_and(|token| token.is_word(word));
        if found {
            self.position += 1;
        }
        found
    }

    fn or(&mut self) -> Result<Expr, ConstraintError> {
        let mut items = vec![self.and()?];
        while self.eat_word("or") {
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::Or(items)
        })
    }

    fn and(&mut self) -> Result<Expr, ConstraintError> {
        let mut items = vec![self.unary()?];
        while self.eat_word("and") {
            items.push(self.unary()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::And(items)
        })
    }

    fn unary(&mut self) -> Result<Expr, ConstraintError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ConstraintError {
                column: self.peek().map_or(1, |t| t.column),
                message: "nested too deeply".into(),
            });
        }
        let expr = if self.eat_word("not") {
            Expr::Not(Box::new(self.unary()?))
        } else if self
            .peek()
            .is_some_and(|token| token.kind == TokenKind::Open)
        {
            self.position += 1;
            let inner = self.or()?;
            let close = self.next("')'")?;
            if close.kind != TokenKind::Close {
                return Err(error_at(
                    close.column,
                    format!("expected ')', found {}", close.kind),
                ));
            }
            inner
        } else {
            self.test()?
        };
        self.depth -= 1;
        Ok(expr)
    }

    fn test(&mut self) -> Result<Expr, ConstraintError> {
        let path = self.path()?;
        let operator = self.next("an operator (==, !=, >=, <=, >, <, contains, in)")?;
        match operator.kind {
            TokenKind::Op(op) => Ok(Expr::Compare(path, op, self.literal()?)),
            TokenKind::Word(ref word) if word == "contains" => {
                Ok(Expr::Contains(path, self.literal()?))
            }
            TokenKind::Word(ref word) if word == "in" => Ok(Expr::In(path, self.list()?)),
            other => Err(error_at(
                operator.column,
                format!("expected an operator, found {other}"),
            )),
        }
    }

    fn path(&mut self) -> Result<ClaimPath, ConstraintError> {
        let first = self.next("a claim path such as CreditRatingCredential.score")?;
        let TokenKind::Word(type_name) = first.kind.clone() else {
            return Err(error_at(
                first.column,
                format!("expected a claim path, found {}", first.kind),
            ));
        };
        let mut claims = Vec::new();
        while self
            .peek()
            .is_some_and(|token| token.kind == TokenKind::Dot)
        {
            self.position += 1;
            let claim = self.next("a claim name")?;
            match claim.kind {
                TokenKind::Word(name) => claims.push(name),
                other => {
                    return Err(error_at(
                        claim.column,
                        format!("expected a claim name, found {other}"),
                    ));
                }
            }
        }
        if claims.is_empty() {
            return Err(error_at(
                first.column,
                format!("{type_name} needs a claim: write {type_name}.<claim>"),
            ));
        }
        Ok(ClaimPath { type_name, claims })
    }

    fn literal(&mut self) -> Result<Literal, ConstraintError> {
        let token = self.next("a value")?;
        match token.kind {
            TokenKind::Text(text) => Ok(Literal::Text(text)),
            TokenKind::Number(number) => Ok(Literal::Number(number)),
            TokenKind::Word(ref word) if word == "true" => Ok(Literal::Bool(true)),
            TokenKind::Word(ref word) if word == "false" => Ok(Literal::Bool(false)),
            other => Err(error_at(
                token.column,
                format!("expected a value ('text', number, true or false), found {other}"),
            )),
        }
    }

    fn list(&mut self) -> Result<Vec<Literal>, ConstraintError> {
        let open = self.next("'['")?;
        if open.kind != TokenKind::OpenBracket {
            return Err(error_at(
                open.column,
                format!("expected '[' after in, found {}", open.kind),
            ));
        }
        let mut literals = vec![self.literal()?];
        loop {
            let token = self.next("',' or ']'")?;
            match token.kind {
                TokenKind::Comma => literals.push(self.literal()?),
                TokenKind::CloseBracket => return Ok(literals),
                other => {
                    return Err(error_at(
                        token.column,
                        format!("expected ',' or ']', found {other}"),
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
