//! The client side of the CRI streaming server's WebSocket protocol
//! (`v4.channel.k8s.io`), which the URLs of Attach, Exec and PortForward
//! lead to: every binary message starts with a channel number. Attach and
//! exec use channel 0 for stdin, 1 stdout, 2 stderr, 3 errors, 4 resize;
//! port-forwarding uses channels 2i (data) and 2i+1 (errors) for the i-th
//! `port` query parameter, each opened by a message carrying the port.

use std::io;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use tungstenite::client::IntoClientRequest;
use tungstenite::http::HeaderValue;
use tungstenite::{Message, WebSocket};

/// The channel protocol the streaming server speaks over WebSocket.
pub const PROTOCOL: &str = "v4.channel.k8s.io";

/// What went wrong on a stream.
#[derive(Debug)]
pub enum StreamError {
    Url(String),
    Io(io::Error),
    WebSocket(tungstenite::Error),
    /// No message within the read timeout.
    Timeout,
    /// The server closed the stream.
    Closed,
}

impl std::fmt::Display for StreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StreamError::Url(u) => write!(f, "not a streaming URL: {u}"),
            StreamError::Io(e) => write!(f, "stream: {e}"),
            StreamError::WebSocket(e) => write!(f, "stream: {e}"),
            StreamError::Timeout => write!(f, "stream: no message in time"),
            StreamError::Closed => write!(f, "stream: closed by the server"),
        }
    }
}

impl std::error::Error for StreamError {}

impl From<tungstenite::Error> for StreamError {
    fn from(e: tungstenite::Error) -> Self {
        match e {
            tungstenite::Error::Io(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                StreamError::Timeout
            }
            tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
                StreamError::Closed
            }
            e => StreamError::WebSocket(e),
        }
    }
}

/// One WebSocket connection to the streaming server.
pub struct Stream {
    ws: WebSocket<TcpStream>,
}

impl Stream {
    /// Opens `url` (`http://HOST:PORT/PATH`, as CRI returns it; `query` is
    /// appended, e.g. `port=8080`). Reads time out after `timeout`.
    pub fn open(url: &str, query: &str, timeout: Duration) -> Result<Stream, StreamError> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| StreamError::Url(url.into()))?;
        let host = rest.split('/').next().unwrap_or_default();
        let sep = if rest.contains('?') { '&' } else { '?' };
        let ws_url = if query.is_empty() {
            format!("ws://{rest}")
        } else {
            format!("ws://{rest}{sep}{query}")
        };
        let mut request = ws_url.into_client_request()?;
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", HeaderValue::from_static(PROTOCOL));
        let tcp = TcpStream::connect(host).map_err(StreamError::Io)?;
        tcp.set_read_timeout(Some(timeout))
            .map_err(StreamError::Io)?;
        let (ws, _) = tungstenite::client(request, tcp).map_err(|e| match e {
            tungstenite::HandshakeError::Failure(e) => StreamError::from(e),
            tungstenite::HandshakeError::Interrupted(_) => StreamError::Timeout,
        })?;
        Ok(Stream { ws })
    }

    /// Sends `data` on `channel`.
    pub fn send(&mut self, channel: u8, data: &[u8]) -> Result<(), StreamError> {
        let mut frame = Vec::with_capacity(data.len() + 1);
        frame.push(channel);
        frame.extend_from_slice(data);
        self.ws.send(Message::binary(frame))?;
        Ok(())
    }

    /// The next non-empty message: its channel and data.
    pub fn recv(&mut self) -> Result<(u8, Vec<u8>), StreamError> {
        loop {
            match self.ws.read()? {
                Message::Binary(b) if b.len() > 1 => return Ok((b[0], b[1..].to_vec())),
                Message::Close(_) => return Err(StreamError::Closed),
                _ => {}
            }
        }
    }

    /// Reads messages until the data received on `channel` contains
    /// `needle` or `limit` passed; returns everything received there.
    pub fn read_until(
        &mut self,
        channel: u8,
        needle: &[u8],
        limit: Duration,
    ) -> Result<Vec<u8>, StreamError> {
        let deadline = Instant::now() + limit;
        let mut got = Vec::new();
        while !got.windows(needle.len().max(1)).any(|w| w == needle) {
            if Instant::now() > deadline {
                return Err(StreamError::Timeout);
            }
            match self.recv() {
                Ok((c, data)) if c == channel => got.extend_from_slice(&data),
                Ok(_) | Err(StreamError::Timeout) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(got)
    }

    /// Closes the connection (the server then ends the attach or forward).
    pub fn close(mut self) {
        let _ = self.ws.close(None);
        let _ = self.ws.flush();
    }
}
