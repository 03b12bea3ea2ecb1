//! A small token cursor for Strata's own statements, built on sqlparser's tokenizer
//! so quoting, comments and string escapes behave exactly as in the rest of SQL.

use crate::ObjectRef;
use crate::sqlparser::tokenizer::{Token, Word};
use strata_common::{Result, StrataError};

pub(crate) struct Cursor {
    toks: Vec<Token>,
    pos: usize,
}

impl Cursor {
    /// Builds a cursor over the tokens, dropping whitespace and comments.
    pub(crate) fn new(toks: &[Token]) -> Cursor {
        let toks = toks
            .iter()
            .filter(|t| !matches!(t, Token::Whitespace(_)))
            .cloned()
            .collect();
        Cursor { toks, pos: 0 }
    }

    pub(crate) fn peek(&self) -> Option<&Token> {
        self.toks.get(self.pos)
    }

    /// The token `n` places ahead of the next one.
    pub(crate) fn peek_nth(&self, n: usize) -> Option<&Token> {
        self.toks.get(self.pos + n)
    }

    /// Takes the next token, whatever it is.
    pub(crate) fn next_token(&mut self) -> Option<Token> {
        let t = self.toks.get(self.pos).cloned();
        if t.is_some() {
            self.pos += 1;
        }
        t
    }

    fn word_at(&self, i: usize) -> Option<&Word> {
        match self.toks.get(i) {
            Some(Token::Word(w)) => Some(w),
            _ => None,
        }
    }

    /// True when the next tokens are exactly these (unquoted) keywords.
    pub(crate) fn peek_words(&self, words: &[&str]) -> bool {
        words.iter().enumerate().all(|(i, kw)| {
            self.word_at(self.pos + i)
                .is_some_and(|w| w.quote_style.is_none() && w.value.eq_ignore_ascii_case(kw))
        })
    }

    /// Consumes the keywords if they come next.
    pub(crate) fn eat_words(&mut self, words: &[&str]) -> bool {
        if self.peek_words(words) {
            self.pos += words.len();
            true
        } else {
            false
        }
    }

    pub(crate) fn expect_words(&mut self, words: &[&str]) -> Result<()> {
        if self.eat_words(words) {
            Ok(())
        } else {
            Err(self.unexpected(&words.join(" ")))
        }
    }

    pub(crate) fn eat(&mut self, tok: &Token) -> bool {
        if self.peek() == Some(tok) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    pub(crate) fn expect(&mut self, tok: &Token) -> Result<()> {
        if self.eat(tok) {
            Ok(())
        } else {
            Err(self.unexpected(&tok.to_string()))
        }
    }

    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.toks.len()
            || (self.pos + 1 == self.toks.len() && self.toks[self.pos] == Token::SemiColon)
    }

    pub(crate) fn expect_end(&self) -> Result<()> {
        if self.at_end() {
            Ok(())
        } else {
            Err(self.unexpected("end of statement"))
        }
    }

    pub(crate) fn unexpected(&self, expected: &str) -> StrataError {
        match self.peek() {
            Some(t) => StrataError::syntax(format!(
                "syntax error at or near \"{t}\": expected {expected}"
            )),
            None => {
                StrataError::syntax(format!("syntax error at end of input: expected {expected}"))
            }
        }
    }

    /// An identifier, folded to lower case unless quoted.
    pub(crate) fn ident(&mut self) -> Result<String> {
        match self.peek() {
            Some(Token::Word(w)) => {
                let v = if w.quote_style.is_some() {
                    w.value.clone()
                } else {
                    w.value.to_lowercase()
                };
                self.pos += 1;
                Ok(v)
            }
            _ => Err(self.unexpected("an identifier")),
        }
    }

    pub(crate) fn object_ref(&mut self) -> Result<ObjectRef> {
        let first = self.ident()?;
        if self.eat(&Token::Period) {
            let name = self.ident()?;
            Ok(ObjectRef {
                namespace: Some(first),
                name,
            })
        } else {
            Ok(ObjectRef {
                namespace: None,
                name: first,
            })
        }
    }

    /// A literal value as text: a string, a number or a bare word (TRUE, public).
    pub(crate) fn literal(&mut self) -> Result<String> {
        let v = match self.peek() {
            Some(Token::SingleQuotedString(s)) => s.clone(),
            Some(Token::Number(n, _)) => n.clone(),
            Some(Token::Word(w)) => w.value.clone(),
            _ => return Err(self.unexpected("a value")),
        };
        self.pos += 1;
        Ok(v)
    }

    /// A single-quoted string, nothing else.
    pub(crate) fn string(&mut self) -> Result<String> {
        match self.peek() {
            Some(Token::SingleQuotedString(s)) => {
                let v = s.clone();
                self.pos += 1;
                Ok(v)
            }
            _ => Err(self.unexpected("a quoted string")),
        }
    }

    pub(crate) fn number(&mut self) -> Result<u64> {
        match self.peek() {
            Some(Token::Number(n, _)) => {
                let v = n.parse::<u64>().map_err(|_| {
                    StrataError::InvalidParameterValue(format!("invalid number \"{n}\""))
                })?;
                self.pos += 1;
                Ok(v)
            }
            _ => Err(self.unexpected("a number")),
        }
    }
}
