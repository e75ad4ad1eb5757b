//! Byte transports to a scale: a serial port (RS-232, USB adapters) or TCP (serial-to-LAN
//! converters), behind one small trait so drivers and the prober do not care which.

use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_serial::{DataBits, Parity, SerialPort, SerialPortBuilderExt, StopBits};

/// A duplex byte stream to a scale.
pub trait ScaleIo: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> ScaleIo for T {}

/// Serial parity as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParitySetting {
    None,
    Even,
    Odd,
}

/// Where the scale is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    Serial {
        path: String,
        baud: u32,
        data_bits: u8,
        parity: ParitySetting,
        stop_bits: u8,
    },
    Tcp {
        addr: String,
    },
}

impl Link {
    pub fn serial(path: &str, baud: u32) -> Link {
        Link::Serial {
            path: path.to_string(),
            baud,
            data_bits: 8,
            parity: ParitySetting::None,
            stop_bits: 1,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Link::Serial { path, baud, .. } => format!("{path} at {baud} baud"),
            Link::Tcp { addr } => format!("tcp://{addr}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot open serial port {path}: {source}")]
    Serial {
        path: String,
        source: tokio_serial::Error,
    },
    #[error("cannot connect to {addr}: {source}")]
    Tcp {
        addr: String,
        source: std::io::Error,
    },
    #[error("connecting to {0} timed out")]
    Timeout(String),
}

/// Opens the link. Serial input already buffered (stale output of the scale) is discarded.
pub async fn open(link: &Link) -> Result<Box<dyn ScaleIo>, TransportError> {
    match link {
        Link::Serial {
            path,
            baud,
            data_bits,
            parity,
            stop_bits,
        } => {
            let err = |source| TransportError::Serial {
                path: path.clone(),
                source,
            };
            let port = tokio_serial::new(path, *baud)
                .data_bits(if *data_bits == 7 {
                    DataBits::Seven
                } else {
                    DataBits::Eight
                })
                .parity(match parity {
                    ParitySetting::None => Parity::None,
                    ParitySetting::Even => Parity::Even,
                    ParitySetting::Odd => Parity::Odd,
                })
                .stop_bits(if *stop_bits == 2 {
                    StopBits::Two
                } else {
                    StopBits::One
                })
                .flow_control(tokio_serial::FlowControl::None)
                .open_native_async()
                .map_err(err)?;
            port.clear(tokio_serial::ClearBuffer::Input).map_err(err)?;
            Ok(Box::new(port))
        }
        Link::Tcp { addr } => {
            let stream = tokio::time::timeout(
                Duration::from_secs(5),
                tokio::net::TcpStream::connect(addr.as_str()),
            )
            .await
            .map_err(|_| TransportError::Timeout(addr.clone()))?
            .map_err(|source| TransportError::Tcp {
                addr: addr.clone(),
                source,
            })?;
            let _ = stream.set_nodelay(true);
            Ok(Box::new(stream))
        }
    }
}
