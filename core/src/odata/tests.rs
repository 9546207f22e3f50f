//! Unit tests of the OData filter: grammar, precedence, literals, functions, null rules,
//! type errors and limits.

use super::*;

struct Conn {
    user: Option<&'static str>,
    id: &'static str,
    groups: Vec<&'static str>,
}

fn conn(user: Option<&'static str>, id: &'static str, groups: &[&'static str]) -> Conn {
    Conn {
        user,
        id,
        groups: groups.to_vec(),
    }
}

fn eval_on(src: &str, c: &Conn) -> bool {
    let f = Filter::parse(src).unwrap_or_else(|e| panic!("{src}: {e}"));
    f.matches(&FilterTarget {
        user_id: c.user,
        connection_id: c.id,
        groups: &c.groups,
    })
}

fn alice() -> Conn {
    conn(Some("alice"), "c1", &["room1", "vip"])
}

fn parse_err(src: &str) -> String {
    match Filter::parse(src) {
        Ok(f) => panic!("{src} parsed as {:?}", f.expr),
        Err(e) => e.to_string(),
    }
}

#[test]
fn equality_on_each_identifier() {
    let a = alice();
    assert!(eval_on("userId eq 'alice'", &a));
    assert!(!eval_on("userId eq 'bob'", &a));
    assert!(eval_on("connectionId eq 'c1'", &a));
    assert!(eval_on("connectionId ne 'c2'", &a));
    assert!(!eval_on("userId ne 'alice'", &a));
}

#[test]
fn identifiers_keywords_and_functions_are_case_insensitive() {
    let a = alice();
    assert!(eval_on("USERID EQ 'alice' AND ConnectionId Eq 'c1'", &a));
    assert!(eval_on("StartsWith(userid, 'al')", &a));
    assert!(eval_on("'vip' IN Groups", &a));
}

#[test]
fn string_literals_unescape_doubled_quotes() {
    let c = conn(Some("user'1"), "c", &[]);
    assert!(eval_on("userId eq 'user''1'", &c));
    assert!(!eval_on("userId eq 'user1'", &c));
    let c = conn(Some("''"), "c", &[]);
    assert!(eval_on("userId eq ''''''", &c));
    let c = conn(Some(""), "c", &[]);
    assert!(eval_on("userId eq ''", &c));
}

#[test]
fn group_membership_and_literal_lists() {
    let a = alice();
    assert!(eval_on("'room1' in groups", &a));
    assert!(!eval_on("'room2' in groups", &a));
    assert!(eval_on("not ('room2' in groups)", &a));
    assert!(eval_on("userId in ('bob', 'alice')", &a));
    assert!(!eval_on("userId in ('bob', 'carol')", &a));
    assert!(eval_on("connectionId in ('c1')", &a));
    assert!(eval_on("length(groups) eq 2", &a));
    assert!(eval_on("length(groups) gt 1 and length(groups) le 2", &a));
}

#[test]
fn precedence_not_then_comparison_then_and_then_or() {
    let a = alice();
    // and binds tighter than or: false and false or true = true
    assert!(eval_on(
        "userId eq 'x' and userId eq 'y' or userId eq 'alice'",
        &a
    ));
    // true or (true and false) = true; if or bound tighter: (true or true) and false = false
    assert!(eval_on(
        "userId eq 'alice' or userId eq 'alice' and userId eq 'no'",
        &a
    ));
    assert!(!eval_on(
        "(userId eq 'alice' or userId eq 'alice') and userId eq 'no'",
        &a
    ));
    assert!(eval_on("not (userId eq 'bob')", &a));
    assert!(eval_on("not not ('vip' in groups)", &a));
}

#[test]
fn not_binds_to_the_next_operand_only() {
    let e = parse_err("not length(userId) gt 5");
    assert!(e.contains("'not' needs a boolean operand"), "{e}");
    assert!(eval_on("not (length(userId) gt 5)", &alice()));
}

#[test]
fn ordered_comparisons_on_numbers_and_strings() {
    let a = alice();
    assert!(eval_on("length(userId) eq 5", &a));
    assert!(eval_on("length(userId) ge 5 and length(userId) le 5", &a));
    assert!(eval_on("length(userId) gt -1", &a));
    assert!(eval_on("length(userId) lt +6", &a));
    assert!(eval_on("userId gt 'al' and userId lt 'b'", &a));
    // Ordinal: upper case sorts before lower case.
    assert!(eval_on("userId gt 'Zed'", &a));
    assert!(eval_on("true eq true and false ne true", &a));
}

#[test]
fn string_functions() {
    let c = conn(Some(" Listener-01 "), "conn-7", &[]);
    assert!(eval_on("trim(userId) eq 'Listener-01'", &c));
    assert!(eval_on("tolower(trim(userId)) eq 'listener-01'", &c));
    assert!(eval_on("toupper(connectionId) eq 'CONN-7'", &c));
    assert!(eval_on("substring(connectionId, 5) eq '7'", &c));
    assert!(eval_on("substring(connectionId, 0, 4) eq 'conn'", &c));
    assert!(eval_on("substring(connectionId, 99) eq ''", &c));
    assert!(eval_on("concat(connectionId, '!') eq 'conn-7!'", &c));
    assert!(eval_on("indexof(connectionId, '-') eq 4", &c));
    assert!(eval_on("indexof(connectionId, 'zz') eq -1", &c));
    assert!(eval_on("startswith(trim(userId), 'Listener-')", &c));
    assert!(eval_on("endswith(connectionId, '-7')", &c));
    assert!(eval_on("contains(userId, 'ner')", &c));
    assert!(!eval_on("contains(userId, 'xyz')", &c));
    assert!(eval_on("length(userId) eq 13", &c));
}

#[test]
fn functions_count_characters_not_bytes() {
    let c = conn(Some("héllo"), "ü-1", &[]);
    assert!(eval_on("length(userId) eq 5", &c));
    assert!(eval_on("indexof(connectionId, '-') eq 1", &c));
    assert!(eval_on("substring(userId, 1, 1) eq 'é'", &c));
}

#[test]
fn null_user_ids() {
    let anon = conn(None, "c9", &["g"]);
    assert!(eval_on("userId eq null", &anon));
    assert!(!eval_on("userId ne null", &anon));
    assert!(!eval_on("userId eq 'alice'", &anon));
    assert!(eval_on("userId ne 'alice'", &anon));
    assert!(!eval_on("userId gt 'a'", &anon));
    assert!(!eval_on("startswith(userId, 'a')", &anon));
    // not(unknown) stays unknown and selects nothing.
    assert!(!eval_on("not startswith(userId, 'a')", &anon));
    assert!(eval_on(
        "startswith(userId, 'a') or connectionId eq 'c9'",
        &anon
    ));
    assert!(!eval_on("userId in ('a', 'b')", &anon));
    assert!(eval_on("userId in ('a', null)", &anon));
    assert!(eval_on("null eq userId", &anon));
    assert!(eval_on("userId ne null", &alice()));
}

#[test]
fn syntax_errors_say_what_and_where() {
    let e = parse_err("userId eq");
    assert!(e.contains("unexpected end of filter"), "{e}");
    let e = parse_err("userId eq 'alice");
    assert!(e.contains("unterminated string literal"), "{e}");
    assert!(e.contains("position 10"), "{e}");
    let e = parse_err("(userId eq 'a'");
    assert!(e.contains("expected ')'"), "{e}");
    let e = parse_err("userId eq 'a' userId");
    assert!(e.contains("after the end of the expression"), "{e}");
    let e = parse_err("nickname eq 'a'");
    assert!(e.contains("unknown identifier 'nickname'"), "{e}");
    let e = parse_err("userId == 'a'");
    assert!(e.contains("unexpected character '='"), "{e}");
    let e = parse_err("userId eq 1.5");
    assert!(e.contains("only integer"), "{e}");
    let e = parse_err("userId in groups2");
    assert!(e.contains("expected 'groups'"), "{e}");
    let e = parse_err("userId in ('a' 'b')");
    assert!(e.contains("expected ',' or ')'"), "{e}");
    let e = parse_err("userId in (userId)");
    assert!(e.contains("expected a literal"), "{e}");
    let e = parse_err("   ");
    assert!(e.contains("empty"), "{e}");
    let e = parse_err("userId eq 99999999999999999999");
    assert!(e.contains("out of range"), "{e}");
    let e = parse_err("userId eq -");
    assert!(e.contains("unexpected character '-'"), "{e}");
}

#[test]
fn type_errors_are_refused_at_parse_time() {
    for (src, want) in [
        ("userId", "must be a boolean"),
        ("length(userId)", "must be a boolean"),
        ("userId eq 5", "cannot compare a string with a number"),
        ("groups eq 'a'", "cannot compare the groups collection"),
        ("'a' in userId", "expected 'groups'"),
        ("5 in groups", "'in groups' needs a string"),
        ("userId in ('a', 1)", "'in' list holds a number"),
        ("startswith(userId)", "startswith expects (string, string)"),
        ("substring(userId, 'a')", "substring expects"),
        ("length(groups, userId)", "length expects"),
        ("tolower(groups) eq 'a'", "tolower expects (string)"),
        ("userId eq 'a' and 'b'", "'and' needs boolean operands"),
        ("userId or true", "'or' needs boolean operands"),
        (
            "true gt false",
            "booleans can only be compared with eq or ne",
        ),
        ("frobnicate(userId)", "unknown identifier 'frobnicate'"),
    ] {
        let e = parse_err(src);
        assert!(e.contains(want), "{src}: {e}");
    }
}

#[test]
fn rejects_more_than_100_clauses() {
    let ok = vec!["userId eq 'a'"; 100].join(" or ");
    assert!(Filter::parse(&ok).is_ok());
    let too_many = vec!["userId eq 'a'"; 101].join(" or ");
    let e = parse_err(&too_many);
    assert!(e.contains("101 clauses"), "{e}");
}

#[test]
fn rejects_filters_over_4_kib() {
    let long = format!("userId eq '{}'", "x".repeat(MAX_FILTER_LEN));
    let e = parse_err(&long);
    assert!(e.contains("longer than 4096"), "{e}");
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let deep = format!("{}userId eq 'a'{}", "(".repeat(1000), ")".repeat(1000));
    let e = parse_err(&deep);
    assert!(e.contains("nested too deeply"), "{e}");
    let nots = format!("{}true", "not ".repeat(1000));
    assert!(parse_err(&nots).contains("nested too deeply"));
    let ok = format!("{}userId eq 'alice'{}", "(".repeat(20), ")".repeat(20));
    assert!(eval_on(&ok, &alice()));
}

#[test]
fn spec_example_filters() {
    let a = conn(Some("alice"), "c1", &["room1"]);
    let muted = conn(Some("alice"), "c2", &["muted"]);
    let bob = conn(Some("bob"), "c3", &[]);
    let f = "userId eq 'alice' and not('muted' in groups)";
    assert!(eval_on(f, &a));
    assert!(!eval_on(f, &muted));
    assert!(!eval_on(f, &bob));
    let l = conn(Some("listener-1"), "c4", &[]);
    assert!(eval_on("startswith(userId, 'listener-')", &l));
    assert!(!eval_on("startswith(userId, 'listener-')", &a));
}

#[test]
fn ast_shape_of_a_mixed_expression() {
    let f = Filter::parse("not ('g' in groups) or userId eq 'u'").map(|f| f.expr);
    assert_eq!(
        f,
        Ok(Expr::Or(
            Box::new(Expr::Not(Box::new(Expr::InGroups(Box::new(Expr::Lit(
                Lit::Str("g".into())
            )))))),
            Box::new(Expr::Cmp(
                CmpOp::Eq,
                Box::new(Expr::Field(Field::UserId)),
                Box::new(Expr::Lit(Lit::Str("u".into())))
            ))
        ))
    );
}
