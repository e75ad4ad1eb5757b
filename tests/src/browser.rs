//! A real headless Chromium driven over WebDriver (Debian's `chromium` and
//! `chromium-driver`), for the web UI's end-to-end tests.
//!
//! Each [`Browser`] starts its own `chromedriver` on a free port with its own profile folder,
//! so tests run in parallel; dropping it ends the driver (and with it the browser). Call
//! [`Browser::close`] at the end of a test to end the WebDriver session cleanly first.
//! Screenshots go to `target/ui-screenshots/` (override with `METCON_SCREENSHOTS`).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::poll::{free_port, port_open};

/// Phone and 10-inch kiosk widths the screenshots are taken at.
pub const PHONE: (u32, u32) = (390, 844);
pub const KIOSK: (u32, u32) = (1280, 800);

#[derive(Debug)]
pub struct Browser {
    pub client: Client,
    pub base: String,
    driver: Child,
    _profile: tempfile::TempDir,
}

fn find_tool(candidates: &[&str]) -> Option<PathBuf> {
    candidates.iter().map(PathBuf::from).find(|p| p.exists())
}

impl Browser {
    /// Starts chromedriver and a headless Chromium whose pages are relative to `base`.
    pub async fn start(base: &str) -> Result<Browser> {
        let driver_bin = std::env::var_os("METCON_CHROMEDRIVER")
            .map(PathBuf::from)
            .or_else(|| find_tool(&["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]))
            .context("chromedriver not found: apt-get install chromium chromium-driver")?;
        let chrome_bin = std::env::var_os("METCON_CHROMIUM")
            .map(PathBuf::from)
            .or_else(|| find_tool(&["/usr/lib/chromium/chromium", "/usr/bin/chromium"]))
            .context("chromium not found: apt-get install chromium")?;
        let port = free_port();
        let driver = Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("while starting {}", driver_bin.display()))?;
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !port_open(port) {
            if std::time::Instant::now() > deadline {
                bail!("chromedriver did not listen on port {port} within 20 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir()?;
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chrome_bin,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-first-run", "--disable-extensions",
                    format!("--window-size={},{}", KIOSK.0, KIOSK.1),
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .context("while starting a WebDriver session in Chromium")?;
        Ok(Browser {
            client,
            base: base.trim_end_matches('/').to_string(),
            driver,
            _profile: profile,
        })
    }

    /// Opens `path` on the server.
    pub async fn open(&self, path: &str) -> Result<()> {
        self.client.goto(&format!("{}{path}", self.base)).await?;
        Ok(())
    }

    /// The path (and query) of the current page.
    pub async fn path(&self) -> Result<String> {
        let u = self.client.current_url().await?;
        Ok(match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_string(),
        })
    }

    pub async fn fill(&self, css: &str, text: &str) -> Result<()> {
        let e = self
            .client
            .find(Locator::Css(css))
            .await
            .with_context(|| css.to_string())?;
        e.clear().await?;
        e.send_keys(text).await?;
        Ok(())
    }

    pub async fn click(&self, css: &str) -> Result<()> {
        self.client
            .find(Locator::Css(css))
            .await
            .with_context(|| css.to_string())?
            .click()
            .await?;
        Ok(())
    }

    pub async fn text(&self, css: &str) -> Result<String> {
        Ok(self
            .client
            .find(Locator::Css(css))
            .await
            .with_context(|| css.to_string())?
            .text()
            .await?)
    }

    /// Chooses the option with `value` in the `<select>` at `css`.
    pub async fn select(&self, css: &str, value: &str) -> Result<()> {
        self.client
            .find(Locator::Css(css))
            .await
            .with_context(|| css.to_string())?
            .select_by_value(value)
            .await?;
        Ok(())
    }

    /// The current `value` of the form field at `css` (what is typed, not the attribute).
    pub async fn value(&self, css: &str) -> Result<Option<String>> {
        Ok(self
            .client
            .find(Locator::Css(css))
            .await
            .with_context(|| css.to_string())?
            .prop("value")
            .await?)
    }

    /// Scrolls the element at `css` to the top of the window (if it is there).
    pub async fn scroll_to(&self, css: &str) -> Result<()> {
        self.client
            .execute(
                "var e = document.querySelector(arguments[0]); if (e) { e.scrollIntoView({block: 'start'}); }",
                vec![json!(css)],
            )
            .await?;
        Ok(())
    }

    /// Starts a batch of `flow_id` from the station board and waits for its first step
    /// (`first`, a text of that step); the batch id from the page's URL.
    pub async fn start_batch(&self, flow_id: &str, first: &str) -> Result<String> {
        self.open("/").await?;
        self.wait_text("Station board", Duration::from_secs(30))
            .await?;
        self.select("#flow_id", flow_id).await?;
        self.click("#start-batch").await?;
        self.wait_text(first, Duration::from_secs(30)).await?;
        let p = self.path().await?;
        match p.strip_prefix("/batches/") {
            Some(id) => Ok(id.to_string()),
            None => bail!("not on a batch page: {p}"),
        }
    }

    /// On the approval queue: approves the first request with `reason`, signed with
    /// `password`, and waits for the answer (the confirmation, or the page with its refusal).
    pub async fn approve_first(&self, reason: &str, password: &str, answer: &str) -> Result<()> {
        self.fill("textarea[name=reason]", reason).await?;
        self.fill("input[name=password]", password).await?;
        self.click("button.approve").await?;
        self.wait_text(answer, Duration::from_secs(30)).await?;
        Ok(())
    }

    /// The whole page's visible text.
    pub async fn body(&self) -> Result<String> {
        self.text("body").await
    }

    /// Waits until the page's text contains `needle`; the text seen last in the error.
    pub async fn wait_text(&self, needle: &str, limit: Duration) -> Result<String> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let t = self.body().await.unwrap_or_default();
            if t.contains(needle) {
                return Ok(t);
            }
            if tokio::time::Instant::now() > deadline {
                bail!("the page never showed {needle:?}; it shows:\n{t}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Logs in through the form and waits for its answer: the next page, or the login page
    /// again with its error. (A click only dispatches the submit; opening another page before
    /// the answer arrived cancelled the login now and then.)
    pub async fn login(&self, username: &str, password: &str) -> Result<()> {
        self.open("/login").await?;
        self.fill("#username", username).await?;
        self.fill("#password", password).await?;
        self.click("form button[type=submit]").await?;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let left = !self.path().await?.starts_with("/login");
            let refused = self
                .client
                .find(fantoccini::Locator::Css("#login-error"))
                .await
                .is_ok();
            if left || refused {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                bail!("the login form got no answer within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn logout(&self) -> Result<()> {
        self.click("form.logout button").await
    }

    /// Saves a PNG of the page at phone and kiosk widths: `<name>-phone.png`, `<name>-kiosk.png`.
    pub async fn screenshots(&self, name: &str) -> Result<()> {
        self.shoot(name, None).await
    }

    /// Like [`Browser::screenshots`], with the element `css` scrolled to the top of the
    /// window at each width (a part of a long page).
    pub async fn screenshots_of(&self, name: &str, css: &str) -> Result<()> {
        self.shoot(name, Some(css)).await
    }

    async fn shoot(&self, name: &str, scroll_to: Option<&str>) -> Result<()> {
        let dir = std::env::var_os("METCON_SCREENSHOTS")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/ui-screenshots")
            });
        std::fs::create_dir_all(&dir)?;
        for (label, (w, h)) in [("phone", PHONE), ("kiosk", KIOSK)] {
            self.client.set_window_size(w, h).await?;
            if let Some(css) = scroll_to {
                self.scroll_to(css).await?;
            }
            let png = self.client.screenshot().await?;
            std::fs::write(dir.join(format!("{name}-{label}.png")), png)?;
        }
        self.client.set_window_size(KIOSK.0, KIOSK.1).await?;
        Ok(())
    }

    /// Ends the WebDriver session (the browser quits), then the driver.
    pub async fn close(mut self) -> Result<()> {
        let client = self.client.clone();
        client.close().await?;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        Ok(())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
