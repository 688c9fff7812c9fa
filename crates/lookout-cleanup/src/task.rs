//! The cleanup itself: a trait, implemented for async closures.

use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::context::RunContext;
use crate::stats::Stats;

/// A cleanup: given a run's context, does the work and returns what it did.
///
/// Closures `Fn(RunContext) -> impl Future<Output = Result<Stats, E>>` implement it; so can a
/// type of yours:
///
/// ```
/// use lookout_cleanup::{CleanupTask, RunContext, Stats};
///
/// struct TempFiles;
/// impl CleanupTask for TempFiles {
///     type Error = std::io::Error;
///     async fn run(&self, _ctx: RunContext) -> Result<Stats, std::io::Error> {
///         Ok(Stats { scanned: 3, removed: 2, ..Default::default() })
///     }
/// }
/// ```
///
/// An `Err` makes the run a `Failure` whose `error.type` is the error type's name; a panic is
/// caught and is a `Failure` with `error.type = "panic"`. Neither stops the schedule.
pub trait CleanupTask: Send + Sync + 'static {
    /// The error a run can return.
    type Error: Display + Send + 'static;

    /// Runs the cleanup once.
    fn run(&self, ctx: RunContext) -> impl Future<Output = Result<Stats, Self::Error>> + Send;
}

impl<F, Fut, E> CleanupTask for F
where
    F: Fn(RunContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Stats, E>> + Send + 'static,
    E: Display + Send + 'static,
{
    type Error = E;

    fn run(&self, ctx: RunContext) -> impl Future<Output = Result<Stats, E>> + Send {
        self(ctx)
    }
}

/// A failed run's error, as recorded.
#[derive(Debug, Clone)]
pub(crate) struct RunError {
    pub(crate) error_type: String,
    pub(crate) message: String,
}

pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Object-safe form of [`CleanupTask`].
pub(crate) trait DynTask: Send + Sync + 'static {
    fn run(self: Arc<Self>, ctx: RunContext) -> BoxFuture<Result<Stats, RunError>>;
}

impl<T: CleanupTask> DynTask for T {
    fn run(self: Arc<Self>, ctx: RunContext) -> BoxFuture<Result<Stats, RunError>> {
        Box::pin(async move {
            self.as_ref().run(ctx).await.map_err(|e| RunError {
                error_type: short_type_name::<T::Error>(),
                message: e.to_string(),
            })
        })
    }
}

/// The type's name without its module path (`std::io::Error` → `Error`, `my_crate::db::DbError`
/// → `DbError`): `error.type` should be short, readable and low-cardinality.
fn short_type_name<T>() -> String {
    let full = std::any::type_name::<T>();
    let head = full.split('<').next().unwrap_or(full);
    match head.rsplit_once("::") {
        Some((_, last)) => format!("{last}{}", &full[head.len()..]),
        None => full.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn error_type_is_the_short_type_name() {
        assert_eq!(super::short_type_name::<std::io::Error>(), "Error");
        assert_eq!(super::short_type_name::<String>(), "String");
        assert_eq!(
            super::short_type_name::<std::borrow::Cow<'static, str>>(),
            "Cow<'_, str>"
        );
    }
}
