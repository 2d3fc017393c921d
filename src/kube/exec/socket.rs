//! The exec connection's TCP stream with a read buffer underneath TLS.
//!
//! rustls asks its transport for at most 4 KiB at a time, so a bulk download costs about one
//! `recv` per 4 to 8 KiB. Reading the socket 64 KiB at a time here and serving rustls from memory
//! cuts those system calls by about eight for a fixed 64 KiB of memory.

use std::io::{self, Read, Write};
use std::net::TcpStream;

/// Bytes read from the socket at once (64 KiB).
const READ_BUFFER: usize = 64 << 10;

/// A TCP stream whose reads go through a fixed buffer; writes go straight to the socket.
pub(super) struct Socket {
    tcp: TcpStream,
    buf: Box<[u8]>,
    /// The unread bytes are `buf[start..end]`.
    start: usize,
    end: usize,
}

impl Socket {
    pub(super) fn new(tcp: TcpStream) -> Socket {
        Socket {
            tcp,
            buf: vec![0; READ_BUFFER].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    /// The TCP stream, e.g. to change its timeouts.
    pub(super) fn tcp(&self) -> &TcpStream {
        &self.tcp
    }
}

impl Read for Socket {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        // A read as large as the buffer gains nothing from going through it.
        if self.start == self.end && out.len() >= self.buf.len() {
            return self.tcp.read(out);
        }
        if self.start == self.end {
            self.end = self.tcp.read(&mut self.buf)?;
            self.start = 0;
        }
        let n = out.len().min(self.end - self.start);
        out[..n].copy_from_slice(&self.buf[self.start..self.start + n]);
        self.start += n;
        Ok(n)
    }
}

impl Write for Socket {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.tcp.write(data)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::thread;

    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("loopback bind");
        let client = TcpStream::connect(listener.local_addr().expect("bound address"))
            .expect("loopback connect");
        let (server, _) = listener.accept().expect("loopback accept");
        (client, server)
    }

    #[test]
    fn small_reads_see_every_byte_in_order_then_the_end() {
        let (client, mut server) = pair();
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
        let sent = data.clone();
        let writer = thread::spawn(move || server.write_all(&sent));
        let mut socket = Socket::new(client);

        let mut got = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match socket.read(&mut chunk).expect("read") {
                0 => break,
                n => got.extend_from_slice(&chunk[..n]),
            }
        }
        writer.join().expect("writer ends").expect("writes");
        assert_eq!(got, data);
    }

    #[test]
    fn writes_reach_the_peer_unbuffered() {
        let (client, mut server) = pair();
        let mut socket = Socket::new(client);
        socket.write_all(b"ping").expect("write");

        let mut got = [0u8; 4];
        server.read_exact(&mut got).expect("read");
        assert_eq!(&got, b"ping");
    }
}
