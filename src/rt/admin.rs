//! The admin address: plain HTTP/1.1 connections on core 0, answered by the sans-IO
//! [`crate::admin::handle_request`].

use super::{now_ms, Core};
use crate::admin::{handle_request, AdminView, Handled, MAX_REQUEST};
use crate::registrar::BindingInfo;
use crate::sip::Aor;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Admin connections at once; more wait in the kernel's backlog.
const MAX_ADMIN_CONNECTIONS: usize = 64;
/// An admin client silent this long is dropped.
const ADMIN_IDLE: Duration = Duration::from_secs(30);

struct View<'a>(&'a Core);

impl AdminView for View<'_> {
    fn serving(&self) -> bool {
        !self.0.shared.stop.load(Ordering::Acquire)
    }

    fn bindings(&self, aor: &Aor) -> Vec<BindingInfo> {
        self.0.shared.bindings.list(aor, now_ms() / 1000)
    }

    fn render_metrics(&self, out: &mut Vec<u8>) {
        let bindings = self.0.shared.bindings.len() as u64;
        self.0.shared.metrics.render(bindings, out);
    }
}

pub(super) async fn serve(core: Rc<Core>, listener: TcpListener) {
    let open = Rc::new(std::cell::Cell::new(0usize));
    loop {
        let Ok(stream) = listener.accept().await else {
            glommio::timer::sleep(Duration::from_millis(50)).await;
            continue;
        };
        if open.get() >= MAX_ADMIN_CONNECTIONS {
            continue;
        }
        open.set(open.get() + 1);
        let (core, open) = (core.clone(), open.clone());
        glommio::spawn_local(async move {
            let _ = connection(&core, stream).await;
            open.set(open.get() - 1);
        })
        .detach();
    }
}

async fn connection(core: &Core, mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(ADMIN_IDLE))?;
    stream.set_write_timeout(Some(ADMIN_IDLE))?;
    let mut buf = vec![0u8; MAX_REQUEST];
    let mut have = 0;
    let mut out = Vec::new();
    loop {
        let n = stream.read(&mut buf[have..]).await?;
        if n == 0 {
            return Ok(());
        }
        have += n;
        let mut consumed = 0;
        let mut close = false;
        while let Handled::Answered {
            consumed: c,
            close: cl,
        } = handle_request(&buf[consumed..have], &View(core), &mut out)
        {
            consumed += c;
            if cl {
                close = true;
                break;
            }
        }
        stream.write_all(&out).await?;
        out.clear();
        if close {
            return Ok(());
        }
        buf.copy_within(consumed..have, 0);
        have -= consumed;
    }
}
