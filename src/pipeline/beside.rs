//! Threads beside the analysis (the reading thread of [`super::source`], the writing thread of
//! `report::json`): whether this process has a core for one, and starting one that takes a
//! value, which comes back when the thread cannot start.

use std::sync::mpsc;
use std::thread::{self, JoinHandle};

/// At least two cores for this process. With one (a CPU quota, `taskset -c 0`), a thread
/// beside the analysis only takes turns with it: reading ahead measured 0.174 s against 0.158 s
/// without (docs/performance.md, "Reading ahead").
pub fn second_core() -> bool {
    thread::available_parallelism().is_ok_and(|n| n.get() >= 2)
}

/// Starts a thread named `name` that runs `body` on `value`; `Err(value)` when the thread
/// cannot start (`spawn` would drop its closure, and the value with it).
pub fn spawn_taking<T, R>(name: &str, value: T, body: impl FnOnce(T) -> R + Send + 'static) -> Result<JoinHandle<R>, T>
where
    T: Send + 'static,
    R: Send + 'static,
{
    let (give, take) = mpsc::sync_channel::<T>(1);
    let spawned = thread::Builder::new().name(name.into()).spawn(move || {
        let Ok(value) = take.recv() else {
            unreachable!("the value is sent as soon as the thread is spawned")
        };
        body(value)
    });
    match spawned {
        Ok(handle) => {
            // The thread is waiting for it: the channel cannot be closed.
            let _ = give.send(value);
            Ok(handle)
        }
        Err(_) => Err(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_thread_gets_the_value() {
        let handle =
            spawn_taking("test-beside", vec![1, 2, 3], |v| v.iter().sum::<i32>()).unwrap_or_else(|_| panic!("spawn"));
        assert_eq!(handle.join().unwrap(), 6);
        let named = spawn_taking("test-beside", (), |()| thread::current().name().map(String::from))
            .unwrap_or_else(|_| panic!("spawn"));
        assert_eq!(named.join().unwrap().as_deref(), Some("test-beside"));
    }
}
