//! A throttle for work that follows the pointer: at most one job in flight, and jobs started
//! at least an interval apart.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::engine::now;
use crate::page::sleep;

type Job = Rc<dyn Fn() -> Pin<Box<dyn Future<Output = ()>>>>;

#[derive(Default)]
struct State {
    /// A request arrived since the last job started.
    due: bool,
    /// The loop that runs jobs is active.
    running: bool,
    /// `performance.now()` at the start of the last job.
    last_start: f64,
}

/// Runs one job on request. Requests that arrive while a job runs, or within `interval_ms` of
/// the last start, collapse into one later run, so the job always ends up working on the latest
/// input. The job reads its input when it starts, not when it is requested.
#[derive(Clone, Copy)]
pub struct Throttle {
    state: StoredValue<State, LocalStorage>,
    job: StoredValue<Job, LocalStorage>,
    interval_ms: f64,
    /// Whether a request is waiting or a job is running.
    pub busy: ReadSignal<bool>,
    set_busy: WriteSignal<bool>,
}

impl Throttle {
    /// Creates a throttle that runs `job` at most once every `interval_ms` milliseconds.
    pub fn new<F, Fut>(interval_ms: f64, job: F) -> Self
    where
        F: Fn() -> Fut + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let job: Job = Rc::new(move || Box::pin(job()));
        let (busy, set_busy) = signal(false);
        Self {
            state: StoredValue::new_local(State::default()),
            job: StoredValue::new_local(job),
            interval_ms,
            busy,
            set_busy,
        }
    }

    /// Asks for a run of the job. Starts it at once when the throttle is idle and the last run
    /// started more than the interval ago.
    pub fn request(self) {
        let start_loop = self.state.try_update_value(|state| {
            state.due = true;
            !std::mem::replace(&mut state.running, true)
        });
        self.set_busy.set(true);
        if start_loop == Some(true) {
            spawn_local(self.run_loop());
        }
    }

    async fn run_loop(self) {
        loop {
            let Some((due, last_start)) = self.state.try_with_value(|state| (state.due, state.last_start)) else {
                return;
            };
            if !due {
                break;
            }
            let wait = last_start + self.interval_ms - now();
            if wait > 0.0 {
                sleep(wait).await;
            }

            self.state.update_value(|state| {
                state.due = false;
                state.last_start = now();
            });
            let Some(job) = self.job.try_get_value() else { return };
            job().await;
        }
        self.state.update_value(|state| state.running = false);
        self.set_busy.set(false);
    }
}
