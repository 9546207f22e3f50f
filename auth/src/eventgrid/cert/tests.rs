//! Tests for certificate parsing and the certificate authentication decision, with certificates
//! made by the openssl command line at test time (skipped when it is missing), plus the
//! `validation_scheme` / `allowed_thumbprints` / `alternative_authentication_name_sources`
//! configuration rules.

use super::*;
use crate::eventgrid::model::{ConfigError, NameSource, Namespace};
use crate::eventgrid::policy::AuthKind;
use crate::testkeys::{
    ca_signed_cert, openssl_sha256_fingerprint, require_openssl, self_signed_cert,
};
use serde_json::json;
use std::time::{SystemTime, UNIX_EPOCH};

const DEVICE_SUBJECT: &str = "/C=US/O=Contoso, Inc./OU=Devices/CN=dev-1";
const DEVICE_SAN: &str =
    "DNS:dev-1.example.com,URI:urn:dev:1,IP:10.0.0.7,IP:2001:db8::1,email:dev1@example.com";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// The CA-signed device certificate every scheme test uses.
fn device_cert() -> Vec<u8> {
    ca_signed_cert(DEVICE_SUBJECT, Some(DEVICE_SAN)).expect("openssl makes a CA-signed cert")
}

fn namespace(clients: serde_json::Value) -> CompiledNamespace {
    let ns: Namespace =
        serde_json::from_value(json!({ "clients": clients })).expect("namespace parses");
    CompiledNamespace::compile(&ns).expect("namespace compiles")
}

fn client(name: &str, scheme: &str) -> serde_json::Value {
    json!({ "authentication_name": name, "validation_scheme": scheme })
}

fn auth(ns: &CompiledNamespace, name: &str, cert: &[u8]) -> Result<ClientIdentity, CertError> {
    authenticate_certificate(ns, Some(name), &[cert.to_vec()])
}

#[test]
fn parses_a_subject_of_several_rdns_in_rfc4514_order() {
    if !require_openssl("parses_a_subject_of_several_rdns_in_rfc4514_order") {
        return;
    }
    let der = ca_signed_cert(
        "/DC=net/DC=example/C=US/O=Contoso, Inc./OU=Devices/CN=dev-1+UID=7/emailAddress=ops@example.net",
        None,
    )
    .expect("cert");
    let info = parse_certificate(&der).expect("parses");
    assert_eq!(info.subject_cn.as_deref(), Some("dev-1"));
    // Members of a multi-valued RDN keep their DER (SET OF sorted) order; emailAddress has no
    // RFC 4514 short name, so it prints as its OID.
    assert_eq!(
        info.subject,
        "1.2.840.113549.1.9.1=ops@example.net,CN=dev-1+UID=7,OU=Devices,O=Contoso\\, Inc.,C=US,DC=example,DC=net"
    );
    assert!(info.dns.is_empty() && info.uris.is_empty() && info.ips.is_empty());
    assert!(
        info.emails.is_empty(),
        "a subject emailAddress is not a SAN"
    );
}

#[test]
fn takes_the_most_specific_common_name() {
    if !require_openssl("takes_the_most_specific_common_name") {
        return;
    }
    let info = parse_certificate(&ca_signed_cert("/CN=outer/CN=inner", None).expect("cert"))
        .expect("parses");
    assert_eq!(info.subject_cn.as_deref(), Some("inner"));
    assert_eq!(info.subject, "CN=inner,CN=outer");
}

#[test]
fn reads_every_kind_of_subject_alternative_name() {
    if !require_openssl("reads_every_kind_of_subject_alternative_name") {
        return;
    }
    let info = parse_certificate(&device_cert()).expect("parses");
    assert_eq!(info.dns, ["dev-1.example.com"]);
    assert_eq!(info.uris, ["urn:dev:1"]);
    assert_eq!(info.ips, ["10.0.0.7", "2001:db8::1"]);
    assert_eq!(info.emails, ["dev1@example.com"]);
}

#[test]
fn thumbprint_is_the_sha256_of_the_der_like_openssl_prints_it() {
    if !require_openssl("thumbprint_is_the_sha256_of_the_der_like_openssl_prints_it") {
        return;
    }
    let der = device_cert();
    let info = parse_certificate(&der).expect("parses");
    let reference = openssl_sha256_fingerprint(&der).expect("fingerprint");
    assert_eq!(
        normalize_thumbprint(&reference).as_deref(),
        Some(info.sha256_hex.as_str())
    );
    assert_eq!(info.sha256_hex.len(), 64);
    assert!(!info.sha256_hex.bytes().any(|b| b.is_ascii_uppercase()));
}

