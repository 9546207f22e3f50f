//! X.509 client-certificate authentication for the Event Grid mode (`eventgrid-mqtt.md` §5): the
//! facts of a DER certificate the decision needs (subject, subject alternative names, SHA-256
//! thumbprint, validity period), read with the crate's minimal DER reader, and the decision
//! itself: does the certificate the TLS layer accepted prove the authentication name, under the
//! registered client's `validation_scheme`. The name is the CONNECT Username or, when that is
//! empty, the first certificate field of the namespace's `alternative_authentication_name_sources`
//! that is filled (§5). Chain building and signature checks are the TLS layer's job; nothing
//! here verifies a signature, which is why the caller says (`ChainTrust`) whether a CA vouched
//! for the chain. The same reader also hands the crate's key loader the public key of a
//! configured issuer certificate (§4).

use std::borrow::Cow;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ring::digest;

use super::model::{normalize_thumbprint, NameSource, ValidationScheme};
use super::policy::{ClientIdentity, CompiledNamespace};
use super::token::REASON_NOT_AUTHORIZED;
use crate::der::{self, DerError, Reader};

/// The facts of a DER X.509 certificate the broker needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// The subject's common name; the last (most specific) one when there are several.
    pub subject_cn: Option<String>,
    /// The subject in RFC 4514 form (`CN=dev-1,O=Contoso,C=US`: most specific RDN first,
    /// multi-valued RDNs joined with `+`, unknown types as dotted OIDs, values that are not
    /// text as `#` + hex of their DER).
    pub subject: String,
    /// Subject alternative names by type, in certificate order.
    pub dns: Vec<String>,
    pub uris: Vec<String>,
    /// IP addresses as `std::net` prints them (`10.0.0.7`, `2001:db8::1`).
    pub ips: Vec<String>,
    /// rfc822Name entries.
    pub emails: Vec<String>,
    /// SHA-256 of the whole DER certificate, 64 lowercase hex digits.
    pub sha256_hex: String,
    /// Validity period, unix seconds (inclusive at both ends, RFC 5280 §4.1.2.5).
    pub not_before: i64,
    pub not_after: i64,
}

/// Why a client certificate did not authenticate. Every case is answered with 0x87 Not
/// authorized (v3.1.1: 0x05) [unconfirmed: Event Grid documents no finer code].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error(
        "the CONNECT Username is empty and the namespace lists no alternative authentication name sources"
    )]
    NoUsername,
    #[error(
        "the CONNECT Username is empty and the certificate fills none of the namespace's alternative authentication name sources"
    )]
    NoNameInCertificate,
    #[error("no enabled client is registered under this authentication name")]
    UnknownClient,
    #[error("no client certificate was presented")]
    NoCertificate,
    #[error("the client certificate is not a well-formed DER X.509 certificate")]
    Malformed,
    #[error("the certificate does not carry the authentication name as {0} requires")]
    NameMismatch(ValidationScheme),
    #[error("the certificate's SHA-256 thumbprint is not one of the client's allowed thumbprints")]
    ThumbprintMismatch,
    #[error("validation scheme {0} needs a chain verified against a client CA")]
    ChainNotVerified(ValidationScheme),
    #[error("the certificate is outside its validity period")]
    OutsideValidity,
}

impl CertError {
    /// The CONNACK reason code (MQTT v5) to refuse the connection with.
    pub fn reason(&self) -> u8 {
        REASON_NOT_AUTHORIZED
    }
}

/// What the TLS layer established about the client's chain before CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainTrust {
    /// Verified up to one of the listener's client CAs (signatures, validity period, key
    /// usage: all done by the TLS verifier). Every validation scheme may be used.
    CaVerified,
    /// Only possession of the leaf's private key is proven (the TLS handshake signature), not
    /// who issued it: the self-signed certificates of `ThumbprintMatch`. Only that scheme may
    /// pass, and the leaf's validity period is checked here against `now` (unix seconds).
    Unverified { now: u64 },
}

/// Reads the fields `CertInfo` holds from a DER certificate. Anything that is not a
/// well-formed certificate (bad DER, trailing bytes, a malformed name or extension) gives
/// `CertError::Malformed`; no input panics.
pub fn parse_certificate(der: &[u8]) -> Result<CertInfo, CertError> {
    parse(der)
        .map(|(info, _)| info)
        .map_err(|DerError| CertError::Malformed)
}

