//! Splits COPY FROM STDIN's input into rows of fields, in text, CSV or binary
//! format. CopyData messages cut the input anywhere (inside a line, inside a
//! quoted CSV field, inside a binary tuple); the reader keeps only the bytes of
//! the row it has not finished, so memory does not grow with the input.

use bytes::{Buf, BytesMut};
use strata_common::{Result, StrataError};
use strata_session::{CopyFormat, CopyOptions};

const BINARY_SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

/// One field of an input row.
#[derive(Debug, PartialEq)]
pub(crate) enum Field {
    Null,
    /// Text and CSV: the value's text, escapes resolved.
    Text(String),
    /// Binary: the value in its type's binary format.
    Binary(Vec<u8>),
}

/// A row and the input line it ends on, as Postgres counts (the row number in
/// binary format).
pub(crate) type Row = (u64, Vec<Field>);

pub(crate) struct CopyReader {
    options: CopyOptions,
    buf: BytesMut,
    /// CSV: how far `buf` was scanned for the end of the row, and whether that
    /// point is inside quotes.
    scanned: usize,
    in_quotes: bool,
    /// Lines (text, CSV) or tuples (binary) consumed so far.
    line: u64,
    /// Binary: the header has been read.
    started: bool,
    /// The end-of-data marker (`\.` or the binary trailer) was read.
    ended: bool,
    /// HEADER: the first record names the columns and is not data.
    skip_header: bool,
}

fn bad(msg: impl Into<String>) -> StrataError {
    StrataError::BadCopyFormat(msg.into())
}

impl CopyReader {
    pub(crate) fn new(options: CopyOptions) -> Self {
        CopyReader {
            skip_header: options.header,
            options,
            buf: BytesMut::new(),
            scanned: 0,
            in_quotes: false,
            line: 0,
            started: false,
            ended: false,
        }
    }

    /// Bytes held for a row that has not ended yet.
    pub(crate) fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The line (or tuple) the reader is at, for errors outside a row.
    pub(crate) fn line(&self) -> u64 {
        self.line.max(1)
    }

    pub(crate) fn feed(&mut self, data: &[u8]) {
        if !self.ended {
            self.buf.extend_from_slice(data);
        }
    }

    /// The next complete row, if the input holds one. `at_end`: no more input
    /// will come, so an unterminated last line is a row.
    pub(crate) fn next_row(&mut self, at_end: bool) -> Result<Option<Row>> {
        loop {
            if self.ended {
                return Ok(None);
            }
            let row = match self.options.format {
                CopyFormat::Binary => return self.next_binary(at_end),
                CopyFormat::Text => self.next_line(at_end).map(|l| self.text_fields(&l)),
                CopyFormat::Csv => self.next_csv_record(at_end)?.map(|r| self.csv_fields(&r)),
            };
            let Some(fields) = row else {
                return Ok(None);
            };
            let fields = fields?;
            if std::mem::take(&mut self.skip_header) {
                continue;
            }
            if let Some(fields) = fields {
                return Ok(Some((self.line, fields)));
            }
        }
    }

    /// Text format: the next line without its line ending.
    fn next_line(&mut self, at_end: bool) -> Option<Vec<u8>> {
        // Resume where the last look stopped: a long line arriving in many
        // small CopyData messages is scanned once, not once per message.
        let from = self.scanned.min(self.buf.len());
        let end = match self.buf[from..].iter().position(|b| *b == b'\n') {
            Some(i) => from + i + 1,
            None if at_end && !self.buf.is_empty() => self.buf.len(),
            None => {
                self.scanned = self.buf.len();
                return None;
            }
        };
        self.scanned = 0;
        let mut line = self.buf.split_to(end).to_vec();
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        self.line += 1;
        Some(line)
    }

    /// Text format fields, or None at the end-of-data marker.
    fn text_fields(&mut self, line: &[u8]) -> Result<Option<Vec<Field>>> {
        if line == b"\\." {
            self.ended = true;
            return Ok(None);
        }
        let delimiter = self.options.delimiter as u8;
        let mut fields = vec![];
        let mut raw_start = 0;
        let mut value = Vec::new();
        let mut i = 0;
        loop {
            let at_end = i >= line.len();
            if at_end || line[i] == delimiter {
                let raw = &line[raw_start..i.min(line.len())];
                fields.push(if raw == self.options.null.as_bytes() {
                    Field::Null
                } else {
                    Field::Text(utf8(std::mem::take(&mut value))?)
                });
                value.clear();
                if at_end {
                    break;
                }
                i += 1;
                raw_start = i;
                continue;
            }
            if line[i] != b'\\' || i + 1 >= line.len() {
                value.push(line[i]);
                i += 1;
                continue;
            }
            let c = line[i + 1];
            i += 2;
            match c {
                b'n' => value.push(b'\n'),
                b'r' => value.push(b'\r'),
                b't' => value.push(b'\t'),
                b'b' => value.push(0x08),
                b'f' => value.push(0x0c),
                b'v' => value.push(0x0b),
                b'0'..=b'7' => {
                    let mut n = u32::from(c - b'0');
                    for _ in 0..2 {
                        match line.get(i) {
                            Some(d @ b'0'..=b'7') => {
                                n = n * 8 + u32::from(d - b'0');
                                i += 1;
                            }
                            _ => break,
                        }
                    }
                    value.push((n & 0xff) as u8);
                }
                b'x' if line.get(i).is_some_and(u8::is_ascii_hexdigit) => {
                    let mut n = 0u8;
                    for _ in 0..2 {
                        match line.get(i).and_then(|d| (*d as char).to_digit(16)) {
                            Some(d) => {
                                n = n * 16 + d as u8;
                                i += 1;
                            }
                            None => break,
                        }
                    }
                    value.push(n);
                }
                other => value.push(other),
            }
        }
        Ok(Some(fields))
    }

