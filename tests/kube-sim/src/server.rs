//! The listener: a thread per connection, plain or TLS, keep-alive until the client closes.

use std::collections::HashMap;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use rustls::ServerConfig;

use crate::api::{self, Action, Ctx};
use crate::http::{Conn, ReadError, Response};
use crate::tls::Stream;
use crate::{exec, watch};

/// Open connections, so that stopping the simulator can cut them.
#[derive(Default)]
pub struct Connections {
    next: AtomicU64,
    open: Mutex<HashMap<u64, TcpStream>>,
}

impl Connections {
    fn add(&self, tcp: &TcpStream) -> Option<u64> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let clone = tcp.try_clone().ok()?;
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, clone);
        Some(id)
    }

    fn remove(&self, id: Option<u64>) {
        if let Some(id) = id {
            self.open
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
        }
    }

    /// Shuts every open connection down.
    pub fn close_all(&self) {
        for (_, tcp) in self.open.lock().unwrap_or_else(|p| p.into_inner()).drain() {
            let _ = tcp.shutdown(Shutdown::Both);
        }
    }
}

/// Accepts connections until `ctx.stopping` is set (then one more connect wakes it).
pub fn accept_loop(
    listener: TcpListener,
    ctx: Arc<Ctx>,
    tls: Option<Arc<ServerConfig>>,
    connections: Arc<Connections>,
) {
    for tcp in listener.incoming() {
        if ctx.stopping.load(Ordering::Relaxed) {
            return;
        }
        let Ok(tcp) = tcp else {
            continue;
        };
        let (ctx, tls, connections) = (ctx.clone(), tls.clone(), connections.clone());
        thread::spawn(move || {
            let id = connections.add(&tcp);
            serve_connection(tcp, &ctx, tls);
            connections.remove(id);
        });
    }
}

fn serve_connection(tcp: TcpStream, ctx: &Ctx, tls: Option<Arc<ServerConfig>>) {
    let _ = tcp.set_nodelay(true);
    let (stream, cert_user) = match tls {
        None => (Stream::Plain(tcp), None),
        Some(config) => match Stream::accept_tls(config, tcp) {
            Ok(accepted) => accepted,
            // A failed handshake (an unknown client certificate, a plain-HTTP client) ends here.
            Err(_) => return,
        },
    };
    let mut conn = Conn::new(stream);
    loop {
        let request = match conn.read_request() {
            Ok(request) => request,
            Err(ReadError::Malformed(what)) => {
                let _ = Response::text(400, &what).write_to(&mut conn.stream, true);
                return;
            }
            Err(_) => return,
        };
        match api::handle(ctx, &request, cert_user.as_deref()) {
            Action::Respond(response) => {
                let close = request.wants_close() || ctx.stopping.load(Ordering::Relaxed);
                if response.write_to(&mut conn.stream, close).is_err() || close {
                    return;
                }
            }
            Action::Watch(plan) => {
                let _ = watch::run(ctx, &plan, &mut conn.stream);
                return;
            }
            Action::Exec(plan) => {
                exec::run(plan, conn);
                return;
            }
        }
    }
}