/// The contents of a DER certificate's `subjectPublicKeyInfo` SEQUENCE (its tag and length
/// stripped), for loading a certificate as a JWT signing key (`KeyRing::add_public_pem`). The
/// whole certificate must be as well-formed as `parse_certificate` wants, so a key is never
/// taken from something that only looks like a certificate up to its key. Nothing is verified:
/// no signature, no validity period (the operator configured this certificate as trusted).
pub(crate) fn subject_public_key_info(der: &[u8]) -> Result<&[u8], CertError> {
    parse(der)
        .map(|(_, spki)| spki)
        .map_err(|DerError| CertError::Malformed)
}

/// CONNECT with a client certificate whose chain the TLS layer verified against the listener's
/// client CA, Username = authentication name. Same as `authenticate_certificate_with` with
/// `ChainTrust::CaVerified`.
pub fn authenticate_certificate(
    ns: &CompiledNamespace,
    username: Option<&str>,
    chain: &[Vec<u8>],
) -> Result<ClientIdentity, CertError> {
    authenticate_certificate_with(ns, username, chain, ChainTrust::CaVerified)
}

/// `authenticate_certificate_with_sources` for a namespace without alternative authentication
/// name sources: the Username must carry the name (`CertError::NoUsername` otherwise).
pub fn authenticate_certificate_with(
    ns: &CompiledNamespace,
    username: Option<&str>,
    chain: &[Vec<u8>],
    trust: ChainTrust,
) -> Result<ClientIdentity, CertError> {
    authenticate_certificate_with_sources(ns, &[], username, chain, trust)
}

/// The certificate decision of §5. The authentication name is the Username, or when that is
/// absent or empty the first of `sources` (the namespace's
/// `alternative_authentication_name_sources`, in order) that the leaf certificate (`chain[0]`)
/// fills (`CertInfo::name_from_sources`). That name must name an enabled registered client,
/// and the leaf must prove it under the client's validation scheme: the subject CN or a SAN of
/// the scheme's type equals it (ignoring case, like every authentication-name comparison), or
/// for `ThumbprintMatch` the leaf's SHA-256 is one of the client's `allowed_thumbprints` (so a
/// name read from a pinned certificate still needs the pin). `trust` says what the TLS layer
/// verified (see `ChainTrust`).
pub fn authenticate_certificate_with_sources(
    ns: &CompiledNamespace,
    sources: &[NameSource],
    username: Option<&str>,
    chain: &[Vec<u8>],
    trust: ChainTrust,
) -> Result<ClientIdentity, CertError> {
    let client = |name: &str| ns.registered_client(name).ok_or(CertError::UnknownClient);
    let (def, cert, name) = match nonempty(username) {
        // The Username wins whenever it is there; the sources are then not consulted [doc].
        // The client is looked up before the certificate is read, so an unknown name is
        // refused without parsing anything.
        Some(name) => (client(name)?, parse_leaf(chain)?, Cow::Borrowed(name)),
        None => {
            if sources.is_empty() {
                return Err(CertError::NoUsername);
            }
            let cert = parse_leaf(chain)?;
            let name = cert
                .name_from_sources(sources)
                .ok_or(CertError::NoNameInCertificate)?
                .to_owned();
            (client(&name)?, cert, Cow::Owned(name))
        }
    };
    let scheme = def.validation_scheme;
    if let ChainTrust::Unverified { now } = trust {
        // Without a CA nobody vouched for the subject or SANs: anyone can self-sign a
        // certificate naming anyone. Only a pinned thumbprint identifies such a certificate.
        if scheme.needs_ca() {
            return Err(CertError::ChainNotVerified(scheme));
        }
        if !cert.valid_at(now) {
            return Err(CertError::OutsideValidity);
        }
    }
    if scheme == ValidationScheme::ThumbprintMatch {
        if !cert.thumbprint_in(&def.allowed_thumbprints) {
            return Err(CertError::ThumbprintMismatch);
        }
    } else if !cert.matches_name(scheme, &name) {
        return Err(CertError::NameMismatch(scheme));
    }
    Ok(ClientIdentity::registered(def))
}

