//! Postgres' binary array format, read with every count checked against the
//! bytes that are actually there. The header's dimension lengths come from
//! the client: a decoder that reserves room for them up front lets four bytes
//! ask for gigabytes, so nothing here is sized by them.
//!
//! Layout: ndim (i32), has-nulls flag (i32), element oid (u32), then per
//! dimension its length and lower bound (i32 each), then each element as a
//! length (i32, -1 for NULL) and that many bytes.

use strata_common::{Result, StrataError};

/// The elements of a one-dimensional (or empty) binary array, each as its
/// raw bytes (None for NULL).
pub(crate) fn elements(raw: &[u8]) -> Result<Vec<Option<&[u8]>>> {
    let mut r = Reader { raw, at: 0 };
    let ndim = r.i32()?;
    let _has_nulls = r.i32()?;
    let _elem_oid = r.i32()?;
    let count = match ndim {
        0 => 0usize,
        1 => {
            let len = r.i32()?;
            let _lower_bound = r.i32()?;
            usize::try_from(len).map_err(|_| bad("negative array length"))?
        }
        n if n < 0 => return Err(bad("negative number of dimensions")),
        _ => {
            return Err(StrataError::unsupported(
                "multidimensional arrays are not supported",
            ));
        }
    };
    // Each element takes at least its 4-byte length: a count the bytes
    // cannot hold is a lie, caught before it sizes anything.
    if count > r.remaining() / 4 {
        return Err(bad("array length exceeds the data sent"));
    }
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let len = r.i32()?;
        if len < 0 {
            out.push(None);
            continue;
        }
        out.push(Some(r.take(len as usize)?));
    }
    if r.remaining() != 0 {
        return Err(bad("trailing bytes after the array's elements"));
    }
    Ok(out)
}

fn bad(msg: &str) -> StrataError {
    StrataError::InvalidText(format!("invalid binary array: {msg}"))
}

struct Reader<'a> {
    raw: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.raw.len() - self.at
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(bad("an element is longer than the data sent"));
        }
        let s = &self.raw[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }

    fn i32(&mut self) -> Result<i32> {
        let b = self.take(4).map_err(|_| bad("truncated header"))?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(ndim: i32, len: i32) -> Vec<u8> {
        let mut v = vec![];
        v.extend_from_slice(&ndim.to_be_bytes());
        v.extend_from_slice(&0i32.to_be_bytes());
        v.extend_from_slice(&23u32.to_be_bytes());
        if ndim == 1 {
            v.extend_from_slice(&len.to_be_bytes());
            v.extend_from_slice(&1i32.to_be_bytes());
        }
        v
    }

    #[test]
    fn reads_elements_and_nulls() {
        let mut v = header(1, 2);
        v.extend_from_slice(&4i32.to_be_bytes());
        v.extend_from_slice(&7i32.to_be_bytes());
        v.extend_from_slice(&(-1i32).to_be_bytes());
        let els = elements(&v).unwrap();
        assert_eq!(els, vec![Some(&7i32.to_be_bytes()[..]), None]);
        assert!(elements(&header(0, 0)).unwrap().is_empty());
    }

    #[test]
    fn a_huge_count_is_refused_before_allocating() {
        for len in [i32::MAX, 1 << 20, 3] {
            let e = elements(&header(1, len)).unwrap_err();
            assert_eq!(e.sqlstate(), "22P02", "{len}");
        }
        assert!(elements(&header(1, -5)).is_err());
        assert!(elements(&header(-1, 0)).is_err());
        assert_eq!(elements(&header(2, 0)).unwrap_err().sqlstate(), "0A000");
        let mut v = header(1, 1);
        v.extend_from_slice(&i32::MAX.to_be_bytes());
        assert!(elements(&v).is_err());
        assert!(elements(&[1, 2, 3]).is_err());
    }
}
