//! A minimal DER reader: just enough ASN.1 to take a SubjectPublicKeyInfo (RFC 5280 §4.1) or a
//! PKCS#1 `RSAPublicKey` (RFC 8017 §A.1.1) apart, so public keys for RS256/ES256 can be loaded
//! without pulling in an ASN.1 crate, and to read the few X.509 certificate fields the Event Grid
//! certificate authentication needs (`eventgrid::cert`). It reads definite-length,
//! single-byte-tag TLVs only (all these structures use) and refuses anything else instead of
//! guessing.

/// Universal tags the key parsers use.
pub(crate) const TAG_INTEGER: u8 = 0x02;
pub(crate) const TAG_BIT_STRING: u8 = 0x03;
pub(crate) const TAG_NULL: u8 = 0x05;
pub(crate) const TAG_OID: u8 = 0x06;
pub(crate) const TAG_SEQUENCE: u8 = 0x30;
/// Further universal tags the X.509 certificate reader (`eventgrid::cert`) uses.
pub(crate) const TAG_BOOLEAN: u8 = 0x01;
pub(crate) const TAG_OCTET_STRING: u8 = 0x04;
pub(crate) const TAG_SET: u8 = 0x31;

/// The input is not the DER we expected. Callers turn it into their own error type; no detail is
/// kept because nothing can be done about a broken key except replacing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DerError;

/// A cursor over a run of DER TLVs.
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(input: &'a [u8]) -> Self {
        Reader { rest: input }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The tag of the next TLV without consuming it (`None` at the end): how OPTIONAL and
    /// DEFAULT fields are recognised.
    pub(crate) fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// Reads the next TLV and returns its tag and contents.
    pub(crate) fn read_any(&mut self) -> Result<(u8, &'a [u8]), DerError> {
        let (&tag, after_tag) = self.rest.split_first().ok_or(DerError)?;
        // High-tag-number form (low five bits all set) never occurs in the structures we read.
        if tag & 0x1f == 0x1f {
            return Err(DerError);
        }
        let (&first, mut after_len) = after_tag.split_first().ok_or(DerError)?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            // Long form: the low bits count the length octets. 0x80 alone is BER's indefinite
            // length, which DER forbids; more than four octets would describe > 4 GiB.
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 4 || after_len.len() < count {
                return Err(DerError);
            }
            let (octets, tail) = after_len.split_at(count);
            if octets[0] == 0 {
                return Err(DerError); // not minimal
            }
            let len = octets
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            if len < 0x80 {
                return Err(DerError); // DER requires the short form here
            }
            after_len = tail;
            len
        };
        if after_len.len() < len {
            return Err(DerError);
        }
        let (contents, rest) = after_len.split_at(len);
        self.rest = rest;
        Ok((tag, contents))
    }

    /// Reads the next TLV, which must carry `tag`.
    pub(crate) fn read(&mut self, tag: u8) -> Result<&'a [u8], DerError> {
        match self.read_any()? {
            (t, contents) if t == tag => Ok(contents),
            _ => Err(DerError),
        }
    }

    /// Fails unless every byte has been consumed (trailing garbage means a wrong structure).
    pub(crate) fn finish(&self) -> Result<(), DerError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(DerError)
        }
    }
}

/// Reads exactly one TLV with `tag` spanning the whole input.
pub(crate) fn read_only(input: &[u8], tag: u8) -> Result<&[u8], DerError> {
    let mut reader = Reader::new(input);
    let contents = reader.read(tag)?;
    reader.finish()?;
    Ok(contents)
}

/// Checks the contents of a DER INTEGER for a positive value and returns its magnitude without
/// the sign octet. Negative or non-minimal encodings are refused.
pub(crate) fn positive_integer(contents: &[u8]) -> Result<&[u8], DerError> {
    match contents {
        [] => Err(DerError),
        [first, ..] if first & 0x80 != 0 => Err(DerError),
        [0] => Ok(&contents[..1]),
        [0, second, ..] if second & 0x80 == 0 => Err(DerError),
        [0, rest @ ..] => Ok(rest),
        _ => Ok(contents),
    }
}

/// Encodes one TLV with a minimal definite length (short form below 128 bytes).
pub(crate) fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(contents.len() + 6);
    out.push(tag);
    let len = contents.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let octets = len.to_be_bytes();
        let skip = octets.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (octets.len() - skip) as u8);
        out.extend_from_slice(&octets[skip..]);
    }
    out.extend_from_slice(contents);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_short_and_long_lengths() {
        let mut short = Reader::new(&[0x04, 0x02, 0xaa, 0xbb, 0x05, 0x00]);
        assert_eq!(short.read_any(), Ok((0x04, &[0xaa, 0xbb][..])));
        assert_eq!(short.read(TAG_NULL), Ok(&[][..]));
        assert!(short.is_empty());

        let mut long = vec![0x04, 0x81, 0x80];
        long.extend([7u8; 0x80]);
        let mut reader = Reader::new(&long);
        let (_, contents) = reader.read_any().unwrap();
        assert_eq!(contents.len(), 0x80);
        assert!(reader.finish().is_ok());
    }

    #[test]
    fn rejects_non_minimal_and_indefinite_lengths() {
        // 0x81 0x05: a length below 128 in long form.
        assert_eq!(
            Reader::new(&[0x04, 0x81, 0x05, 0, 0, 0, 0, 0]).read_any(),
            Err(DerError)
        );
        // 0x82 0x00 0x80: leading zero length octet.
        assert_eq!(
            Reader::new(&[0x04, 0x82, 0x00, 0x80]).read_any(),
            Err(DerError)
        );
        // 0x80: indefinite length.
        assert_eq!(
            Reader::new(&[0x30, 0x80, 0x00, 0x00]).read_any(),
            Err(DerError)
        );
    }

    #[test]
    fn rejects_truncated_input_and_trailing_bytes() {
        assert_eq!(Reader::new(&[0x04, 0x03, 0x01]).read_any(), Err(DerError));
        assert_eq!(Reader::new(&[0x04]).read_any(), Err(DerError));
        assert_eq!(read_only(&[0x05, 0x00, 0x00], TAG_NULL), Err(DerError));
        assert_eq!(read_only(&[0x05, 0x00], TAG_INTEGER), Err(DerError));
    }

    #[test]
    fn rejects_high_tag_numbers() {
        assert_eq!(
            Reader::new(&[0x1f, 0x81, 0x01, 0x00]).read_any(),
            Err(DerError)
        );
    }

    #[test]
    fn strips_the_sign_octet_of_positive_integers() {
        assert_eq!(positive_integer(&[0x00, 0x80]), Ok(&[0x80][..]));
        assert_eq!(positive_integer(&[0x7f]), Ok(&[0x7f][..]));
        assert_eq!(positive_integer(&[0x00]), Ok(&[0x00][..]));
        assert_eq!(positive_integer(&[0x80]), Err(DerError), "negative");
        assert_eq!(
            positive_integer(&[0x00, 0x01]),
            Err(DerError),
            "non-minimal"
        );
        assert_eq!(positive_integer(&[]), Err(DerError));
    }
}