/// The authentication name a certificate CONNECT claims, without deciding anything else: the
/// Username when it is present and not empty, otherwise the first of `sources` the leaf
/// certificate fills. For a caller that must know whether a registered client is meant (and
/// so whether the certificate settles the CONNECT) before authenticating; the errors are those
/// `authenticate_certificate_with_sources` would give for the same reason.
pub fn certificate_authentication_name<'a>(
    sources: &[NameSource],
    username: Option<&'a str>,
    chain: &[Vec<u8>],
) -> Result<Cow<'a, str>, CertError> {
    if let Some(name) = nonempty(username) {
        return Ok(Cow::Borrowed(name));
    }
    if sources.is_empty() {
        return Err(CertError::NoUsername);
    }
    parse_leaf(chain)?
        .name_from_sources(sources)
        .map(|name| Cow::Owned(name.to_owned()))
        .ok_or(CertError::NoNameInCertificate)
}

/// An empty Username is no authentication name either (names are 1-128 characters).
fn nonempty(username: Option<&str>) -> Option<&str> {
    username.filter(|n| !n.is_empty())
}

/// The leaf certificate (`chain[0]`), parsed.
fn parse_leaf(chain: &[Vec<u8>]) -> Result<CertInfo, CertError> {
    parse_certificate(chain.first().ok_or(CertError::NoCertificate)?)
}

impl CertInfo {
    /// The authentication name `source` offers, or `None` when the certificate does not fill
    /// that field: for the SAN sources the first non-empty value of that type, in certificate
    /// order (IP addresses as `std::net` prints them, so a client named by IP must be
    /// registered in that form: `10.0.0.7`, `2001:db8::1`).
    ///
    /// `ClientCertificateSubject` gives the subject's common name (the most specific CN), not
    /// the whole DN. Azure calls this source "subject DN", but a DN such as `CN=dev-1,O=Contoso`
    /// is no usable authentication name, and the CN is what `SubjectMatchesAuthenticationName`
    /// compares, so a client found through this source passes its (default) scheme
    /// [unconfirmed: Azure documents no example].
    pub fn name_from(&self, source: NameSource) -> Option<&str> {
        let values = match source {
            NameSource::ClientCertificateSubject => {
                return self.subject_cn.as_deref().filter(|cn| !cn.is_empty())
            }
            NameSource::ClientCertificateDns => &self.dns,
            NameSource::ClientCertificateUri => &self.uris,
            NameSource::ClientCertificateIp => &self.ips,
            NameSource::ClientCertificateEmail => &self.emails,
        };
        values.iter().map(String::as_str).find(|v| !v.is_empty())
    }

    /// The first of `sources`, in order, that `name_from` fills (§5: "the first non-empty
    /// field wins").
    pub fn name_from_sources(&self, sources: &[NameSource]) -> Option<&str> {
        sources.iter().find_map(|&source| self.name_from(source))
    }

    /// True when the field `scheme` names equals `name` (ignoring case; IP addresses compare
    /// as addresses, so `::1` equals `0:0::1`). Always false for `ThumbprintMatch`, which
    /// checks no field (see `thumbprint_in`).
    pub fn matches_name(&self, scheme: ValidationScheme, name: &str) -> bool {
        let any = |values: &[String]| values.iter().any(|v| super::eq_ignore_case(v, name));
        match scheme {
            ValidationScheme::SubjectMatchesAuthenticationName => self
                .subject_cn
                .as_deref()
                .is_some_and(|cn| super::eq_ignore_case(cn, name)),
            ValidationScheme::DnsMatchesAuthenticationName => any(&self.dns),
            ValidationScheme::UriMatchesAuthenticationName => any(&self.uris),
            ValidationScheme::EmailMatchesAuthenticationName => any(&self.emails),
            ValidationScheme::IpMatchesAuthenticationName => match name.parse::<IpAddr>() {
                Ok(wanted) => self.ips.iter().any(|ip| ip.parse::<IpAddr>() == Ok(wanted)),
                Err(_) => false,
            },
            ValidationScheme::ThumbprintMatch => false,
        }
    }

    /// True when the SHA-256 thumbprint is one of `allowed` (case and ':' ignored; entries
    /// that are not thumbprints match nothing).
    pub fn thumbprint_in(&self, allowed: &[String]) -> bool {
        allowed
            .iter()
            .filter_map(|t| normalize_thumbprint(t))
            .any(|t| t == self.sha256_hex)
    }

    /// True when `now` (unix seconds) lies within the validity period.
    pub fn valid_at(&self, now: u64) -> bool {
        let now = i64::try_from(now).unwrap_or(i64::MAX);
        self.not_before <= now && now <= self.not_after
    }
}