#[test]
fn reads_the_validity_period() {
    if !require_openssl("reads_the_validity_period") {
        return;
    }
    let info = parse_certificate(&device_cert()).expect("parses");
    assert_eq!(info.not_after - info.not_before, 2 * 86_400, "-days 2");
    let now = now();
    assert!(info.valid_at(now));
    assert!(!info.valid_at(now + 3 * 86_400));
    assert!(!info.valid_at(now - 86_400));
}

#[test]
fn converts_utc_and_generalized_times_to_unix_seconds() {
    assert_eq!(parse_time((TAG_UTC_TIME, b"700101000000Z")), Ok(0));
    assert_eq!(
        parse_time((TAG_UTC_TIME, b"491231235959Z")),
        Ok(2_524_607_999)
    );
    assert_eq!(
        parse_time((TAG_UTC_TIME, b"500101000000Z")),
        Ok(-631_152_000)
    );
    assert_eq!(
        parse_time((TAG_GENERALIZED_TIME, b"20380119031408Z")),
        Ok(2_147_483_648)
    );
    assert_eq!(
        parse_time((TAG_GENERALIZED_TIME, b"20240229120000Z")),
        Ok(1_709_208_000)
    );
    for bad in [
        &b"20230229120000Z"[..], // not a leap year
        b"20241301000000Z",
        b"20240101240000Z",
        b"2024010100000Z",
        b"20240101000000+",
        b"2024010100000aZ",
    ] {
        assert_eq!(parse_time((TAG_GENERALIZED_TIME, bad)), Err(DerError));
    }
    assert_eq!(
        parse_time((TAG_UTC_TIME, b"20240101000000Z")),
        Err(DerError),
        "wrong length for UTCTime"
    );
}

#[test]
fn renders_oids_and_escapes_like_rfc4514() {
    assert_eq!(
        dotted_oid(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01]),
        Ok("1.2.840.113549.1.9.1".to_owned())
    );
    assert_eq!(dotted_oid(&[0x55, 0x1d, 0x11]), Ok("2.5.29.17".to_owned()));
    assert_eq!(dotted_oid(&[]), Err(DerError));
    assert_eq!(dotted_oid(&[0x55, 0x86]), Err(DerError), "truncated arc");
    assert_eq!(
        dotted_oid(&[0x55, 0x80, 0x01]),
        Err(DerError),
        "non-minimal"
    );
    let mut out = String::new();
    escape_value(&mut out, " #a,b+c;\"<>\\ ");
    assert_eq!(out, "\\ #a\\,b\\+c\\;\\\"\\<\\>\\\\\\ ");
    let mut out = String::new();
    escape_value(&mut out, "#x");
    assert_eq!(out, "\\#x");
}

#[test]
fn each_ca_scheme_accepts_its_field_ignoring_case() {
    if !require_openssl("each_ca_scheme_accepts_its_field_ignoring_case") {
        return;
    }
    let der = device_cert();
    let ns = namespace(json!([
        // No validation_scheme: SubjectMatchesAuthenticationName by default.
        { "authentication_name": "dev-1", "attributes": { "floor": 3 } },
        client("dev-1.example.com", "DnsMatchesAuthenticationName"),
        client("urn:dev:1", "UriMatchesAuthenticationName"),
        // Compared as an address: the SAN prints as 2001:db8::1.
        client("2001:0DB8:0::1", "IpMatchesAuthenticationName"),
        client("10.0.0.7", "IpMatchesAuthenticationName"),
        client("dev1@example.com", "EmailMatchesAuthenticationName"),
    ]));
    for username in [
        "dev-1",
        "DEV-1",
        "Dev-1.Example.COM",
        "URN:DEV:1",
        "2001:0db8:0::1",
        "10.0.0.7",
        "DEV1@example.com",
    ] {
        let id = auth(&ns, username, &der).unwrap_or_else(|e| panic!("{username}: {e}"));
        assert_eq!(id.auth_kind, AuthKind::Registered);
        assert!(crate::eventgrid::eq_ignore_case(
            &id.authentication_name,
            username
        ));
    }
    // The identity carries the configured spelling and attributes.
    let id = auth(&ns, "DEV-1", &der).expect("accepted");
    assert_eq!(id.authentication_name, "dev-1");
    assert_eq!(id.attributes["floor"], crate::eventgrid::AttrValue::Int(3));
}

