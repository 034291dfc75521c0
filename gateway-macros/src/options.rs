//! The attribute's options: `name`, `retries`, `timeout`, `local_only`, `crate`.

use proc_macro2::TokenStream;
use syn::meta::ParseNestedMeta;
use syn::{LitBool, LitInt, LitStr, Path};

const KNOWN: &str =
    "expected one of `name = \"…\"`, `retries = N`, `timeout = \"30s\"`, `local_only`, `crate = path`";

/// Options given to `#[payment_handler(...)]`.
#[derive(Default)]
pub(crate) struct HandlerArgs {
    pub(crate) name: Option<String>,
    pub(crate) retries: Option<u32>,
    pub(crate) timeout_ms: Option<u64>,
    pub(crate) local_only: bool,
    pub(crate) krate: Option<Path>,
    seen: Vec<String>,
}

impl HandlerArgs {
    pub(crate) fn parse(tokens: TokenStream) -> syn::Result<Self> {
        let mut args = HandlerArgs::default();
        let parser = syn::meta::parser(|meta| args.option(meta));
        syn::parse::Parser::parse2(parser, tokens)?;
        Ok(args)
    }

    fn option(&mut self, meta: ParseNestedMeta<'_>) -> syn::Result<()> {
        let Some(key) = meta.path.get_ident().map(ToString::to_string) else {
            return Err(meta.error(format!("unknown option; {KNOWN}")));
        };
        if self.seen.contains(&key) {
            return Err(meta.error(format!("`{key}` is given twice; keep one")));
        }
        self.seen.push(key.clone());
        match key.as_str() {
            "name" => {
                let name: LitStr = meta.value()?.parse()?;
                if name.value().trim().is_empty() {
                    return Err(syn::Error::new_spanned(name, "the handler name cannot be empty"));
                }
                self.name = Some(name.value());
            }
            "retries" => {
                let retries: LitInt = meta.value()?.parse()?;
                self.retries = Some(retries.base10_parse().map_err(|_| {
                    syn::Error::new_spanned(
                        &retries,
                        "`retries` is a whole number of retries, e.g. `retries = 3`",
                    )
                })?);
            }
            "timeout" => {
                let timeout: LitStr = meta.value()?.parse()?;
                self.timeout_ms = Some(parse_duration_ms(&timeout.value()).ok_or_else(|| {
                    syn::Error::new_spanned(
                        &timeout,
                        "`timeout` is a positive duration with a unit: \"500ms\", \"30s\" or \"2m\"",
                    )
                })?);
            }
            "local_only" => {
                self.local_only = if meta.input.peek(syn::Token![=]) {
                    meta.value()?.parse::<LitBool>()?.value
                } else {
                    true
                };
            }
            "crate" => self.krate = Some(meta.value()?.parse()?),
            _ => return Err(meta.error(format!("unknown option `{key}`; {KNOWN}"))),
        }
        Ok(())
    }
}

/// `"500ms"`, `"30s"`, `"2m"` → milliseconds; `None` for anything else or zero.
fn parse_duration_ms(text: &str) -> Option<u64> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let factor = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        _ => return None,
    };
    number.checked_mul(factor).filter(|&ms| ms > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("500ms"), Some(500));
        assert_eq!(parse_duration_ms("30s"), Some(30_000));
        assert_eq!(parse_duration_ms("2m"), Some(120_000));
        for bad in ["", "30", "0s", "s", "1h", "-1s", "1.5s", " 1s"] {
            assert_eq!(parse_duration_ms(bad), None, "{bad}");
        }
    }
}