// Tags of X.509 fields beyond the universal ones in `der`.
/// `version [0] EXPLICIT`.
const TAG_VERSION: u8 = 0xa0;
/// `issuerUniqueID [1] IMPLICIT BIT STRING`, `subjectUniqueID [2] ...`.
const TAG_ISSUER_UID: u8 = 0x81;
const TAG_SUBJECT_UID: u8 = 0x82;
/// `extensions [3] EXPLICIT`.
const TAG_EXTENSIONS: u8 = 0xa3;
const TAG_UTC_TIME: u8 = 0x17;
const TAG_GENERALIZED_TIME: u8 = 0x18;
/// GeneralName choices used as authentication names (RFC 5280 §4.2.1.6, IMPLICIT tags).
const GN_RFC822: u8 = 0x81;
const GN_DNS: u8 = 0x82;
const GN_URI: u8 = 0x86;
const GN_IP: u8 = 0x87;

/// OID contents (without tag and length).
const OID_SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11]; // 2.5.29.17
const OID_COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03]; // 2.5.4.3

/// The attribute type names RFC 4514 §3 prints by name; every other type is a dotted OID.
const SHORT_NAMES: &[(&[u8], &str)] = &[
    (OID_COMMON_NAME, "CN"),
    (&[0x55, 0x04, 0x06], "C"),
    (&[0x55, 0x04, 0x07], "L"),
    (&[0x55, 0x04, 0x08], "ST"),
    (&[0x55, 0x04, 0x09], "STREET"),
    (&[0x55, 0x04, 0x0a], "O"),
    (&[0x55, 0x04, 0x0b], "OU"),
    (
        &[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19],
        "DC",
    ),
    (
        &[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01],
        "UID",
    ),
];

/// Subject alternative names collected from the extension.
#[derive(Default)]
struct AltNames {
    dns: Vec<String>,
    uris: Vec<String>,
    ips: Vec<String>,
    emails: Vec<String>,
}

/// `Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }`
/// (RFC 5280 §4.1). Returns the facts and the contents of the subjectPublicKeyInfo SEQUENCE.
fn parse(input: &[u8]) -> Result<(CertInfo, &[u8]), DerError> {
    let mut outer = Reader::new(der::read_only(input, der::TAG_SEQUENCE)?);
    let tbs = outer.read(der::TAG_SEQUENCE)?;
    outer.read(der::TAG_SEQUENCE)?;
    outer.read(der::TAG_BIT_STRING)?;
    outer.finish()?;

    let mut fields = Reader::new(tbs);
    // v1 certificates omit the version (DEFAULT v1) and cannot carry extensions.
    let version = if fields.peek_tag() == Some(TAG_VERSION) {
        match der::read_only(fields.read(TAG_VERSION)?, der::TAG_INTEGER)? {
            [v @ 0..=2] => *v + 1,
            _ => return Err(DerError),
        }
    } else {
        1
    };
    fields.read(der::TAG_INTEGER)?; // serialNumber
    fields.read(der::TAG_SEQUENCE)?; // signature algorithm
    fields.read(der::TAG_SEQUENCE)?; // issuer
    let (not_before, not_after) = parse_validity(fields.read(der::TAG_SEQUENCE)?)?;
    let subject = fields.read(der::TAG_SEQUENCE)?;
    let spki = fields.read(der::TAG_SEQUENCE)?;
    for optional in [TAG_ISSUER_UID, TAG_SUBJECT_UID] {
        if fields.peek_tag() == Some(optional) {
            fields.read(optional)?;
        }
    }
    let mut alt = AltNames::default();
    if fields.peek_tag() == Some(TAG_EXTENSIONS) {
        if version != 3 {
            return Err(DerError);
        }
        let extensions = der::read_only(fields.read(TAG_EXTENSIONS)?, der::TAG_SEQUENCE)?;
        parse_extensions(extensions, &mut alt)?;
    }
    fields.finish()?;
    let (subject, subject_cn) = parse_name(subject)?;
    let info = CertInfo {
        subject_cn,
        subject,
        dns: alt.dns,
        uris: alt.uris,
        ips: alt.ips,
        emails: alt.emails,
        sha256_hex: hex(digest::digest(&digest::SHA256, input).as_ref()),
        not_before,
        not_after,
    };
    Ok((info, spki))
}