#[test]
fn each_ca_scheme_refuses_a_name_its_field_does_not_carry() {
    if !require_openssl("each_ca_scheme_refuses_a_name_its_field_does_not_carry") {
        return;
    }
    let der = device_cert();
    use ValidationScheme::*;
    let cases = [
        ("dev-2", SubjectMatchesAuthenticationName),
        // The CN is not a DNS SAN, and a DNS SAN is not the CN.
        ("dev-1", DnsMatchesAuthenticationName),
        ("dev-1.example.com", SubjectMatchesAuthenticationName),
        ("dev-2.example.com", DnsMatchesAuthenticationName),
        ("urn:dev:2", UriMatchesAuthenticationName),
        ("10.0.0.8", IpMatchesAuthenticationName),
        ("not-an-ip", IpMatchesAuthenticationName),
        ("dev2@example.com", EmailMatchesAuthenticationName),
        ("dev-1.example.com", EmailMatchesAuthenticationName),
    ];
    for (name, scheme) in cases {
        let ns = namespace(json!([client(name, scheme.as_str())]));
        assert_eq!(
            auth(&ns, name, &der),
            Err(CertError::NameMismatch(scheme)),
            "{name} / {scheme}"
        );
    }
}

#[test]
fn refuses_unknown_and_disabled_clients() {
    if !require_openssl("refuses_unknown_and_disabled_clients") {
        return;
    }
    let der = device_cert();
    let ns = namespace(json!([
        { "authentication_name": "dev-1", "state": "Disabled" },
        client("other", "SubjectMatchesAuthenticationName"),
    ]));
    assert_eq!(auth(&ns, "dev-1", &der), Err(CertError::UnknownClient));
    assert_eq!(auth(&ns, "nobody", &der), Err(CertError::UnknownClient));
}

#[test]
fn needs_a_username_and_a_certificate() {
    let ns = namespace(json!([{ "authentication_name": "dev-1" }]));
    let some_cert = vec![vec![0x30, 0x00]];
    assert_eq!(
        authenticate_certificate(&ns, None, &some_cert),
        Err(CertError::NoUsername)
    );
    assert_eq!(
        authenticate_certificate(&ns, Some(""), &some_cert),
        Err(CertError::NoUsername)
    );
    assert_eq!(
        authenticate_certificate(&ns, Some("dev-1"), &[]),
        Err(CertError::NoCertificate)
    );
}

#[test]
fn refuses_garbage_der_without_panicking() {
    let ns = namespace(json!([{ "authentication_name": "dev-1" }]));
    let inputs: [&[u8]; 7] = [
        b"",
        b"not a certificate",
        &[0x30],
        &[0x30, 0x80, 0x00, 0x00],
        &[0x30, 0x00],
        &[0x30, 0x03, 0x30, 0x01, 0x00],
        &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
    ];
    for input in inputs {
        assert_eq!(parse_certificate(input), Err(CertError::Malformed));
        assert_eq!(auth(&ns, "dev-1", input), Err(CertError::Malformed));
    }
}

#[test]
fn refuses_every_truncation_and_survives_corruption() {
    if !require_openssl("refuses_every_truncation_and_survives_corruption") {
        return;
    }
    let der = device_cert();
    for len in 0..der.len() {
        assert_eq!(
            parse_certificate(&der[..len]),
            Err(CertError::Malformed),
            "prefix of {len} bytes"
        );
    }
    let mut trailing = der.clone();
    trailing.push(0);
    assert_eq!(parse_certificate(&trailing), Err(CertError::Malformed));
    // Any byte overwritten: an error or some parse, never a panic.
    for i in 0..der.len() {
        for value in [0x00, 0x80, 0xff] {
            let mut corrupt = der.clone();
            corrupt[i] = value;
            let _ = parse_certificate(&corrupt);
        }
    }
}

#[test]
fn thumbprint_match_accepts_a_pinned_self_signed_cert_in_any_spelling() {
    if !require_openssl("thumbprint_match_accepts_a_pinned_self_signed_cert_in_any_spelling") {
        return;
    }
    let der = self_signed_cert("/CN=whatever").expect("self-signed cert");
    let other = self_signed_cert("/CN=whatever").expect("self-signed cert");
    let colons_upper = openssl_sha256_fingerprint(&der).expect("fingerprint");
    assert!(colons_upper.contains(':'));
    let plain_lower = parse_certificate(&der).expect("parses").sha256_hex;
    let other_print = parse_certificate(&other).expect("parses").sha256_hex;
    for allowed in [
        json!([colons_upper]),
        json!([plain_lower.to_uppercase()]),
        json!([other_print, format!("  {plain_lower}  ")]),
    ] {
        // The name is not in the certificate at all: with ThumbprintMatch only the pin counts.
        let ns = namespace(json!([{
            "authentication_name": "machine-7",
            "validation_scheme": "ThumbprintMatch",
            "allowed_thumbprints": allowed,
        }]));
        assert!(auth(&ns, "MACHINE-7", &der).is_ok(), "{allowed}");
        assert_eq!(
            authenticate_certificate_with(
                &ns,
                Some("machine-7"),
                std::slice::from_ref(&der),
                ChainTrust::Unverified { now: now() }
            )
            .map(|id| id.authentication_name),
            Ok("machine-7".to_owned())
        );
    }
    let ns = namespace(json!([{
        "authentication_name": "machine-7",
        "validation_scheme": "ThumbprintMatch",
        "allowed_thumbprints": [other_print],
    }]));
    assert_eq!(
        auth(&ns, "machine-7", &der),
        Err(CertError::ThumbprintMismatch)
    );
}

