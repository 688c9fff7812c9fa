//! lookout's `RUST_LOG` filter: tracing-subscriber's `EnvFilter`, without its span callbacks when
//! the directives cannot need them.
//!
//! `EnvFilter` takes a shared lock in each of its four span callbacks (new span, enter, exit,
//! close) to look the span up among the ones a *dynamic* directive matched (`target[span{field}]`),
//! even when there is no dynamic directive at all: two uncontended lock round trips per span on
//! one thread, and a shared cache line bouncing between threads. Without a `[` in the directives
//! there is nothing for those callbacks to find, so this wrapper skips them; every decision
//! (`enabled`, callsite interest, the level hint) is still `EnvFilter`'s own, so the filtering is
//! exactly the same. With dynamic directives everything is forwarded. Written here because
//! tracing-subscriber exposes no switch for it (`has_dynamics` is private).

use tracing::span;
use tracing::subscriber::Interest;
use tracing::{Metadata, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, Filter, Layer};
use tracing_subscriber::registry::LookupSpan;

#[derive(Debug)]
pub(crate) struct LookoutFilter {
    inner: EnvFilter,
    /// A directive names a span or fields: the span callbacks are needed.
    dynamic: bool,
}

impl LookoutFilter {
    /// `directives` in `RUST_LOG` syntax (validated when the settings were read); `info` if they
    /// do not parse.
    pub(crate) fn new(directives: &str) -> Self {
        match EnvFilter::builder().parse(directives) {
            Ok(inner) => LookoutFilter {
                inner,
                dynamic: directives.contains('['),
            },
            Err(_) => LookoutFilter {
                inner: EnvFilter::new("info"),
                dynamic: false,
            },
        }
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for LookoutFilter {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        Layer::<S>::register_callsite(&self.inner, metadata)
    }
    fn max_level_hint(&self) -> Option<LevelFilter> {
        Layer::<S>::max_level_hint(&self.inner)
    }
    fn enabled(&self, metadata: &Metadata<'_>, ctx: Context<'_, S>) -> bool {
        Layer::<S>::enabled(&self.inner, metadata, ctx)
    }
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        if self.dynamic {
            Layer::<S>::on_new_span(&self.inner, attrs, id, ctx);
        }
    }
    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: Context<'_, S>) {
        if self.dynamic {
            Layer::<S>::on_record(&self.inner, id, values, ctx);
        }
    }
    fn on_enter(&self, id: &span::Id, ctx: Context<'_, S>) {
        if self.dynamic {
            Layer::<S>::on_enter(&self.inner, id, ctx);
        }
    }
    fn on_exit(&self, id: &span::Id, ctx: Context<'_, S>) {
        if self.dynamic {
            Layer::<S>::on_exit(&self.inner, id, ctx);
        }
    }
    fn on_close(&self, id: span::Id, ctx: Context<'_, S>) {
        if self.dynamic {
            Layer::<S>::on_close(&self.inner, id, ctx);
        }
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Filter<S> for LookoutFilter {
    fn enabled(&self, meta: &Metadata<'_>, ctx: &Context<'_, S>) -> bool {
        Filter::<S>::enabled(&self.inner, meta, ctx)
    }
    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        Filter::<S>::callsite_enabled(&self.inner, meta)
    }
    fn max_level_hint(&self) -> Option<LevelFilter> {
        Filter::<S>::max_level_hint(&self.inner)
    }
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        if self.dynamic {
            Filter::<S>::on_new_span(&self.inner, attrs, id, ctx);
        }
    }
    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: Context<'_, S>) {
        if self.dynamic {
            Filter::<S>::on_record(&self.inner, id, values, ctx);
        }
    }
    fn on_enter(&self, id: &span::Id, ctx: Context<'_, S>) {
        if self.dynamic {
            Filter::<S>::on_enter(&self.inner, id, ctx);
        }
    }
    fn on_exit(&self, id: &span::Id, ctx: Context<'_, S>) {
        if self.dynamic {
            Filter::<S>::on_exit(&self.inner, id, ctx);
        }
    }
    fn on_close(&self, id: span::Id, ctx: Context<'_, S>) {
        if self.dynamic {
            Filter::<S>::on_close(&self.inner, id, ctx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt as _;

    /// Which of a debug event in and out of a span named `hot` pass `directives`.
    fn passes(directives: &str) -> (bool, bool) {
        use std::sync::{Arc, Mutex};
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(move || Sink(sink.clone()))
            .without_time()
            .with_ansi(false);
        let subscriber = tracing_subscriber::registry()
            .with(LookoutFilter::new(directives))
            .with(layer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info_span!("hot").in_scope(|| tracing::debug!("inside"));
            tracing::debug!("outside");
        });
        let text = String::from_utf8(seen.lock().expect("lock").clone()).expect("utf-8");
        (text.contains("inside"), text.contains("outside"))
    }

    struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn filters_as_env_filter_does_with_and_without_span_directives() {
        assert_eq!(passes("info"), (false, false));
        assert_eq!(passes("debug"), (true, true));
        // A span directive: only inside `hot`. Needs the span callbacks, which are kept.
        assert_eq!(passes("info,[hot]=debug"), (true, false));
        assert!(LookoutFilter::new("info,[hot]=debug").dynamic);
        assert!(!LookoutFilter::new("info,my_crate=debug").dynamic);
    }
}
