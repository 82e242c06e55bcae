//! Task events to containerd, in order, from one forwarding thread (request
//! handlers and the reaper only queue them).
//!
//! Events are encoded here with their fixed type URLs instead of through the
//! crate's publisher, whose `convert_to_any` looks the type name up by
//! reflection: that builds the protobuf descriptors of the whole events API
//! on the first event and keeps them on the heap for the shim's life.

use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use containerd_shim::event::Event;
use containerd_shim::protos::events::task::{
    TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskOOM, TaskPaused,
    TaskResumed, TaskStart,
};
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::{Message, MessageField};
use containerd_shim::protos::shim::event::Envelope;
use containerd_shim::protos::shim::events::ForwardRequest;
use containerd_shim::protos::ttrpc::context::Context;
use containerd_shim::protos::{Client, EventsClient};
use containerd_shim::util::timestamp;

const ATTEMPTS: usize = 3;

/// An event the shim publishes, with the protobuf type name containerd
/// decodes it by.
pub trait TaskEvent: Event + Message {
    const TYPE_URL: &'static str;
}

macro_rules! task_events {
    ($($t:ident),*) => {$(
        impl TaskEvent for $t {
            const TYPE_URL: &'static str = concat!("containerd.events.", stringify!($t));
        }
    )*};
}
task_events!(
    TaskCreate,
    TaskStart,
    TaskExit,
    TaskOOM,
    TaskExecAdded,
    TaskExecStarted,
    TaskPaused,
    TaskResumed,
    TaskDelete
);

/// A ready-to-send envelope (a publish that failed is retried).
type Queued = ForwardRequest;

#[derive(Default)]
struct Pending {
    count: Mutex<usize>,
    drained: Condvar,
}

#[derive(Clone)]
pub struct Publisher {
    tx: Sender<Queued>,
    pending: Arc<Pending>,
    namespace: Arc<str>,
}

impl Publisher {
    /// Starts the forwarding thread. `address` is containerd's TTRPC address,
    /// connected to on the first event and again after a failed publish (the
    /// crate's own publisher is not used: see the module comment).
    pub fn start(address: String, namespace: String) -> Publisher {
        let (tx, rx) = channel::<Queued>();
        let pending = Arc::new(Pending::default());
        let done = pending.clone();
        let forward = move || {
            let mut client: Option<EventsClient> = None;
            for req in rx.iter() {
                for attempt in 1..=ATTEMPTS {
                    if client.is_none() {
                        client = connect(&address)
                            .inspect_err(|e| log::warn!("connect to {address}: {e}"))
                            .ok();
                    }
                    let Some(c) = &client else { continue };
                    match c.forward(Context::default(), &req) {
                        Ok(_) => break,
                        Err(e) => {
                            let topic = &req.envelope.topic;
                            log::warn!("publish {topic} (attempt {attempt}): {e}");
                            client = None;
                        }
                    }
                }
                let mut count = done.count.lock().unwrap();
                *count -= 1;
                done.drained.notify_all();
                if *count == 0 {
                    drop(count);
                    // A burst of work (a create, a start, an exit) is over:
                    // give the heap it freed back to the kernel.
                    // SAFETY: malloc_trim has no preconditions.
                    unsafe { libc::malloc_trim(0) };
                }
            }
        };
        std::thread::Builder::new()
            .name("events".into())
            .stack_size(128 * 1024)
            .spawn(forward)
            .expect("spawn event thread");
        Publisher {
            tx,
            pending,
            namespace: namespace.into(),
        }
    }

    pub fn publish<E: TaskEvent>(&self, event: E) {
        let value = match event.write_to_bytes() {
            Ok(v) => v,
            Err(e) => {
                log::error!("encode {}: {e}", E::TYPE_URL);
                return;
            }
        };
        let envelope = Envelope {
            timestamp: timestamp().ok().into(),
            namespace: self.namespace.to_string(),
            topic: event.topic(),
            event: MessageField::some(Any {
                type_url: E::TYPE_URL.to_string(),
                value,
                ..Default::default()
            }),
            ..Default::default()
        };
        let req = ForwardRequest {
            envelope: MessageField::some(envelope),
            ..Default::default()
        };
        *self.pending.count.lock().unwrap() += 1;
        if self.tx.send(req).is_err() {
            *self.pending.count.lock().unwrap() -= 1;
        }
    }

    /// Waits (at most `limit`) until every queued event went out.
    pub fn flush(&self, limit: Duration) {
        let count = self.pending.count.lock().unwrap();
        let _ = self
            .pending
            .drained
            .wait_timeout_while(count, limit, |c| *c > 0);
    }
}

fn connect(address: &str) -> containerd_shim::Result<EventsClient> {
    let fd = containerd_shim::util::connect(address)?;
    Ok(EventsClient::new(Client::new(fd)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use containerd_shim::protos::protobuf::MessageFull;

    fn check<E: TaskEvent + MessageFull>() {
        assert_eq!(E::TYPE_URL, E::descriptor().full_name());
    }

    #[test]
    fn type_urls_are_the_protobuf_names() {
        check::<TaskCreate>();
        check::<TaskStart>();
        check::<TaskExit>();
        check::<TaskOOM>();
        check::<TaskExecAdded>();
        check::<TaskExecStarted>();
        check::<TaskPaused>();
        check::<TaskResumed>();
        check::<TaskDelete>();
    }
}