    /// CSV: the next record, which may span lines inside quotes.
    fn next_csv_record(&mut self, at_end: bool) -> Result<Option<Vec<u8>>> {
        let (quote, escape) = (self.options.quote as u8, self.options.escape as u8);
        let mut i = self.scanned;
        let mut end = None;
        while i < self.buf.len() {
            let b = self.buf[i];
            if self.in_quotes {
                if b == escape && escape != quote {
                    // An escape takes the next byte whatever it is.
                    if i + 1 >= self.buf.len() && !at_end {
                        break;
                    }
                    i += 2;
                    continue;
                }
                if b == quote {
                    if i + 1 >= self.buf.len() && !at_end {
                        break;
                    }
                    if self.buf.get(i + 1) == Some(&quote) {
                        i += 2;
                        continue;
                    }
                    self.in_quotes = false;
                }
            } else if b == quote {
                self.in_quotes = true;
            } else if b == b'\n' {
                end = Some(i + 1);
                break;
            }
            i += 1;
        }
        self.scanned = i;
        let end = match end {
            Some(e) => e,
            None if at_end && !self.buf.is_empty() => {
                if self.in_quotes {
                    return Err(bad("unterminated CSV quoted field"));
                }
                self.buf.len()
            }
            None => return Ok(None),
        };
        self.scanned = 0;
        let mut record = self.buf.split_to(end).to_vec();
        if record.last() == Some(&b'\n') {
            record.pop();
        }
        if record.last() == Some(&b'\r') {
            record.pop();
        }
        self.line += 1 + record.iter().filter(|b| **b == b'\n').count() as u64;
        Ok(Some(record))
    }

    /// CSV fields, or None at the end-of-data marker.
    fn csv_fields(&mut self, record: &[u8]) -> Result<Option<Vec<Field>>> {
        if record == b"\\." {
            self.ended = true;
            return Ok(None);
        }
        let o = &self.options;
        let (delimiter, quote, escape) = (o.delimiter as u8, o.quote as u8, o.escape as u8);
        let null = o.null.as_bytes();
        let mut fields = vec![];
        let mut value = Vec::new();
        let mut quoted = false;
        let mut in_quotes = false;
        let mut i = 0;
        loop {
            if i >= record.len() || (!in_quotes && record[i] == delimiter) {
                // Only an unquoted field can be NULL: "" is an empty string.
                fields.push(if !quoted && value == null {
                    Field::Null
                } else {
                    Field::Text(utf8(std::mem::take(&mut value))?)
                });
                value.clear();
                quoted = false;
                if i >= record.len() {
                    break;
                }
                i += 1;
                continue;
            }
            let b = record[i];
            if in_quotes {
                if b == escape
                    && record
                        .get(i + 1)
                        .is_some_and(|n| *n == quote || *n == escape)
                {
                    value.push(record[i + 1]);
                    i += 2;
                    continue;
                }
                if b == quote {
                    in_quotes = false;
                } else {
                    value.push(b);
                }
            } else if b == quote {
                in_quotes = true;
                quoted = true;
            } else {
                value.push(b);
            }
            i += 1;
        }
        Ok(Some(fields))
    }

