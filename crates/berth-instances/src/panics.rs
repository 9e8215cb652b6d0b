//! Panics of background work caught where the work is supervised (an instance's supervisor
//! here, the controller's lifecycle steps above), so that they end in a reported failure.

use futures_util::FutureExt;
use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;

/// A task that panicked, with the panic's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Panicked(pub String);

/// What `task` returns, or that it panicked.
pub async fn caught<T>(task: impl Future<Output = T>) -> Result<T, Panicked> {
    AssertUnwindSafe(task).catch_unwind().await.map_err(|panic| Panicked(panic_message(panic.as_ref())))
}

/// The text a panic was raised with (`panic!("...")` gives a `&str` or a `String`).
pub fn panic_message(panic: &(dyn Any + Send)) -> String {
    match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
        (Some(s), _) => (*s).to_string(),
        (_, Some(s)) => s.clone(),
        _ => "a panic without a message".to_string(),
    }
}
