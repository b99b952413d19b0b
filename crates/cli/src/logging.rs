//! Diagnostics on stderr, filtered by `CUSTODIA_LOG` (`EnvFilter` syntax, default `info`),
//! with one rule no filter can lift: below `info`, only Custodia's own crates log. Other
//! crates' debug and trace events print what they handle whole — s3s logs each request with its
//! `Authorization` header and presigned query string, which anyone reading the log could replay
//! to read plaintext through the gateway — and Custodia's own events never carry a secret.

use tracing::{Level, Metadata};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _, filter};

/// Whether an event or span may be logged at all, whatever `CUSTODIA_LOG` says.
pub(crate) fn allowed(meta: &Metadata<'_>) -> bool {
    *meta.level() <= Level::INFO || meta.target().starts_with("custodia")
}

/// Installs the stderr subscriber.
pub(crate) fn init() {
    let env = EnvFilter::try_from_env("CUSTODIA_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(env)
        .with_filter(filter::filter_fn(allowed));
    tracing_subscriber::registry().with(fmt).init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::callsite::Identifier;
    use tracing::field::FieldSet;
    use tracing::metadata::Kind;

    struct Site;
    impl tracing::callsite::Callsite for Site {
        fn set_interest(&self, _: tracing::subscriber::Interest) {}
        fn metadata(&self) -> &Metadata<'_> {
            unreachable!("not registered")
        }
    }
    static SITE: Site = Site;

    fn meta(target: &'static str, level: Level) -> Metadata<'static> {
        Metadata::new(
            "event",
            target,
            level,
            None,
            None,
            None,
            FieldSet::new(&[], Identifier(&SITE)),
            Kind::EVENT,
        )
    }

    #[test]
    fn other_crates_never_log_below_info() {
        for level in [Level::DEBUG, Level::TRACE] {
            for target in [
                "s3s::service",
                "s3s",
                "hyper::proto",
                "aws_sigv4::http_request",
                "rustls",
            ] {
                assert!(!allowed(&meta(target, level)), "{target} {level}");
            }
            for target in [
                "custodia_gateway::objects",
                "custodia_custodian",
                "custodia",
            ] {
                assert!(allowed(&meta(target, level)), "{target} {level}");
            }
        }
        for level in [Level::INFO, Level::WARN, Level::ERROR] {
            assert!(allowed(&meta("s3s::service", level)));
        }
    }
}
