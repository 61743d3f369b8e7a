//! The ready queue and the dispatcher that turns queued ids into activations, at most
//! `max_concurrent` at a time.

use std::collections::VecDeque;
use std::sync::Arc;

use foldhash::HashMap;
use tokio::task::AbortHandle;

use super::activation;
use super::shared::Shared;

/// Executions waiting to run and running.
///
/// Invariant: an id is in `ready` at most once and only if it is in `active`; an id in
/// `active` with `again == true` is running and must run once more when it ends.
#[derive(Default)]
pub(super) struct Queue {
    ready: VecDeque<String>,
    active: HashMap<String, Active>,
}

#[derive(Default)]
struct Active {
    again: bool,
    task: Option<AbortHandle>,
}

impl Queue {
    /// Returns whether the dispatcher has a new id to take.
    pub fn enqueue(&mut self, id: &str) -> bool {
        match self.active.get_mut(id) {
            Some(active) => {
                if active.task.is_some() {
                    active.again = true;
                }
                false
            }
            None => {
                self.active.insert(id.to_owned(), Active::default());
                self.ready.push_back(id.to_owned());
                true
            }
        }
    }

    /// How many executions are queued or running.
    pub fn len(&self) -> usize {
        self.active.len()
    }

    pub fn is_idle(&self) -> bool {
        self.active.is_empty()
    }

    fn pop(&mut self) -> Option<String> {
        self.ready.pop_front()
    }

    fn started(&mut self, id: &str, task: AbortHandle) {
        if let Some(active) = self.active.get_mut(id) {
            active.task = Some(task);
        }
    }

    /// Records that `id`'s activation ended; returns whether it must run again.
    fn finished(&mut self, id: &str) -> bool {
        match self.active.get_mut(id) {
            Some(active) if active.again => {
                *active = Active::default();
                self.ready.push_back(id.to_owned());
                true
            }
            Some(_) => {
                self.active.remove(id);
                false
            }
            None => false,
        }
    }

    /// Activations running now.
    pub fn running(&self) -> usize {
        self.active.values().filter(|a| a.task.is_some()).count()
    }

    /// The ids of the executions running now.
    pub fn running_ids(&self) -> Vec<String> {
        self.active
            .iter()
            .filter(|(_, a)| a.task.is_some())
            .map(|(id, _)| id.clone())
            .collect()
    }

    pub fn abort_all(&mut self) {
        for active in self.active.values() {
            if let Some(task) = &active.task {
                task.abort();
            }
        }
        self.active.clear();
        self.ready.clear();
    }
}

/// Takes ids off the queue and runs them, each holding a concurrency permit.
pub(super) async fn dispatch(shared: Arc<Shared>) {
    loop {
        let Ok(permit) = shared.permits.clone().acquire_owned().await else {
            return;
        };
        let id = loop {
            let changed = shared.queue_changed.notified();
            if shared.is_shutting_down() {
                return;
            }
            if let Some(id) = shared.queue().pop() {
                break id;
            }
            changed.await;
        };
        let task_shared = shared.clone();
        let task_id = id.clone();
        // Hold the queue lock across spawn so `started` cannot run after `finished`.
        let mut queue = shared.queue();
        let task = tokio::spawn(async move {
            activation::activate(&task_shared, &task_id).await;
            drop(permit);
            let (again, active) = {
                let mut queue = task_shared.queue();
                (queue.finished(&task_id), queue.len())
            };
            if again {
                task_shared.queue_changed.notify_one();
            }
            task_shared.timers.activation_ended(active);
            task_shared.idle.notify_waiters();
        });
        queue.started(&id, task.abort_handle());
    }
}