#[test]
fn one_pinned_certificate_may_serve_several_clients() {
    if !require_openssl("one_pinned_certificate_may_serve_several_clients") {
        return;
    }
    let der = self_signed_cert("/CN=shared").expect("self-signed cert");
    let print = parse_certificate(&der).expect("parses").sha256_hex;
    let ns = namespace(json!([
        { "authentication_name": "a", "validation_scheme": "ThumbprintMatch", "allowed_thumbprints": [print] },
        { "authentication_name": "b", "validation_scheme": "ThumbprintMatch", "allowed_thumbprints": [print] },
    ]));
    assert!(auth(&ns, "a", &der).is_ok());
    assert!(auth(&ns, "b", &der).is_ok());
}

#[test]
fn an_unverified_chain_only_passes_thumbprint_match_and_only_while_valid() {
    if !require_openssl("an_unverified_chain_only_passes_thumbprint_match_and_only_while_valid") {
        return;
    }
    // Self-signed with CN=dev-1: without a CA this proves nothing about the name.
    let der = self_signed_cert("/CN=dev-1").expect("self-signed cert");
    let print = parse_certificate(&der).expect("parses").sha256_hex;
    let ns = namespace(json!([
        { "authentication_name": "dev-1" },
        { "authentication_name": "pinned", "validation_scheme": "ThumbprintMatch", "allowed_thumbprints": [print] },
    ]));
    let unverified = |name: &str, now: u64| {
        authenticate_certificate_with(
            &ns,
            Some(name),
            std::slice::from_ref(&der),
            ChainTrust::Unverified { now },
        )
    };
    assert_eq!(
        unverified("dev-1", now()),
        Err(CertError::ChainNotVerified(
            ValidationScheme::SubjectMatchesAuthenticationName
        ))
    );
    assert!(unverified("pinned", now()).is_ok());
    assert_eq!(
        unverified("pinned", now() + 10 * 86_400),
        Err(CertError::OutsideValidity)
    );
    assert_eq!(unverified("pinned", 0), Err(CertError::OutsideValidity));
}

#[test]
fn every_refusal_is_not_authorized() {
    let all = [
        CertError::NoUsername,
        CertError::UnknownClient,
        CertError::NoCertificate,
        CertError::Malformed,
        CertError::NameMismatch(ValidationScheme::DnsMatchesAuthenticationName),
        CertError::ThumbprintMismatch,
        CertError::ChainNotVerified(ValidationScheme::UriMatchesAuthenticationName),
        CertError::OutsideValidity,
        CertError::NoNameInCertificate,
    ];
    for e in all {
        assert_eq!(e.reason(), 0x87, "{e}");
    }
}

// ---- configuration: validation_scheme and allowed_thumbprints ----

const PRINT: &str = "3a:7b:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd";

fn validate(client: serde_json::Value) -> Result<(), ConfigError> {
    let ns: Namespace =
        serde_json::from_value(json!({ "clients": [client] })).expect("namespace parses");
    ns.validate()
}

#[test]
fn existing_client_configs_default_to_subject_matching() {
    let ns: Namespace = serde_json::from_value(json!({
        "clients": [{ "authentication_name": "dev-1" }]
    }))
    .expect("parses");
    assert_eq!(
        ns.clients[0].validation_scheme,
        ValidationScheme::SubjectMatchesAuthenticationName
    );
    assert!(ns.clients[0].allowed_thumbprints.is_empty());
    assert!(ns.validate().is_ok());
}

