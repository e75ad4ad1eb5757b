//! Frames from an IP camera's HTTP snapshot URL (e.g. `http://cam.local/snapshot.jpg`).

use std::time::Duration;

use async_trait::async_trait;

use super::{CameraError, FrameSource, MAX_FRAME_BYTES};

#[derive(Debug)]
pub struct HttpSource {
    client: reqwest::Client,
    url: String,
}

impl HttpSource {
    pub fn new(url: &str) -> Result<HttpSource, CameraError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| CameraError::Http(e.to_string()))?;
        Ok(HttpSource {
            client,
            url: url.to_string(),
        })
    }
}

#[async_trait]
impl FrameSource for HttpSource {
    async fn grab(&mut self) -> Result<Vec<u8>, CameraError> {
        let resp = self
            .client
            .get(&self.url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| CameraError::Http(e.to_string()))?;
        if let Some(len) = resp.content_length() {
            if len as usize > MAX_FRAME_BYTES {
                return Err(CameraError::TooLarge(len as usize));
            }
        }
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| CameraError::Http(e.to_string()))?;
        if bytes.len() > MAX_FRAME_BYTES {
            return Err(CameraError::TooLarge(bytes.len()));
        }
        Ok(bytes.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn fetches_a_snapshot_from_a_real_http_server() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            if let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: 4\r\nConnection: close\r\n\r\n\xff\xd8\xff\xd9")
                    .await;
            }
        });
        let mut src = HttpSource::new(&format!("http://{addr}/snapshot.jpg")).expect("client");
        assert_eq!(src.grab().await.expect("frame"), b"\xff\xd8\xff\xd9");
        let mut bad = HttpSource::new("http://127.0.0.1:1/none.jpg").expect("client");
        assert!(matches!(bad.grab().await, Err(CameraError::Http(_))));
    }
}