/// `Name ::= SEQUENCE OF RelativeDistinguishedName`, each a non-empty `SET OF
/// AttributeTypeAndValue`. Returns the RFC 4514 rendering and the last common name.
fn parse_name(name: &[u8]) -> Result<(String, Option<String>), DerError> {
    let mut rdns = Vec::new();
    let mut common_name = None;
    let mut reader = Reader::new(name);
    while !reader.is_empty() {
        let mut members = Reader::new(reader.read(der::TAG_SET)?);
        if members.is_empty() {
            return Err(DerError);
        }
        let mut rendered = String::new();
        while !members.is_empty() {
            let mut atv = Reader::new(members.read(der::TAG_SEQUENCE)?);
            let oid = atv.read(der::TAG_OID)?;
            let (tag, value) = atv.read_any()?;
            atv.finish()?;
            let text = decode_string(tag, value);
            if !rendered.is_empty() {
                rendered.push('+');
            }
            match SHORT_NAMES.iter().find(|(o, _)| *o == oid) {
                Some((_, short)) => rendered.push_str(short),
                None => rendered.push_str(&dotted_oid(oid)?),
            }
            rendered.push('=');
            match &text {
                Some(text) => escape_value(&mut rendered, text),
                None => {
                    rendered.push('#');
                    rendered.push_str(&hex(&crate::der::tlv(tag, value)));
                }
            }
            if oid == OID_COMMON_NAME {
                if let Some(text) = text {
                    common_name = Some(text);
                }
            }
        }
        rdns.push(rendered);
    }
    // RFC 4514 prints the most specific RDN (the last in the certificate) first.
    rdns.reverse();
    Ok((rdns.join(","), common_name))
}

/// The text of a directory string, or `None` for a type that is not text or bytes that are not
/// valid in it.
fn decode_string(tag: u8, bytes: &[u8]) -> Option<String> {
    const UTF8: u8 = 0x0c;
    const NUMERIC: u8 = 0x12;
    const PRINTABLE: u8 = 0x13;
    const T61: u8 = 0x14;
    const IA5: u8 = 0x16;
    const VISIBLE: u8 = 0x1a;
    const UNIVERSAL: u8 = 0x1c;
    const BMP: u8 = 0x1e;
    match tag {
        UTF8 => String::from_utf8(bytes.to_vec()).ok(),
        NUMERIC | PRINTABLE | IA5 | VISIBLE => ascii(bytes),
        // TeletexString is in practice written as Latin-1, which is what most readers assume.
        T61 => Some(bytes.iter().map(|&b| char::from(b)).collect()),
        BMP if bytes.len().is_multiple_of(2) => char::decode_utf16(
            bytes
                .chunks_exact(2)
                .map(|pair| u16::from_be_bytes([pair[0], pair[1]])),
        )
        .collect::<Result<String, _>>()
        .ok(),
        UNIVERSAL if bytes.len().is_multiple_of(4) => bytes
            .chunks_exact(4)
            .map(|quad| char::from_u32(u32::from_be_bytes([quad[0], quad[1], quad[2], quad[3]])))
            .collect(),
        _ => None,
    }
}

fn ascii(bytes: &[u8]) -> Option<String> {
    bytes
        .is_ascii()
        .then(|| bytes.iter().map(|&b| char::from(b)).collect())
}

/// Appends `value` with the escapes of RFC 4514 §2.4.
fn escape_value(out: &mut String, value: &str) {
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            '\0' => out.push_str("\\00"),
            _ => out.push(c),
        }
    }
}

