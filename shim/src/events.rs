//! Task events to containerd, in order, from one forwarding thread (request
//! handlers and the reaper only queue them).

use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use containerd_shim::event::Event;
use containerd_shim::protos::protobuf::MessageDyn;
use containerd_shim::publisher::RemotePublisher;
use containerd_shim::Context;

const ATTEMPTS: usize = 3;

/// A topic and a maker of the event (a publish that failed is retried).
type Queued = (String, Box<dyn Fn() -> Box<dyn MessageDyn> + Send>);

#[derive(Default)]
struct Pending {
    count: Mutex<usize>,
    drained: Condvar,
}

#[derive(Clone)]
pub struct Publisher {
    tx: Sender<Queued>,
    pending: Arc<Pending>,
}

impl Publisher {
    /// Starts the forwarding thread. `address` is containerd's TTRPC address,
    /// used to reconnect when a publish fails.
    pub fn start(remote: RemotePublisher, address: String, namespace: String) -> Publisher {
        let (tx, rx) = channel::<Queued>();
        let pending = Arc::new(Pending::default());
        let done = pending.clone();
        let forward = move || {
            let mut remote = Some(remote);
            for (topic, make) in rx.iter() {
                for attempt in 1..=ATTEMPTS {
                    if remote.is_none() {
                        remote = RemotePublisher::new(&address).ok();
                    }
                    let Some(r) = &remote else { continue };
                    match r.publish(Context::default(), &topic, &namespace, make()) {
                        Ok(()) => break,
                        Err(e) => {
                            log::warn!("publish {topic} (attempt {attempt}): {e}");
                            remote = None;
                        }
                    }
                }
                *done.count.lock().unwrap() -= 1;
                done.drained.notify_all();
            }
        };
        std::thread::Builder::new()
            .name("events".into())
            .stack_size(256 * 1024)
            .spawn(forward)
            .expect("spawn event thread");
        Publisher { tx, pending }
    }

    pub fn publish<E: Event + Clone + Send + 'static>(&self, event: E) {
        *self.pending.count.lock().unwrap() += 1;
        let topic = event.topic();
        let make = move || Box::new(event.clone()) as Box<dyn MessageDyn>;
        if self.tx.send((topic, Box::new(make))).is_err() {
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