#[test]
fn reads_every_validation_scheme_in_azure_spelling() {
    use ValidationScheme::*;
    for scheme in [
        SubjectMatchesAuthenticationName,
        DnsMatchesAuthenticationName,
        UriMatchesAuthenticationName,
        IpMatchesAuthenticationName,
        EmailMatchesAuthenticationName,
        ThumbprintMatch,
    ] {
        let parsed: ValidationScheme =
            serde_json::from_value(json!(scheme.as_str())).expect("parses");
        assert_eq!(parsed, scheme);
    }
    assert!(serde_json::from_value::<ValidationScheme>(json!("thumbprintMatch")).is_err());
    assert!(serde_json::from_value::<Namespace>(json!({
        "clients": [{ "authentication_name": "a", "validation_scheme": "CnMatches" }]
    }))
    .is_err());
}

#[test]
fn thumbprint_match_needs_one_or_two_well_formed_thumbprints() {
    let pinned = |prints: serde_json::Value| json!({ "authentication_name": "m", "validation_scheme": "ThumbprintMatch", "allowed_thumbprints": prints });
    assert!(validate(pinned(json!([PRINT]))).is_ok());
    assert!(validate(pinned(json!([
        PRINT,
        PRINT.to_uppercase().replace(':', "")
    ])))
    .is_ok());

    let e = validate(pinned(json!([]))).expect_err("none");
    assert_eq!(e.item, "clients[0] \"m\".allowed_thumbprints");
    assert!(e.reason.contains("1-2"), "{e}");
    let e = validate(pinned(json!([PRINT, PRINT, PRINT]))).expect_err("three");
    assert_eq!(e.item, "clients[0] \"m\".allowed_thumbprints");
    let e = validate(json!({ "authentication_name": "m", "validation_scheme": "ThumbprintMatch" }))
        .expect_err("missing");
    assert_eq!(e.item, "clients[0] \"m\".allowed_thumbprints");

    // A SHA-1 thumbprint (40 digits), a stray character, a truncated one.
    for bad in [
        "3a7b001122334455667788990011223344556677".to_owned(),
        PRINT.replace("3a", "3g"),
        PRINT[3..].to_owned(),
    ] {
        let e = validate(pinned(json!([PRINT, bad]))).expect_err("malformed");
        assert_eq!(e.item, "clients[0] \"m\".allowed_thumbprints[1]", "{e}");
        assert!(e.reason.contains("SHA-256"), "{e}");
    }
}

#[test]
fn allowed_thumbprints_are_refused_with_the_ca_schemes() {
    let e = validate(json!({
        "authentication_name": "dev-1",
        "validation_scheme": "DnsMatchesAuthenticationName",
        "allowed_thumbprints": [PRINT],
    }))
    .expect_err("refused");
    assert_eq!(e.item, "clients[0] \"dev-1\".allowed_thumbprints");
    assert!(e.reason.contains("ThumbprintMatch"), "{e}");
    let e = validate(json!({ "authentication_name": "dev-1", "allowed_thumbprints": [PRINT] }))
        .expect_err("refused with the default scheme");
    assert!(e.reason.contains("SubjectMatchesAuthenticationName"), "{e}");
}

#[test]
fn normalizes_thumbprints() {
    assert_eq!(
        normalize_thumbprint(&PRINT.to_uppercase()).as_deref(),
        Some(PRINT.replace(':', "").as_str())
    );
    assert_eq!(normalize_thumbprint(""), None);
    assert_eq!(normalize_thumbprint(&"a".repeat(63)), None);
    assert_eq!(normalize_thumbprint(&"a".repeat(65)), None);
}

// ---- alternative authentication name sources (no Username) ----

const ALL_SOURCES: [NameSource; 5] = [
    NameSource::ClientCertificateSubject,
    NameSource::ClientCertificateDns,
    NameSource::ClientCertificateUri,
    NameSource::ClientCertificateIp,
    NameSource::ClientCertificateEmail,
];

/// Authenticates with no Username, the name taken from `cert` through `sources`.
fn auth_by_sources(
    ns: &CompiledNamespace,
    sources: &[NameSource],
    cert: &[u8],
) -> Result<String, CertError> {
    authenticate_certificate_with_sources(
        ns,
        sources,
        None,
        &[cert.to_vec()],
        ChainTrust::CaVerified,
    )
    .map(|id| id.authentication_name)
}

/// A `CertInfo` with nothing filled, for the field-picking rules without openssl.
fn blank_info() -> CertInfo {
    CertInfo {
        subject_cn: None,
        subject: String::new(),
        dns: Vec::new(),
        uris: Vec::new(),
        ips: Vec::new(),
        emails: Vec::new(),
        sha256_hex: String::new(),
        not_before: 0,
        not_after: 0,
    }
}

