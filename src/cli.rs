//! The `hubmq` command line (`shared/spec/config.md`, "Command line"): argument types for clap,
//! and the two one-shot commands that only print and exit — `--check-config` and `token`.
//!
//! Starting the server is `main`'s job; this module never binds a socket. Every function returns
//! the text to print so `main` decides where it goes and tests can compare it.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use clap::{Args, Parser, Subcommand};

use crate::config::{valid_hub_name, Config};

/// hubmq: a self-hosted MQTT broker speaking the Azure Web PubSub MQTT contract.
#[derive(Debug, Parser)]
#[command(name = "hubmq", version, about)]
pub struct Cli {
    /// Configuration file (TOML). Without one, embedded defaults are used.
    #[arg(
        long,
        short = 'c',
        value_name = "FILE",
        env = "HUBMQ_CONFIG",
        global = true
    )]
    pub config: Option<PathBuf>,

    /// Print the effective configuration (secrets masked) and exit.
    #[arg(long)]
    pub print_config: bool,

    /// Validate FILE, print `FILE: ok` or the error, and exit 0 or 1.
    #[arg(long, value_name = "FILE", conflicts_with = "print_config")]
    pub check_config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print a client access URL and token signed with the configured (or given) key.
    Token(TokenArgs),
}

#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// Hub the token is for.
    #[arg(long)]
    pub hub: String,

    /// User id (`sub` claim).
    #[arg(long)]
    pub user: Option<String>,

    /// Role, e.g. webpubsub.sendToGroup or webpubsub.joinLeaveGroup.g1 (repeatable).
    #[arg(long = "role", value_name = "ROLE")]
    pub roles: Vec<String>,

    /// Group to join at connect (repeatable).
    #[arg(long = "group", value_name = "GROUP")]
    pub groups: Vec<String>,

    /// Lifetime in minutes.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=525_600))]
    pub minutes: u64,

    /// Access key to sign with, instead of the configuration's.
    #[arg(
        long,
        value_name = "KEY",
        env = "HUBMQ_ACCESS_KEY",
        hide_env_values = true
    )]
    pub key: Option<String>,

    /// Public endpoint (http[s]://host[:port]) for the URL and the token audience.
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
}

/// `--check-config FILE`: `Ok("FILE: ok")` to print with exit 0, or `Err(one line)` to print
/// with exit 1.
pub fn run_check_config(path: &Path) -> Result<String, String> {
    match Config::load(path) {
        Ok(_) => Ok(format!("{}: ok", path.display())),
        Err(e) => Err(e.to_string()),
    }
}

/// `hubmq token`: the client URL with `?access_token=`, then the token alone, each on its own
/// line. `config` is the loaded `--config` file, `None` when none was given.
///
/// Key: `--key`, else the hub's own `access_keys`, else the first `[auth]` key. A key the
/// server generated for itself is never used: the running server has a different one.
/// Endpoint: `--endpoint`, else the config's public endpoint, else `http://localhost:8080`.
pub fn run_token(args: &TokenArgs, config: Option<&Config>) -> anyhow::Result<String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("system clock is before 1970")?
        .as_secs();
    token_text(args, config, now)
}

fn token_text(args: &TokenArgs, config: Option<&Config>, now: u64) -> anyhow::Result<String> {
    if !valid_hub_name(&args.hub) {
        bail!(
            "invalid hub name {:?}: 1-128 letters, digits or _, starting with a letter",
            args.hub
        );
    }
    let key = match (&args.key, config) {
        (Some(key), _) if !key.is_empty() => key.clone(),
        (_, Some(config)) => config_key(config, &args.hub)?,
        _ => bail!("no access key: pass --key or --config"),
    };
    let endpoint = match (&args.endpoint, config) {
        (Some(e), _) => e.trim_end_matches('/').to_owned(),
        (None, Some(config)) => config.public_endpoint_for(),
        (None, None) => "http://localhost:8080".to_owned(),
    };
    let Some(url) = hubmq_auth::client_base_url(&endpoint, &args.hub) else {
        bail!("invalid endpoint {endpoint:?}: expected http[s]://host[:port]");
    };
    let token = hubmq_auth::client_token(
        &endpoint,
        &args.hub,
        args.user.as_deref(),
        &args.roles,
        &args.groups,
        now,
        args.minutes,
        &key,
    );
    Ok(format!("{url}?access_token={token}\n{token}\n"))
}