/// Dotted-decimal form of OID contents; malformed encodings (empty, a truncated arc, a
/// non-minimal arc, an arc beyond 64 bits) are refused.
fn dotted_oid(contents: &[u8]) -> Result<String, DerError> {
    let mut arcs = Vec::new();
    let mut value: u64 = 0;
    let mut fresh = true;
    for &b in contents {
        if fresh && b == 0x80 {
            return Err(DerError);
        }
        if value > u64::MAX >> 7 {
            return Err(DerError);
        }
        value = (value << 7) | u64::from(b & 0x7f);
        fresh = b & 0x80 == 0;
        if fresh {
            arcs.push(value);
            value = 0;
        }
    }
    let (&first, rest) = arcs.split_first().ok_or(DerError)?;
    if !fresh {
        return Err(DerError);
    }
    // The first subidentifier packs the first two arcs (X.690 §8.19.4).
    let (a, b) = match first {
        0..=39 => (0, first),
        40..=79 => (1, first - 40),
        _ => (2, first - 80),
    };
    let mut out = format!("{a}.{b}");
    for arc in rest {
        let _ = write!(out, ".{arc}");
    }
    Ok(out)
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// `Validity ::= SEQUENCE { notBefore Time, notAfter Time }`.
fn parse_validity(body: &[u8]) -> Result<(i64, i64), DerError> {
    let mut reader = Reader::new(body);
    let not_before = parse_time(reader.read_any()?)?;
    let not_after = parse_time(reader.read_any()?)?;
    reader.finish()?;
    Ok((not_before, not_after))
}

/// UTCTime `YYMMDDHHMMSSZ` (years 1950-2049) or GeneralizedTime `YYYYMMDDHHMMSSZ`, the only
/// forms RFC 5280 §4.1.2.5 allows, to unix seconds.
fn parse_time((tag, text): (u8, &[u8])) -> Result<i64, DerError> {
    let (year, rest) = match (tag, text.len()) {
        (TAG_UTC_TIME, 13) => {
            let yy = digits(&text[..2])?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &text[2..])
        }
        (TAG_GENERALIZED_TIME, 15) => (digits(&text[..4])?, &text[4..]),
        _ => return Err(DerError),
    };
    if rest[10] != b'Z' {
        return Err(DerError);
    }
    let month = digits(&rest[0..2])?;
    let day = digits(&rest[2..4])?;
    let hour = digits(&rest[4..6])?;
    let minute = digits(&rest[6..8])?;
    let second = digits(&rest[8..10])?;
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return Err(DerError);
    }
    Ok(days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second)
}

fn digits(text: &[u8]) -> Result<i64, DerError> {
    text.iter().try_fold(0i64, |acc, &b| {
        if b.is_ascii_digit() {
            Ok(acc * 10 + i64::from(b - b'0'))
        } else {
            Err(DerError)
        }
    })
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let shifted_month = if month > 2 { month - 3 } else { month + 9 };
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// `Extensions ::= SEQUENCE SIZE (1..MAX) OF Extension`; only subjectAltName is read, and it
/// may appear once (RFC 5280 §4.2 forbids repeating an extension).
fn parse_extensions(body: &[u8], alt: &mut AltNames) -> Result<(), DerError> {
    let mut extensions = Reader::new(body);
    if extensions.is_empty() {
        return Err(DerError);
    }
    let mut seen_alt_names = false;
    while !extensions.is_empty() {
        let mut extension = Reader::new(extensions.read(der::TAG_SEQUENCE)?);
        let oid = extension.read(der::TAG_OID)?;
        if extension.peek_tag() == Some(der::TAG_BOOLEAN) {
            extension.read(der::TAG_BOOLEAN)?; // critical
        }
        let value = extension.read(der::TAG_OCTET_STRING)?;
        extension.finish()?;
        if oid == OID_SUBJECT_ALT_NAME {
            if seen_alt_names {
                return Err(DerError);
            }
            seen_alt_names = true;
            parse_general_names(value, alt)?;
        }
    }
    Ok(())
}

/// `GeneralNames ::= SEQUENCE OF GeneralName`. The four kinds usable as authentication names
/// are kept; the others (otherName, directoryName, ...) are skipped.
fn parse_general_names(value: &[u8], alt: &mut AltNames) -> Result<(), DerError> {
    let mut names = Reader::new(der::read_only(value, der::TAG_SEQUENCE)?);
    while !names.is_empty() {
        let (tag, contents) = names.read_any()?;
        match tag {
            GN_RFC822 => alt.emails.push(ascii(contents).ok_or(DerError)?),
            GN_DNS => alt.dns.push(ascii(contents).ok_or(DerError)?),
            GN_URI => alt.uris.push(ascii(contents).ok_or(DerError)?),
            GN_IP => {
                let ip = if let Ok(v4) = <[u8; 4]>::try_from(contents) {
                    IpAddr::V4(Ipv4Addr::from(v4))
                } else if let Ok(v6) = <[u8; 16]>::try_from(contents) {
                    IpAddr::V6(Ipv6Addr::from(v6))
                } else {
                    return Err(DerError);
                };
                alt.ips.push(ip.to_string());
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