#[test]
fn each_name_source_picks_its_own_field() {
    if !require_openssl("each_name_source_picks_its_own_field") {
        return;
    }
    let der = device_cert();
    let info = parse_certificate(&der).expect("parses");
    // The SAN sources take the first value of their type (the cert has two IPs).
    let expected = [
        (
            NameSource::ClientCertificateSubject,
            "dev-1",
            "SubjectMatchesAuthenticationName",
        ),
        (
            NameSource::ClientCertificateDns,
            "dev-1.example.com",
            "DnsMatchesAuthenticationName",
        ),
        (
            NameSource::ClientCertificateUri,
            "urn:dev:1",
            "UriMatchesAuthenticationName",
        ),
        (
            NameSource::ClientCertificateIp,
            "10.0.0.7",
            "IpMatchesAuthenticationName",
        ),
        (
            NameSource::ClientCertificateEmail,
            "dev1@example.com",
            "EmailMatchesAuthenticationName",
        ),
    ];
    for (source, name, scheme) in expected {
        assert_eq!(info.name_from(source), Some(name), "{source}");
        // Registered in another case: the lookup ignores case, the identity keeps the
        // configured spelling.
        let registered = name.to_uppercase();
        let ns = namespace(json!([
            client(&registered, scheme),
            client("decoy", "SubjectMatchesAuthenticationName"),
        ]));
        assert_eq!(
            auth_by_sources(&ns, &[source], &der),
            Ok(registered),
            "{source}"
        );
    }
}

#[test]
fn the_subject_source_is_the_common_name_not_the_whole_dn() {
    if !require_openssl("the_subject_source_is_the_common_name_not_the_whole_dn") {
        return;
    }
    let der = device_cert();
    let info = parse_certificate(&der).expect("parses");
    let ns = namespace(json!([{ "authentication_name": info.subject }]));
    assert_eq!(
        auth_by_sources(&ns, &[NameSource::ClientCertificateSubject], &der),
        Err(CertError::UnknownClient),
        "a client named after the full DN is not what the subject source finds"
    );
}

#[test]
fn the_first_filled_source_wins_in_the_configured_order() {
    if !require_openssl("the_first_filled_source_wins_in_the_configured_order") {
        return;
    }
    // CN and a DNS SAN only: URI, IP and e-mail are empty and are skipped.
    let der = ca_signed_cert("/O=Contoso/CN=gw-7", Some("DNS:gw-7.example.com")).expect("cert");
    let ns = namespace(json!([
        client("gw-7", "SubjectMatchesAuthenticationName"),
        client("gw-7.example.com", "DnsMatchesAuthenticationName"),
    ]));
    use NameSource::*;
    let cases: [(&[NameSource], &str); 4] = [
        (&[ClientCertificateSubject, ClientCertificateDns], "gw-7"),
        (
            &[ClientCertificateDns, ClientCertificateSubject],
            "gw-7.example.com",
        ),
        (
            &[
                ClientCertificateUri,
                ClientCertificateEmail,
                ClientCertificateIp,
                ClientCertificateDns,
            ],
            "gw-7.example.com",
        ),
        (&[ClientCertificateEmail, ClientCertificateSubject], "gw-7"),
    ];
    for (sources, name) in cases {
        assert_eq!(
            auth_by_sources(&ns, sources, &der),
            Ok(name.to_owned()),
            "{sources:?}"
        );
        assert_eq!(
            certificate_authentication_name(sources, None, std::slice::from_ref(&der)).as_deref(),
            Ok(name),
            "{sources:?}"
        );
    }
}

#[test]
fn empty_fields_do_not_count_as_filled() {
    let mut info = blank_info();
    info.subject_cn = Some(String::new());
    info.dns = vec![String::new(), "second.example.com".to_owned()];
    info.uris = vec![String::new()];
    assert_eq!(info.name_from(NameSource::ClientCertificateSubject), None);
    assert_eq!(info.name_from(NameSource::ClientCertificateUri), None);
    assert_eq!(
        info.name_from(NameSource::ClientCertificateDns),
        Some("second.example.com")
    );
    assert_eq!(
        info.name_from_sources(&[
            NameSource::ClientCertificateSubject,
            NameSource::ClientCertificateUri,
            NameSource::ClientCertificateDns,
        ]),
        Some("second.example.com")
    );
    assert_eq!(blank_info().name_from_sources(&ALL_SOURCES), None);
    assert_eq!(info.name_from_sources(&[]), None);
}

