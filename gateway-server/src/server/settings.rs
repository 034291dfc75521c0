//! The configuration table: every setting once, with its key in the TOML
//! file and its environment variable, and how its effective value is shown
//! by `gateway config` (secrets masked). `server::config` reads the
//! settings; the README's configuration table documents them; the tests
//! below hold the three together.

use std::fmt::Write;

use crate::app::providers::is_credential;
use crate::server::config::{redact_url_password, Config, LogFormat};

/// One setting: its file key (dotted for a provider's, `providers.stripe.api_base`),
/// its environment variable, and its effective value in a configuration.
pub(crate) struct Setting {
    /// The key in the TOML file.
    pub(crate) key: &'static str,
    /// The environment variable, which overrides the file.
    pub(crate) variable: &'static str,
    /// The effective value.
    value: fn(&Config) -> Value,
}

/// A setting's effective value, as `gateway config` shows it.
enum Value {
    /// A string, quoted.
    Text(String),
    /// A number, boolean or array, as TOML writes it.
    Plain(String),
    /// A secret, masked.
    Secret(String),
    /// Not set, and what happens instead.
    Unset(&'static str),
    /// A remark instead of a value.
    Note(&'static str),
}

fn text(value: impl Into<String>) -> Value {
    Value::Text(value.into())
}

fn plain(value: impl ToString) -> Value {
    Value::Plain(value.to_string())
}

fn duration(value: std::time::Duration) -> Value {
    Value::Text(humantime::format_duration(value).to_string())
}

/// A provider setting from `[providers.NAME]`, masked when it is a credential.
fn provider(config: &Config, name: &str, key: &str, unset: &'static str) -> Value {
    match config.providers.get(name).and_then(|settings| settings.get(key)) {
        Some(value) if is_credential(name, key) => Value::Secret(mask(value)),
        Some(value) => text(value.as_str()),
        None => Value::Unset(unset),
    }
}

/// Every setting, in the order of the README's table.
pub(crate) const SETTINGS: &[Setting] = &[
    Setting {
        key: "listen",
        variable: "GATEWAY_LISTEN",
        value: |c| text(c.listen.as_str()),
    },
    Setting {
        key: "database_url",
        variable: "GATEWAY_DATABASE_URL",
        value: |c| text(redact_url_password(&c.database_url)),
    },
    Setting {
        key: "master_key",
        variable: "GATEWAY_MASTER_KEY",
        value: |c| match &c.master_key {
            Some(key) => Value::Secret(mask(key)),
            None => {
                Value::Unset("on SQLite one is generated into <database>.master-key; PostgreSQL requires it")
            }
        },
    },
    Setting {
        key: "mode",
        variable: "GATEWAY_MODE",
        value: |c| text(c.mode.as_str()),
    },
    Setting {
        key: "sandbox",
        variable: "GATEWAY_SANDBOX",
        value: |_| Value::Note("deprecated; what it chose is `mode`"),
    },
    Setting {
        key: "log_format",
        variable: "GATEWAY_LOG_FORMAT",
        value: |c| {
            text(match c.log_format {
                LogFormat::Text => "text",
                LogFormat::Json => "json",
            })
        },
    },
    Setting {
        key: "log_level",
        variable: "GATEWAY_LOG_LEVEL",
        value: |c| text(c.log_level.as_str()),
    },
    Setting {
        key: "workers",
        variable: "GATEWAY_WORKERS",
        value: |c| plain(c.workers),
    },
    Setting {
        key: "default_provider",
        variable: "GATEWAY_DEFAULT_PROVIDER",
        value: |c| match &c.default_provider {
            Some(name) => text(name.as_str()),
            None => Value::Unset(
                "the only provider offered is the default; with several the server refuses to start",
            ),
        },
    },
    Setting {
        key: "provider_timeout",
        variable: "GATEWAY_PROVIDER_TIMEOUT",
        value: |c| duration(c.provider_timeout),
    },
    Setting {
        key: "providers.stripe.secret_key",
        variable: "STRIPE_SECRET_KEY",
        value: |c| provider(c, "stripe", "secret_key", "no gateway-wide Stripe account"),
    },
    Setting {
        key: "providers.stripe.webhook_secrets",
        variable: "STRIPE_WEBHOOK_SECRET",
        value: |c| provider(c, "stripe", "webhook_secrets", "no gateway-wide webhook secret"),
    },
    Setting {
        key: "providers.stripe.api_base",
        variable: "STRIPE_API_BASE",
        value: |c| provider(c, "stripe", "api_base", "Stripe's own, https://api.stripe.com"),
    },
    Setting {
        key: "providers.stripe.timeout_ms",
        variable: "STRIPE_TIMEOUT_MS",
        value: |c| provider(c, "stripe", "timeout_ms", "default 30000"),
    },
    Setting {
        key: "providers.stripe.max_retries",
        variable: "STRIPE_MAX_RETRIES",
        value: |c| provider(c, "stripe", "max_retries", "default 2"),
    },
    Setting {
        key: "providers.stripe.retry_backoff_ms",
        variable: "STRIPE_RETRY_BACKOFF_MS",
        value: |c| provider(c, "stripe", "retry_backoff_ms", "default 500"),
    },
    Setting {
        key: "providers.stripe.webhook_tolerance_secs",
        variable: "STRIPE_WEBHOOK_TOLERANCE_SECS",
        value: |c| provider(c, "stripe", "webhook_tolerance_secs", "default 300"),
    },
    Setting {
        key: "providers.mock.seed",
        variable: "GATEWAY_MOCK_SEED",
        value: |c| provider(c, "mock", "seed", "random per process"),
    },
    Setting {
        key: "providers.mock.webhook_secret",
        variable: "GATEWAY_MOCK_WEBHOOK_SECRET",
        value: |c| provider(c, "mock", "webhook_secret", "random per process"),
    },
    Setting {
        key: "webhook_first_retry",
        variable: "GATEWAY_WEBHOOK_FIRST_RETRY",
        value: |c| duration(c.webhook_delivery.first_retry),
    },
    Setting {
        key: "webhook_max_delay",
        variable: "GATEWAY_WEBHOOK_MAX_DELAY",
        value: |c| duration(c.webhook_delivery.max_delay),
    },
    Setting {
        key: "webhook_max_attempts",
        variable: "GATEWAY_WEBHOOK_MAX_ATTEMPTS",
        value: |c| plain(c.webhook_delivery.max_attempts),
    },
    Setting {
        key: "webhook_timeout",
        variable: "GATEWAY_WEBHOOK_TIMEOUT",
        value: |c| duration(c.webhook_delivery.timeout),
    },
    Setting {
        key: "webhook_concurrency",
        variable: "GATEWAY_WEBHOOK_CONCURRENCY",
        value: |c| plain(c.webhook_limits.concurrency),
    },
    Setting {
        key: "webhook_per_merchant",
        variable: "GATEWAY_WEBHOOK_PER_MERCHANT",
        value: |c| plain(c.webhook_limits.per_merchant),
    },
    Setting {
        key: "webhook_endpoint_failures",
        variable: "GATEWAY_WEBHOOK_ENDPOINT_FAILURES",
        value: |c| plain(c.webhook_limits.endpoint_failures),
    },
    Setting {
        key: "webhook_ca_file",
        variable: "GATEWAY_WEBHOOK_CA_FILE",
        value: |c| match &c.webhook_ca_file {
            Some(path) => text(path.display().to_string()),
            None => Value::Unset("the webpki roots only"),
        },
    },
    Setting {
        key: "webhook_sweep_interval",
        variable: "GATEWAY_WEBHOOK_SWEEP_INTERVAL",
        value: |c| duration(c.webhook_sweep_interval),
    },
    Setting {
        key: "reconcile_after",
        variable: "GATEWAY_RECONCILE_AFTER",
        value: |c| duration(c.reconcile.after),
    },
    Setting {
        key: "reconcile_interval",
        variable: "GATEWAY_RECONCILE_INTERVAL",
        value: |c| duration(c.reconcile.interval),
    },
    Setting {
        key: "reconcile_concurrency",
        variable: "GATEWAY_RECONCILE_CONCURRENCY",
        value: |c| plain(c.reconcile.concurrency),
    },
    Setting {
        key: "retention",
        variable: "GATEWAY_RETENTION",
        value: |c| duration(c.retention),
    },
    Setting {
        key: "max_body_bytes",
        variable: "GATEWAY_MAX_BODY_BYTES",
        value: |c| plain(c.max_body_bytes),
    },
    Setting {
        key: "request_head_timeout",
        variable: "GATEWAY_REQUEST_HEAD_TIMEOUT",
        value: |c| duration(c.request_head_timeout),
    },
    Setting {
        key: "body_read_timeout",
        variable: "GATEWAY_BODY_TIMEOUT",
        value: |c| duration(c.body_read_timeout),
    },
    Setting {
        key: "keep_alive",
        variable: "GATEWAY_KEEP_ALIVE",
        value: |c| duration(c.keep_alive),
    },
    Setting {
        key: "client_disconnect_timeout",
        variable: "GATEWAY_DISCONNECT_TIMEOUT",
        value: |c| duration(c.client_disconnect_timeout),
    },
    Setting {
        key: "max_connections",
        variable: "GATEWAY_MAX_CONNECTIONS",
        value: |c| plain(c.max_connections),
    },
    Setting {
        key: "backlog",
        variable: "GATEWAY_BACKLOG",
        value: |c| plain(c.backlog),
    },
    Setting {
        key: "rate_limit_per_second",
        variable: "GATEWAY_RATE_LIMIT",
        value: |c| plain(c.rate_limit_per_second),
    },
    Setting {
        key: "rate_limit_burst",
        variable: "GATEWAY_RATE_LIMIT_BURST",
        value: |c| plain(c.rate_limit_burst),
    },
    Setting {
        key: "auth_failures_per_minute",
        variable: "GATEWAY_AUTH_FAILURES_PER_MINUTE",
        value: |c| plain(c.auth_failures_per_minute),
    },
    Setting {
        key: "live_per_merchant",
        variable: "GATEWAY_LIVE_PER_MERCHANT",
        value: |c| plain(c.live_per_merchant),
    },
    Setting {
        key: "live_stream_max",
        variable: "GATEWAY_LIVE_STREAM_MAX",
        value: |c| duration(c.live_stream_max),
    },
    Setting {
        key: "egress_allow_http",
        variable: "GATEWAY_EGRESS_ALLOW_HTTP",
        value: |c| plain(c.egress_policy().allow_http),
    },
    Setting {
        key: "egress_allow_nets",
        variable: "GATEWAY_EGRESS_ALLOW_NETS",
        value: |c| {
            let nets: Vec<String> = c
                .egress_policy()
                .allow_nets
                .iter()
                .map(|net| quote(&net.to_string()))
                .collect();
            Value::Plain(format!("[{}]", nets.join(", ")))
        },
    },
];

/// The provider settings that have an environment variable: (variable,
/// provider, key), from [`SETTINGS`].
pub(crate) fn provider_variables() -> impl Iterator<Item = (&'static str, &'static str, &'static str)> {
    SETTINGS.iter().filter_map(|setting| {
        let (provider, key) = setting.key.strip_prefix("providers.")?.split_once('.')?;
        Some((setting.variable, provider, key))
    })
}

/// The effective configuration as TOML, one `key = value` a line: every
/// setting of [`SETTINGS`] (those not set as `# key is not set: …`), then
/// any other provider setting of the file. Secrets are masked (a known
/// prefix such as `sk_test_` or `whsec_` kept, the rest `****`), and the
/// database URL's password too, so the output never holds one.
pub(crate) fn effective_toml(config: &Config) -> String {
    let mut out = String::new();
    for setting in SETTINGS {
        line(&mut out, setting.key, (setting.value)(config));
    }
    for (name, settings) in &config.providers {
        for (key, value) in settings {
            let dotted = format!("providers.{name}.{key}");
            if SETTINGS.iter().any(|setting| setting.key == dotted) {
                continue;
            }
            let shown = if is_credential(name, key) {
                Value::Secret(mask(value))
            } else {
                text(value.as_str())
            };
            line(&mut out, &dotted, shown);
        }
    }
    out
}

fn line(out: &mut String, key: &str, value: Value) {
    let _ = match value {
        Value::Text(text) | Value::Secret(text) => writeln!(out, "{key} = {}", quote(&text)),
        Value::Plain(raw) => writeln!(out, "{key} = {raw}"),
        Value::Unset(instead) => writeln!(out, "# {key} is not set: {instead}"),
        Value::Note(note) => writeln!(out, "# {key}: {note}"),
    };
}

/// A TOML basic string.
fn quote(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(quoted, "\\u{:04X}", c as u32);
            }
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// Prefixes that say what kind of secret a value is and nothing of the secret itself.
const KNOWN_PREFIXES: [&str; 7] = [
    "sk_test_", "sk_live_", "rk_test_", "rk_live_", "whsec_", "gw_sk_", "pk_test_",
];

/// A secret as it may be shown: its known prefix, if any, then `****`; each
/// of a comma-separated list (webhook secrets during a rotation) so.
fn mask(secret: &str) -> String {
    secret
        .split(',')
        .map(|one| {
            let one = one.trim();
            let prefix = KNOWN_PREFIXES
                .iter()
                .find(|prefix| one.len() > prefix.len() && one.starts_with(*prefix))
                .copied()
                .unwrap_or("");
            format!("{prefix}****")
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    /// Per setting: a value other than the default, as the file writes it and as the variable does.
    const SAMPLES: &[(&str, &str, &str)] = &[
        ("listen", "\"127.0.0.1:9001\"", "127.0.0.1:9001"),
        ("database_url", "\"sqlite://./other.db\"", "sqlite://./other.db"),
        (
            "master_key",
            "\"abababababababababababababababababababababababababababababababab\"",
            "abababababababababababababababababababababababababababababababab",
        ),
        ("mode", "\"production\"", "production"),
        ("sandbox", "false", "false"),
        ("log_format", "\"json\"", "json"),
        ("log_level", "\"debug\"", "debug"),
        ("workers", "3", "3"),
        ("default_provider", "\"mock\"", "mock"),
        ("provider_timeout", "\"45s\"", "45s"),
        (
            "providers.stripe.secret_key",
            "\"sk_test_sample\"",
            "sk_test_sample",
        ),
        (
            "providers.stripe.webhook_secrets",
            "\"whsec_a,whsec_b\"",
            "whsec_a,whsec_b",
        ),
        (
            "providers.stripe.api_base",
            "\"http://127.0.0.1:12111\"",
            "http://127.0.0.1:12111",
        ),
        ("providers.stripe.timeout_ms", "\"5000\"", "5000"),
        ("providers.stripe.max_retries", "\"1\"", "1"),
        ("providers.stripe.retry_backoff_ms", "\"100\"", "100"),
        ("providers.stripe.webhook_tolerance_secs", "\"60\"", "60"),
        ("providers.mock.seed", "\"7\"", "7"),
        (
            "providers.mock.webhook_secret",
            "\"whsec_sample\"",
            "whsec_sample",
        ),
        ("webhook_first_retry", "\"5s\"", "5s"),
        ("webhook_max_delay", "\"1h\"", "1h"),
        ("webhook_max_attempts", "3", "3"),
        ("webhook_timeout", "\"2s\"", "2s"),
        ("webhook_concurrency", "8", "8"),
        ("webhook_per_merchant", "2", "2"),
        ("webhook_endpoint_failures", "9", "9"),
        (
            "webhook_ca_file",
            "\"/etc/gateway/ca.pem\"",
            "/etc/gateway/ca.pem",
        ),
        ("webhook_sweep_interval", "\"5s\"", "5s"),
        ("reconcile_after", "\"1m\"", "1m"),
        ("reconcile_interval", "\"2s\"", "2s"),
        ("reconcile_concurrency", "2", "2"),
        ("retention", "\"8days\"", "8days"),
        ("max_body_bytes", "2048", "2048"),
        ("request_head_timeout", "\"2s\"", "2s"),
        ("body_read_timeout", "\"3s\"", "3s"),
        ("keep_alive", "\"0s\"", "0s"),
        ("client_disconnect_timeout", "\"2s\"", "2s"),
        ("max_connections", "10", "10"),
        ("backlog", "16", "16"),
        ("rate_limit_per_second", "7", "7"),
        ("rate_limit_burst", "900", "900"),
        ("auth_failures_per_minute", "0", "0"),
        ("live_per_merchant", "1", "1"),
        ("live_stream_max", "\"1m\"", "1m"),
        ("egress_allow_http", "false", "false"),
        ("egress_allow_nets", "[\"10.1.0.0/16\"]", "10.1.0.0/16"),
    ];

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: BTreeMap<String, String> = pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        move |name| pairs.get(name).cloned()
    }

    /// What `gateway config` shows with this file and environment.
    fn shown(file: Option<&str>, pairs: &[(&str, &str)]) -> String {
        let config = Config::from_sources(file, &env(pairs))
            .unwrap_or_else(|error| panic!("{file:?} {pairs:?}: {error}"));
        effective_toml(&config)
    }

    #[test]
    fn every_setting_has_one_key_and_one_variable_both_read() {
        let keys: BTreeSet<_> = SETTINGS.iter().map(|setting| setting.key).collect();
        let variables: BTreeSet<_> = SETTINGS.iter().map(|setting| setting.variable).collect();
        assert_eq!(keys.len(), SETTINGS.len(), "a file key twice");
        assert_eq!(variables.len(), SETTINGS.len(), "a variable twice");
        // Every variable the loader asks for is in the table, and every one of the table is asked for.
        let asked = RefCell::new(BTreeSet::new());
        let recording = |name: &str| {
            asked.borrow_mut().insert(name.to_owned());
            None
        };
        Config::from_sources(None, &recording).unwrap();
        let asked: BTreeSet<String> = asked.into_inner();
        let declared: BTreeSet<String> = variables.iter().map(|name| (*name).to_owned()).collect();
        assert_eq!(asked, declared, "variables read vs declared");
        // Every key of the file is in the table (the file's own struct, as Debug names its fields).
        let file = format!("{:?}", crate::server::config::FileConfig::default());
        for field in file
            .trim_start_matches("FileConfig {")
            .trim_end_matches('}')
            .split(", ")
            .filter_map(|field| field.split(':').next())
            .map(str::trim)
            .filter(|field| !field.is_empty() && *field != "providers")
        {
            assert!(keys.contains(field), "file key {field} has no row in SETTINGS");
        }
    }

    #[test]
    fn each_setting_set_in_the_file_or_the_environment_has_the_same_effect() {
        let default = shown(None, &[]);
        let sampled: BTreeSet<_> = SAMPLES.iter().map(|(key, _, _)| *key).collect();
        let keys: BTreeSet<_> = SETTINGS.iter().map(|setting| setting.key).collect();
        assert_eq!(sampled, keys, "every setting needs a sample here");
        for (key, file_value, env_value) in SAMPLES {
            let variable = SETTINGS
                .iter()
                .find(|setting| setting.key == *key)
                .unwrap()
                .variable;
            let file = format!("{key} = {file_value}\n");
            let from_file = shown(Some(&file), &[]);
            let from_env = shown(None, &[(variable, env_value)]);
            assert_eq!(from_file, from_env, "{key} from the file vs {variable}");
            assert_ne!(from_file, default, "{key} changed nothing");
            // And the environment wins over the file.
            let both = shown(Some(&file), &[(variable, env_value)]);
            assert_eq!(both, from_env, "{key}");
        }
    }

    #[test]
    fn the_deprecated_sandbox_setting_shows_through_the_mode() {
        let shown = shown(Some("sandbox = false\n"), &[]);
        assert!(shown.contains("mode = \"production\""), "{shown}");
    }

    #[test]
    fn secrets_are_masked_and_other_provider_settings_shown() {
        let master = "cd".repeat(32);
        let file = "[providers.stripe]\nwebhook_secret = \"whsec_file_only\"\n[providers.acme]\napi_token_key = \"tok_acme_secret\"\nregion = \"eu\"\n";
        let output = shown(
            Some(file),
            &[
                ("GATEWAY_MASTER_KEY", &master),
                ("STRIPE_SECRET_KEY", "sk_live_abcdef123456"),
                ("STRIPE_WEBHOOK_SECRET", "whsec_one,whsec_two"),
                ("GATEWAY_DATABASE_URL", "postgres://gw:pg_password@db/gateway"),
                ("GATEWAY_MOCK_WEBHOOK_SECRET", "whsec_mock_secret"),
            ],
        );
        for secret in [
            master.as_str(),
            "sk_live_abcdef123456",
            "whsec_one",
            "whsec_two",
            "pg_password",
            "whsec_mock_secret",
            "whsec_file_only",
            "tok_acme_secret",
        ] {
            assert!(!output.contains(secret), "{secret} shown:\n{output}");
        }
        for line in [
            "master_key = \"****\"",
            "providers.stripe.secret_key = \"sk_live_****\"",
            "providers.stripe.webhook_secrets = \"whsec_****,whsec_****\"",
            "providers.stripe.webhook_secret = \"whsec_****\"",
            "database_url = \"postgres://gw:****@db/gateway\"",
            "providers.acme.api_token_key = \"****\"",
            "providers.acme.region = \"eu\"",
        ] {
            assert!(output.contains(line), "{line} missing:\n{output}");
        }
        assert_eq!(mask("sk_test_"), "****", "a bare prefix is all secret");
    }

    #[test]
    fn the_output_is_toml_the_loader_reads_back() {
        let output = shown(Some("webhook_ca_file = \"/a \\\"b\\\"\"\n"), &[]);
        let table: toml::Table = toml::from_str(&output).unwrap_or_else(|error| panic!("{error}\n{output}"));
        assert_eq!(table["webhook_ca_file"].as_str(), Some("/a \"b\""));
        assert_eq!(table["mode"].as_str(), Some("sandbox"));
        assert!(output.contains("# master_key is not set"), "{output}");
        // Without secrets, what is shown configures the same gateway again.
        let again = shown(Some(&output), &[]);
        assert_eq!(again, output);
    }

    #[test]
    fn the_readme_table_lists_every_setting() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
        let rows: Vec<&str> = readme.lines().filter(|line| line.starts_with('|')).collect();
        for setting in SETTINGS {
            let key = format!("`{}`", setting.key);
            let variable = format!("`{}`", setting.variable);
            assert!(
                rows.iter()
                    .any(|row| row.contains(&key) && row.contains(&variable)),
                "README.md has no table row with {key} and {variable}"
            );
        }
    }
}