    /// Binary format: the header once, then the next tuple.
    fn next_binary(&mut self, at_end: bool) -> Result<Option<Row>> {
        if !self.started {
            if self.buf.len() < BINARY_SIGNATURE.len() + 8 {
                return truncated(at_end && !self.buf.is_empty());
            }
            if &self.buf[..BINARY_SIGNATURE.len()] != BINARY_SIGNATURE {
                return Err(bad("COPY file signature not recognized"));
            }
            let ext = u32::from_be_bytes(slice4(&self.buf[BINARY_SIGNATURE.len() + 4..])) as usize;
            let header = BINARY_SIGNATURE.len() + 8 + ext;
            if self.buf.len() < header {
                return truncated(at_end);
            }
            self.buf.advance(header);
            self.started = true;
        }
        if self.buf.len() < 2 {
            return truncated(at_end && !self.buf.is_empty());
        }
        let count = i16::from_be_bytes([self.buf[0], self.buf[1]]);
        if count == -1 {
            self.ended = true;
            self.buf.clear();
            return Ok(None);
        }
        if count < 0 {
            return Err(bad(format!("invalid field count {count}")));
        }
        // Find the whole tuple before taking any of it.
        let mut at = 2;
        let mut spans = Vec::with_capacity(count as usize);
        for _ in 0..count {
            if self.buf.len() < at + 4 {
                return truncated(at_end);
            }
            let len = i32::from_be_bytes(slice4(&self.buf[at..]));
            at += 4;
            if len < 0 {
                spans.push(None);
                continue;
            }
            let len = len as usize;
            if self.buf.len() < at + len {
                return truncated(at_end);
            }
            spans.push(Some((at, len)));
            at += len;
        }
        let fields = spans
            .into_iter()
            .map(|s| match s {
                None => Field::Null,
                Some((start, len)) => Field::Binary(self.buf[start..start + len].to_vec()),
            })
            .collect();
        self.buf.advance(at);
        self.line += 1;
        Ok(Some((self.line, fields)))
    }
}

fn slice4(b: &[u8]) -> [u8; 4] {
    [b[0], b[1], b[2], b[3]]
}

/// More input is needed; at the end of the input that is an error.
fn truncated(at_end: bool) -> Result<Option<Row>> {
    if at_end {
        Err(bad("unexpected EOF in COPY data"))
    } else {
        Ok(None)
    }
}

fn utf8(bytes: Vec<u8>) -> Result<String> {
    String::from_utf8(bytes)
        .map_err(|_| StrataError::InvalidText("invalid byte sequence for encoding \"UTF8\"".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(format: CopyFormat) -> CopyOptions {
        let csv = format == CopyFormat::Csv;
        CopyOptions {
            format,
            delimiter: if csv { ',' } else { '\t' },
            null: if csv { String::new() } else { "\\N".into() },
            header: false,
            quote: '"',
            escape: '"',
        }
    }

    /// Feeds the input one byte at a time, the worst split there is.
    fn rows(opts: CopyOptions, input: &[u8]) -> Result<Vec<Row>> {
        let mut r = CopyReader::new(opts);
        let mut out = vec![];
        for b in input {
            r.feed(&[*b]);
            while let Some(row) = r.next_row(false)? {
                out.push(row);
            }
        }
        while let Some(row) = r.next_row(true)? {
            out.push(row);
        }
        Ok(out)
    }

    fn text(s: &str) -> Field {
        Field::Text(s.into())
    }

    #[test]
    fn text_format_escapes_and_nulls() {
        let got = rows(
            options(CopyFormat::Text),
            b"1\ta\\tb\\\\c\t\\N\n2\t\\101\\x42\t\r\n\\.\nignored\n",
        )
        .unwrap();
        assert_eq!(
            got,
            vec![
                (1, vec![text("1"), text("a\tb\\c"), Field::Null]),
                (2, vec![text("2"), text("AB"), text("")]),
            ]
        );
    }

    #[test]
    fn csv_quotes_span_lines_and_keep_empty_strings() {
        let mut opts = options(CopyFormat::Csv);
        opts.header = true;
        let got = rows(opts, b"id,body\n1,\"a,\"\"b\"\"\nc\"\n2,\n3,\"\"").unwrap();
        assert_eq!(
            got,
            vec![
                (3, vec![text("1"), text("a,\"b\"\nc")]),
                (4, vec![text("2"), Field::Null]),
                (5, vec![text("3"), text("")]),
            ]
        );
    }

    #[test]
    fn csv_unterminated_quote_is_an_error() {
        let err = rows(options(CopyFormat::Csv), b"1,\"abc\n").unwrap_err();
        assert_eq!(err.sqlstate(), "22P04");
    }

    #[test]
    fn binary_tuples_and_trailer() {
        let mut input = BINARY_SIGNATURE.to_vec();
        input.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
        input.extend_from_slice(&[0, 2, 0, 0, 0, 4, 0, 0, 0, 7, 0xff, 0xff, 0xff, 0xff]);
        input.extend_from_slice(&[0xff, 0xff]);
        let got = rows(options(CopyFormat::Binary), &input).unwrap();
        assert_eq!(
            got,
            vec![(1, vec![Field::Binary(vec![0, 0, 0, 7]), Field::Null])]
        );
        let err = rows(options(CopyFormat::Binary), &input[..20]).unwrap_err();
        assert_eq!(err.sqlstate(), "22P04");
    }
}
