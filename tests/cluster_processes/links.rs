//! Network links between broker processes that a test can cut: each
//! directed link (broker A reaching broker B) is a TCP forwarder in the
//! test process, and A is told that B lives at the forwarder's address.
//! Cutting a link closes its open connections and refuses new ones, as a
//! network partition does to both Raft traffic and forwarded requests;
//! healing it lets connections through again.

use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// One directed link: connections made to `address` reach `target` while
/// the link is up.
pub struct Link {
    pub address: String,
    cut: Arc<watch::Sender<bool>>,
}

impl Link {
    /// Binds a fresh loopback port for a link; bind every link's port
    /// before choosing the brokers' ports, or the system may hand a link
    /// a port a broker is about to listen on.
    pub fn bind() -> std::net::TcpListener {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        listener
    }

    /// Starts forwarding connections made to `listener` to `target`.
    pub fn open(listener: std::net::TcpListener, target: String) -> Link {
        let listener = TcpListener::from_std(listener).unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let cut = Arc::new(watch::Sender::new(false));
        tokio::spawn(forward(listener, target, Arc::clone(&cut)));
        Link { address, cut }
    }

    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    pub fn heal(&self) {
        self.cut.send_replace(false);
    }
}

/// Accepts connections until the test's runtime ends; each is forwarded
/// until either side closes or the link is cut.
async fn forward(listener: TcpListener, target: String, cut: Arc<watch::Sender<bool>>) {
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else {
            return;
        };
        if *cut.borrow() {
            continue; // dropped: the connection is refused
        }
        let target = target.clone();
        let mut cut_seen = cut.subscribe();
        tokio::spawn(async move {
            let Ok(mut outbound) = TcpStream::connect(&target).await else {
                return;
            };
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                _ = cut_seen.wait_for(|cut| *cut) => {}
            }
        });
    }
}