#[test]
fn refuses_a_certificate_that_fills_no_source() {
    if !require_openssl("refuses_a_certificate_that_fills_no_source") {
        return;
    }
    // No CN, no SAN at all.
    let bare = ca_signed_cert("/O=Contoso/OU=Devices", None).expect("cert");
    let ns = namespace(json!([{ "authentication_name": "Contoso" }]));
    assert_eq!(
        auth_by_sources(&ns, &ALL_SOURCES, &bare),
        Err(CertError::NoNameInCertificate)
    );
    // A CN but only SAN sources configured.
    let cn_only = ca_signed_cert("/CN=dev-1", None).expect("cert");
    let ns = namespace(json!([{ "authentication_name": "dev-1" }]));
    assert_eq!(
        auth_by_sources(&ns, &ALL_SOURCES[1..], &cn_only),
        Err(CertError::NoNameInCertificate)
    );
    assert_eq!(
        certificate_authentication_name(
            &ALL_SOURCES[1..],
            Some(""),
            std::slice::from_ref(&cn_only)
        ),
        Err(CertError::NoNameInCertificate)
    );
    // No sources configured: the Username was needed.
    assert_eq!(
        auth_by_sources(&ns, &[], &cn_only),
        Err(CertError::NoUsername)
    );
    assert_eq!(
        certificate_authentication_name(&[], None, &[cn_only]),
        Err(CertError::NoUsername)
    );
}

#[test]
fn without_username_a_missing_or_malformed_certificate_is_refused() {
    let ns = namespace(json!([{ "authentication_name": "dev-1" }]));
    for chain in [Vec::new(), vec![b"not a certificate".to_vec()]] {
        let expected = if chain.is_empty() {
            CertError::NoCertificate
        } else {
            CertError::Malformed
        };
        assert_eq!(
            authenticate_certificate_with_sources(
                &ns,
                &ALL_SOURCES,
                None,
                &chain,
                ChainTrust::CaVerified
            ),
            Err(expected)
        );
        assert_eq!(
            certificate_authentication_name(&ALL_SOURCES, None, &chain),
            Err(expected)
        );
    }
}

#[test]
fn a_username_makes_the_sources_irrelevant() {
    if !require_openssl("a_username_makes_the_sources_irrelevant") {
        return;
    }
    let der = device_cert();
    let ns = namespace(json!([
        client("dev-1", "SubjectMatchesAuthenticationName"),
        client("dev-1.example.com", "DnsMatchesAuthenticationName"),
    ]));
    let sources = [NameSource::ClientCertificateSubject];
    let with = |username: Option<&str>| {
        authenticate_certificate_with_sources(
            &ns,
            &sources,
            username,
            std::slice::from_ref(&der),
            ChainTrust::CaVerified,
        )
        .map(|id| id.authentication_name)
    };
    assert_eq!(
        with(Some("dev-1.example.com")),
        Ok("dev-1.example.com".to_owned())
    );
    // An unknown Username is refused rather than replaced by the certificate's CN.
    assert_eq!(with(Some("nobody")), Err(CertError::UnknownClient));
    // An empty Username is no Username: the sources apply.
    assert_eq!(with(Some("")), Ok("dev-1".to_owned()));
    assert_eq!(with(None), Ok("dev-1".to_owned()));
    assert_eq!(
        certificate_authentication_name(&sources, Some("nobody"), &[]),
        Ok(Cow::Borrowed("nobody"))
    );
}

#[test]
fn a_name_from_the_certificate_must_name_an_enabled_registered_client() {
    if !require_openssl("a_name_from_the_certificate_must_name_an_enabled_registered_client") {
        return;
    }
    let der = device_cert();
    let sources = [NameSource::ClientCertificateSubject];
    let ns = namespace(json!([client("dev-2", "SubjectMatchesAuthenticationName")]));
    assert_eq!(
        auth_by_sources(&ns, &sources, &der),
        Err(CertError::UnknownClient)
    );
    let ns = namespace(json!([{ "authentication_name": "dev-1", "state": "Disabled" }]));
    assert_eq!(
        auth_by_sources(&ns, &sources, &der),
        Err(CertError::UnknownClient)
    );
}

#[test]
fn the_clients_validation_scheme_still_applies_to_a_name_from_the_certificate() {
    if !require_openssl(
        "the_clients_validation_scheme_still_applies_to_a_name_from_the_certificate",
    ) {
        return;
    }
    let der = device_cert();
    // Found through the DNS SAN, but the client wants its name in the CN (which is "dev-1").
    let ns = namespace(json!([client(
        "dev-1.example.com",
        "SubjectMatchesAuthenticationName"
    )]));
    assert_eq!(
        auth_by_sources(&ns, &[NameSource::ClientCertificateDns], &der),
        Err(CertError::NameMismatch(
            ValidationScheme::SubjectMatchesAuthenticationName
        ))
    );
    // Found through the CN, but the client wants a URI SAN equal to it, and none is.
    let ns = namespace(json!([client("dev-1", "UriMatchesAuthenticationName")]));
    assert_eq!(
        auth_by_sources(&ns, &[NameSource::ClientCertificateSubject], &der),
        Err(CertError::NameMismatch(
            ValidationScheme::UriMatchesAuthenticationName
        ))
    );
}

