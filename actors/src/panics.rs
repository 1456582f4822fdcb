//! Panic messages for the actors that stop because of one. actix runs an actor's `stopped`
//! while a panic in one of its handlers unwinds, on the thread it happened on; the hook
//! installed here keeps each thread's last panic message (with its location) so `stopped` can
//! name the cause.

use std::cell::RefCell;
use std::sync::Once;

thread_local! {
    /// The message of the last panic on this thread.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Records every panic's message for the thread it happens on, keeping the previous hook.
/// Idempotent.
pub fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown payload".to_owned());
            let location = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            LAST_PANIC.with(|last| *last.borrow_mut() = Some(format!("{message}{location}")));
            previous(info);
        }));
    });
}

/// When the current thread is unwinding from a panic (an actor's `stopped` during a panic in
/// one of its handlers): the panic's message.
pub fn unwinding() -> Option<String> {
    std::thread::panicking().then(|| {
        LAST_PANIC
            .with(|last| last.borrow_mut().take())
            .unwrap_or_else(|| "unknown".to_owned())
    })
}

/// An actor the service cannot run without stopped because of a panic.
#[derive(Debug, Clone, PartialEq, Eq, actix::Message)]
#[rtype(result = "()")]
pub struct Panicked {
    /// Which actor.
    pub actor: &'static str,
    /// The panic's message and location.
    pub message: String,
}

/// Tells `to` (if any) that `actor` is stopping because of a panic, when it is; for an actor's
/// `stopped`.
pub fn report_if_unwinding(actor: &'static str, to: Option<&actix::Recipient<Panicked>>) {
    if let Some(message) = unwinding() {
        tracing::error!(actor, %message, "Actor panicked.");
        if let Some(to) = to {
            to.do_send(Panicked { actor, message });
        }
    }
}