fn config_key(config: &Config, hub: &str) -> anyhow::Result<String> {
    if let Some(key) = config.hub(hub).and_then(|h| h.access_keys.first()) {
        return Ok(key.clone());
    }
    let generated = config.generated_key.as_deref();
    match config.auth.all_keys().find(|k| Some(*k) != generated) {
        Some(key) => Ok(key.to_owned()),
        None => {
            let origin = config
                .path
                .as_ref()
                .map_or("the configuration".to_owned(), |p| p.display().to_string());
            bail!("no access key: pass --key or --config ({origin} has no [auth] access_keys)")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    const NOW: u64 = 1_700_000_000;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(args).expect("arguments parse")
    }

    fn token_args(extra: &[&str]) -> TokenArgs {
        let mut argv = vec!["hubmq", "token"];
        argv.extend_from_slice(extra);
        match parse(&argv).command {
            Some(Command::Token(t)) => t,
            None => panic!("token subcommand expected"),
        }
    }

    fn config_with_key(key: &str) -> Config {
        let text = format!("[auth]\naccess_keys = [\"{key}\"]\n[server]\npublic_endpoints = [\"http://broker.test:9000/\"]\n");
        Config::from_str(&text, "t.toml").expect("valid config")
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_server_flags() {
        let cli = parse(&[
            "hubmq",
            "--config",
            "/etc/hubmq/hubmq.toml",
            "--print-config",
        ]);
        assert_eq!(
            cli.config.as_deref(),
            Some(Path::new("/etc/hubmq/hubmq.toml"))
        );
        assert!(cli.print_config);
        assert!(cli.command.is_none());
        let cli = parse(&["hubmq", "--check-config", "x.toml"]);
        assert_eq!(cli.check_config.as_deref(), Some(Path::new("x.toml")));
    }

    #[test]
    fn parses_token_with_repeated_roles_and_config_after_subcommand() {
        let cli = parse(&[
            "hubmq",
            "token",
            "--hub",
            "chat",
            "--user",
            "alice",
            "--role",
            "webpubsub.sendToGroup",
            "--role",
            "webpubsub.joinLeaveGroup.g1",
            "--group",
            "g1",
            "--minutes",
            "5",
            "--config",
            "c.toml",
        ]);
        assert_eq!(cli.config.as_deref(), Some(Path::new("c.toml")));
        let Some(Command::Token(t)) = cli.command else {
            panic!("token expected")
        };
        assert_eq!(t.hub, "chat");
        assert_eq!(t.user.as_deref(), Some("alice"));
        assert_eq!(
            t.roles,
            ["webpubsub.sendToGroup", "webpubsub.joinLeaveGroup.g1"]
        );
        assert_eq!(t.groups, ["g1"]);
        assert_eq!(t.minutes, 5);
    }

    #[test]
    fn token_minutes_default_to_sixty_and_reject_zero() {
        assert_eq!(token_args(&["--hub", "chat"]).minutes, 60);
        assert!(
            Cli::try_parse_from(["hubmq", "token", "--hub", "chat", "--minutes", "0"]).is_err()
        );
        assert!(
            Cli::try_parse_from(["hubmq", "token"]).is_err(),
            "--hub is required"
        );
    }

    #[test]
    fn token_prints_url_then_token_signed_with_given_key() {
        let args = token_args(&[
            "--hub",
            "chat",
            "--user",
            "alice",
            "--key",
            "k1",
            "--endpoint",
            "http://h:8080/",
        ]);
        let text = token_text(&args, None, NOW).expect("token");
        let token = hubmq_auth::client_token(
            "http://h:8080",
            "chat",
            Some("alice"),
            &[],
            &[],
            NOW,
            60,
            "k1",
        );
        assert_eq!(
            text,
            format!("ws://h:8080/clients/mqtt/hubs/chat?access_token={token}\n{token}\n")
        );
    }

    #[test]
    fn token_uses_config_key_and_public_endpoint() {
        let config = config_with_key("secret-1");
        let args = token_args(&["--hub", "chat", "--role", "webpubsub.sendToGroup"]);
        let text = token_text(&args, Some(&config), NOW).expect("token");
        let roles = vec!["webpubsub.sendToGroup".to_owned()];
        let token = hubmq_auth::client_token(
            "http://broker.test:9000",
            "chat",
            None,
            &roles,
            &[],
            NOW,
            60,
            "secret-1",
        );
        assert_eq!(text.lines().nth(1), Some(token.as_str()));
        assert!(
            text.starts_with("ws://broker.test:9000/clients/mqtt/hubs/chat?access_token="),
            "{text}"
        );
    }

    #[test]
    fn token_prefers_the_hubs_own_key() {
        let text = "[auth]\naccess_keys = [\"global\"]\n[hubs.Chat]\naccess_keys = [\"hubkey\"]\n";
        let config = Config::from_str(text, "t.toml").expect("valid");
        let args = token_args(&["--hub", "chat"]);
        let out = token_text(&args, Some(&config), NOW).expect("token");
        let expected = hubmq_auth::client_token(
            &config.public_endpoint_for(),
            "chat",
            None,
            &[],
            &[],
            NOW,
            60,
            "hubkey",
        );
        assert_eq!(out.lines().nth(1), Some(expected.as_str()));
    }

    #[test]
    fn token_without_key_or_config_is_a_clear_error() {
        let args = token_args(&["--hub", "chat"]);
        let err = token_text(&args, None, NOW).expect_err("no key");
        assert_eq!(err.to_string(), "no access key: pass --key or --config");
    }

    #[test]
    fn token_never_signs_with_a_generated_key() {
        let config = Config::from_str("", "empty.toml").expect("valid");
        assert!(config.generated_key.is_some());
        let err =
            token_text(&token_args(&["--hub", "chat"]), Some(&config), NOW).expect_err("no key");
        assert!(
            err.to_string()
                .starts_with("no access key: pass --key or --config"),
            "{err}"
        );
    }

    #[test]
    fn token_rejects_bad_hub_and_bad_endpoint() {
        let err = token_text(&token_args(&["--hub", "1chat", "--key", "k"]), None, NOW)
            .expect_err("bad hub");
        assert!(err.to_string().contains("invalid hub name"), "{err}");
        let args = token_args(&["--hub", "chat", "--key", "k", "--endpoint", "ftp://x"]);
        let err = token_text(&args, None, NOW).expect_err("bad endpoint");
        assert!(err.to_string().contains("invalid endpoint"), "{err}");
    }

    #[test]
    fn check_config_reports_ok_or_one_line_error() {
        let dir = std::env::temp_dir().join(format!("hubmq-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let good = dir.join("good.toml");
        std::fs::write(&good, "[server]\nworkers = 2\n").expect("write");
        assert_eq!(
            run_check_config(&good),
            Ok(format!("{}: ok", good.display()))
        );
        let bad = dir.join("bad.toml");
        std::fs::write(&bad, "[server]\nworkerz = 2\n").expect("write");
        let err = run_check_config(&bad).expect_err("unknown key");
        assert!(
            err.starts_with(&format!(
                "{}: server.workerz: unknown field `workerz`",
                bad.display()
            )),
            "{err}"
        );
        assert!(!err.contains('\n'));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