#[test]
fn a_thumbprint_client_named_by_its_certificate_still_needs_the_pin() {
    if !require_openssl("a_thumbprint_client_named_by_its_certificate_still_needs_the_pin") {
        return;
    }
    let der = self_signed_cert("/CN=machine-7").expect("self-signed cert");
    let other = self_signed_cert("/CN=machine-7").expect("self-signed cert");
    let print = parse_certificate(&der).expect("parses").sha256_hex;
    let ns = namespace(json!([{
        "authentication_name": "machine-7",
        "validation_scheme": "ThumbprintMatch",
        "allowed_thumbprints": [print],
    }]));
    let sources = [NameSource::ClientCertificateSubject];
    let unverified = |cert: &[u8]| {
        authenticate_certificate_with_sources(
            &ns,
            &sources,
            None,
            &[cert.to_vec()],
            ChainTrust::Unverified { now: now() },
        )
        .map(|id| id.authentication_name)
    };
    assert_eq!(unverified(&der), Ok("machine-7".to_owned()));
    // Same CN, different key: the name is found, the pin is not.
    assert_eq!(unverified(&other), Err(CertError::ThumbprintMismatch));
    // And a self-signed certificate cannot name a CA-scheme client through its CN either.
    let ns = namespace(json!([{ "authentication_name": "machine-7" }]));
    assert_eq!(
        authenticate_certificate_with_sources(
            &ns,
            &sources,
            None,
            &[der],
            ChainTrust::Unverified { now: now() },
        ),
        Err(CertError::ChainNotVerified(
            ValidationScheme::SubjectMatchesAuthenticationName
        ))
    );
}

#[test]
fn the_old_entry_points_still_require_a_username() {
    if !require_openssl("the_old_entry_points_still_require_a_username") {
        return;
    }
    let der = device_cert();
    let ns = namespace(json!([{ "authentication_name": "dev-1" }]));
    assert_eq!(
        authenticate_certificate(&ns, None, std::slice::from_ref(&der)),
        Err(CertError::NoUsername)
    );
    assert!(authenticate_certificate(&ns, Some("dev-1"), &[der]).is_ok());
}

// ---- configuration: alternative_authentication_name_sources ----

fn with_sources(sources: serde_json::Value) -> Result<Namespace, serde_json::Error> {
    serde_json::from_value(json!({ "alternative_authentication_name_sources": sources }))
}

#[test]
fn name_sources_default_to_none() {
    let ns: Namespace = serde_json::from_value(json!({})).expect("parses");
    assert!(ns.alternative_authentication_name_sources.is_empty());
    assert!(ns.validate().is_ok());
}

#[test]
fn reads_every_name_source_in_arm_spelling_and_keeps_the_order() {
    let spelled: Vec<&str> = ALL_SOURCES.iter().rev().map(|s| s.as_str()).collect();
    assert_eq!(
        spelled,
        [
            "ClientCertificateEmail",
            "ClientCertificateIp",
            "ClientCertificateUri",
            "ClientCertificateDns",
            "ClientCertificateSubject",
        ]
    );
    let ns = with_sources(json!(spelled)).expect("parses");
    let reversed: Vec<NameSource> = ALL_SOURCES.iter().rev().copied().collect();
    assert_eq!(ns.alternative_authentication_name_sources, reversed);
    assert!(ns.validate().is_ok());
    assert_eq!(
        NameSource::ClientCertificateDns.to_string(),
        "ClientCertificateDns"
    );
}

#[test]
fn refuses_unknown_name_source_spellings() {
    for bad in [
        "ClientCertificateSubjectDn",
        "clientcertificatedns",
        "Dns",
        "",
    ] {
        assert!(with_sources(json!([bad])).is_err(), "{bad:?}");
    }
}

#[test]
fn refuses_a_name_source_listed_twice() {
    let ns = with_sources(json!([
        "ClientCertificateDns",
        "ClientCertificateSubject",
        "ClientCertificateDns"
    ]))
    .expect("parses");
    let e = ns.validate().expect_err("duplicate refused");
    assert_eq!(e.item, "alternative_authentication_name_sources[2]");
    assert!(e.reason.contains("ClientCertificateDns"), "{e}");
}
