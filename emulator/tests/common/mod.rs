//! Shared harness of the integration tests: every test runs in a private
//! network namespace (its own thread, `unshare(CLONE_NEWNET)`, `lo` up, a
//! current-thread runtime), starts the emulator in-process on 127.0.0.1:0
//! and talks to it with a small signing client.
#![allow(dead_code)]

use std::future::Future;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, SystemTime};

use ecs_emulator::api::auth::{
    v2_sign, v2_string_to_sign, v3_canonical_request, v3_sign, v3_string_to_sign,
};
use ecs_emulator::api::params::Params;
use ecs_emulator::scenario::Scenario;
use ecs_emulator::{Config, Listeners, Running};
use futures_util::TryStreamExt;
use nix::sched::CloneFlags;
use serde_json::Value;

/// Runs `f` in a fresh private network namespace, or skips (prints why)
/// when not root — unless `CI=true`, where that is a failure.
pub fn in_netns<F, Fut>(f: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    if !nix::unistd::Uid::effective().is_root() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("network-namespace tests need root and CI=true makes them mandatory");
        }
        eprintln!("SKIPPED: network-namespace test needs root (set CI=true to make this fatal)");
        return;
    }
    let result = std::thread::spawn(move || {
        nix::sched::unshare(CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET) as root");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("current-thread runtime");
        rt.block_on(async move {
            lo_up().await;
            f().await;
        });
    })
    .join();
    if let Err(p) = result {
        std::panic::resume_unwind(p);
    }
}

async fn lo_up() {
    let (conn, handle, _) = rtnetlink::new_connection().expect("netlink socket");
    tokio::spawn(conn);
    handle
        .link()
        .set(rtnetlink::LinkUnspec::new_with_index(1).up().build())
        .execute()
        .await
        .expect("lo up");
}

/// Creates another private namespace (the emulated instance's) and returns
/// a handle on it.
pub fn new_instance_netns() -> OwnedFd {
    std::thread::spawn(|| {
        nix::sched::unshare(CloneFlags::CLONE_NEWNET).expect("unshare for instance netns");
        OwnedFd::from(std::fs::File::open("/proc/thread-self/ns/net").expect("open own netns"))
    })
    .join()
    .expect("instance netns thread")
}

/// A link seen in a namespace.
#[derive(Debug, Clone)]
pub struct Link {
    pub name: String,
    pub mac: String,
    pub tx_queues: u32,
    pub rx_queues: u32,
}

/// Dumps the links of namespace `ns` (other than `lo`).
pub async fn links_in(ns: &OwnedFd) -> Vec<Link> {
    let home = std::fs::File::open("/proc/thread-self/ns/net").expect("open current netns");
    nix::sched::setns(ns.as_fd(), CloneFlags::CLONE_NEWNET).expect("setns into instance");
    let conn = rtnetlink::new_connection();
    nix::sched::setns(home.as_fd(), CloneFlags::CLONE_NEWNET).expect("setns back");
    let (conn, handle, _) = conn.expect("netlink socket in instance netns");
    let task = tokio::spawn(conn);
    let mut out = Vec::new();
    let mut links = handle.link().get().execute();
    while let Some(l) = links.try_next().await.expect("link dump") {
        use rtnetlink::packet_route::link::LinkAttribute as A;
        let mut link = Link {
            name: String::new(),
            mac: String::new(),
            tx_queues: 0,
            rx_queues: 0,
        };
        for a in &l.attributes {
            match a {
                A::IfName(n) => link.name = n.clone(),
                A::Address(m) => {
                    link.mac = m
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<Vec<_>>()
                        .join(":")
                }
                A::NumTxQueues(n) => link.tx_queues = *n,
                A::NumRxQueues(n) => link.rx_queues = *n,
                _ => {}
            }
        }
        if link.name != "lo" {
            out.push(link);
        }
    }
    task.abort();
    out
}

/// A scenario with fast timings for tests.
pub fn fast_scenario() -> Scenario {
    let mut s = Scenario::builtin();
    let mut settings = s.settings.clone().unwrap_or_default();
    settings.timing.attach_delay_ms = 300;
    settings.timing.detach_delay_ms = 300;
    settings.timing.delete_delay_ms = 200;
    settings.timing.metadata_lag_ms = 200;
    s.settings = Some(settings);
    s
}

pub const ROOT_KEY: &str = "LTAIemulatorRootKey01";
pub const ROOT_SECRET: &str = "emulatorRootSecret0123456789abcd";
pub const RO_KEY: &str = "LTAIemulatorReadOnly1";
pub const RO_SECRET: &str = "emulatorReadOnlySecret0123456789";
pub const INSTANCE: &str = "i-emu0instance0001";
pub const PRIMARY: &str = "eni-emu0primary0001";
pub const ENI1: &str = "eni-emu0secondary001";
pub const ENI2: &str = "eni-emu0secondary002";
pub const ENI_OTHER_ZONE: &str = "eni-emu0otherzone01";
pub const ENI_OTHER_VPC: &str = "eni-emu0othervpc001";
pub const REGION: &str = "cn-hangzhou";

/// Signature version for the test client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sig {
    V2,
    V3,
}

/// Credentials for a call.
#[derive(Debug, Clone)]
pub struct Creds {
    pub key: String,
    pub secret: String,
    pub token: Option<String>,
}

impl Creds {
    pub fn root() -> Creds {
        Creds {
            key: ROOT_KEY.into(),
            secret: ROOT_SECRET.into(),
            token: None,
        }
    }
}

/// A running emulator plus a client.
pub struct Harness {
    pub running: Running,
    pub http: reqwest::Client,
    pub api: String,
    pub md: String,
    pub control: String,
}

/// Starts the emulator with `scenario`, hot-plugging into `netns`.
pub async fn start(scenario: Scenario, netns: Option<OwnedFd>) -> Harness {
    let api = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind api");
    let md = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind metadata");
    let running = ecs_emulator::start(
        Config {
            scenario,
            instance_netns: netns,
            instance_namespaces: Vec::new(),
            qemu_vms: Vec::new(),
        },
        Listeners {
            api,
            api_extra: Vec::new(),
            metadata: vec![md],
            instance_metadata: Vec::new(),
        },
    )
    .expect("emulator starts");
    let http = http_client();
    Harness {
        api: running.info.api_url.clone(),
        md: running.info.metadata_url.clone(),
        control: running.info.control_url.clone(),
        running,
        http,
    }
}

/// A reqwest client for loopback (no proxy). In a workspace build reqwest
/// has rustls without a provider (the agent's feature choice), so install
/// ring first; harmless otherwise.
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

fn nonce() -> String {
    ecs_emulator::util::random_hex::<16>()
}

impl Harness {
    /// Calls `action` as the owner with signature V2 (GET).
    pub async fn v2(&self, action: &str, params: &[(&str, &str)]) -> (u16, Value) {
        self.call(Sig::V2, &Creds::root(), action, params).await
    }

    /// Calls `action` as the owner with signature V3 (POST).
    pub async fn v3(&self, action: &str, params: &[(&str, &str)]) -> (u16, Value) {
        self.call(Sig::V3, &Creds::root(), action, params).await
    }

    /// Calls with explicit signature version and credentials; `RegionId`
    /// is added unless given.
    pub async fn call(
        &self,
        sig: Sig,
        creds: &Creds,
        action: &str,
        params: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut p: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if !p.iter().any(|(k, _)| k == "RegionId") {
            p.push(("RegionId".into(), REGION.into()));
        }
        let resp = match sig {
            Sig::V2 => {
                self.send_v2(creds, action, p, SystemTime::now(), &nonce())
                    .await
            }
            Sig::V3 => {
                self.send_v3(creds, action, p, SystemTime::now(), &nonce(), None)
                    .await
            }
        };
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.expect("JSON body");
        (status, body)
    }

    /// Sends a V2-signed GET.
    pub async fn send_v2(
        &self,
        creds: &Creds,
        action: &str,
        p: Vec<(String, String)>,
        time: SystemTime,
        nonce: &str,
    ) -> reqwest::Response {
        self.try_send_v2(creds, action, p, time, nonce)
            .await
            .expect("request sent")
    }

    /// Sends a V2-signed GET; transport errors are returned.
    pub async fn try_send_v2(
        &self,
        creds: &Creds,
        action: &str,
        mut p: Vec<(String, String)>,
        time: SystemTime,
        nonce: &str,
    ) -> reqwest::Result<reqwest::Response> {
        for (k, v) in [
            ("Action", action.to_string()),
            ("Version", "2014-05-26".to_string()),
            ("Format", "JSON".to_string()),
            ("AccessKeyId", creds.key.clone()),
            ("SignatureMethod", "HMAC-SHA1".to_string()),
            ("SignatureVersion", "1.0".to_string()),
            ("SignatureNonce", nonce.to_string()),
            (
                "Timestamp",
                humantime::format_rfc3339_seconds(time).to_string(),
            ),
        ] {
            p.push((k.to_string(), v));
        }
        if let Some(t) = &creds.token {
            p.push(("SecurityToken".into(), t.clone()));
        }
        let params = Params::from_pairs(p.clone());
        let sig = v2_sign(&creds.secret, &v2_string_to_sign("GET", &params));
        p.push(("Signature".into(), sig));
        let query: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(p)
            .finish();
        self.http.get(format!("{}?{query}", self.api)).send().await
    }

    /// Sends a V3-signed POST (parameters in the query, empty body);
    /// `tamper` changes the signature.
    pub async fn send_v3(
        &self,
        creds: &Creds,
        action: &str,
        p: Vec<(String, String)>,
        time: SystemTime,
        nonce: &str,
        tamper: Option<&str>,
    ) -> reqwest::Response {
        let query: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(p.iter())
            .finish()
            .replace('+', "%20");
        let host = self
            .api
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let mut headers = axum::http::HeaderMap::new();
        let hv = |s: &str| axum::http::HeaderValue::from_str(s).expect("header value");
        headers.insert("host", hv(&host));
        headers.insert("x-acs-action", hv(action));
        headers.insert("x-acs-version", hv("2014-05-26"));
        headers.insert(
            "x-acs-date",
            hv(&humantime::format_rfc3339_seconds(time).to_string()),
        );
        headers.insert("x-acs-signature-nonce", hv(nonce));
        headers.insert(
            "x-acs-content-sha256",
            hv("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        );
        if let Some(t) = &creds.token {
            headers.insert("x-acs-security-token", hv(t));
        }
        let mut signed: Vec<String> = headers.keys().map(|k| k.as_str().to_string()).collect();
        signed.sort();
        let canonical = v3_canonical_request("POST", &query, &headers, &signed, b"");
        let mut sig = v3_sign(&creds.secret, &v3_string_to_sign(&canonical));
        if let Some(t) = tamper {
            sig = t.to_string();
        }
        let auth = format!(
            "ACS3-HMAC-SHA256 Credential={},SignedHeaders={},Signature={sig}",
            creds.key,
            signed.join(";")
        );
        let mut req = self
            .http
            .post(format!("{}?{query}", self.api))
            .header("authorization", auth);
        for (k, v) in &headers {
            if k.as_str() != "host" {
                req = req.header(k.as_str(), v.to_str().expect("ascii"));
            }
        }
        req.send().await.expect("request sent")
    }

    /// GET on the metadata service with an optional token.
    pub async fn md(&self, path: &str, token: Option<&str>) -> (u16, String) {
        let mut req = self.http.get(format!("{}{path}", self.md));
        if let Some(t) = token {
            req = req.header("X-aliyun-ecs-metadata-token", t);
        }
        let resp = req.send().await.expect("metadata request");
        (resp.status().as_u16(), resp.text().await.expect("text"))
    }

    /// Merge-patches the settings through the control API.
    pub async fn patch_settings(&self, patch: Value) {
        let resp = self
            .http
            .patch(format!("{}/settings", self.control))
            .json(&patch)
            .send()
            .await
            .expect("control request");
        assert_eq!(
            resp.status().as_u16(),
            200,
            "{}",
            resp.text().await.unwrap_or_default()
        );
    }

    /// The call log.
    pub async fn calls(&self) -> Vec<Value> {
        let v: Value = self
            .http
            .get(format!("{}/calls", self.control))
            .send()
            .await
            .expect("control request")
            .json()
            .await
            .expect("json");
        v.as_array().cloned().unwrap_or_default()
    }

    /// Status of an ENI via DescribeNetworkInterfaceAttribute.
    pub async fn status(&self, eni: &str) -> String {
        let (code, v) = self
            .v2(
                "DescribeNetworkInterfaceAttribute",
                &[("NetworkInterfaceId", eni)],
            )
            .await;
        assert_eq!(code, 200, "{v}");
        v["Status"].as_str().unwrap_or_default().to_string()
    }

    /// Waits until `eni` has `status` (up to `max`), returning the time waited.
    pub async fn wait_status(&self, eni: &str, status: &str, max: Duration) -> Duration {
        let start = std::time::Instant::now();
        loop {
            if self.status(eni).await == status {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < max,
                "{eni} did not become {status} within {max:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Asserts an error answer: status, code and the documented body keys.
pub fn assert_error(got: &(u16, Value), status: u16, code: &str) {
    check_error(got, status, code, "request");
}

/// [`assert_error`] naming the request `what` in its failure message.
fn check_error(got: &(u16, Value), status: u16, code: &str, what: &str) {
    let (s, v) = got;
    assert_eq!(
        (*s, v["Code"].as_str().unwrap_or_default()),
        (status, code),
        "{what}: body: {v}"
    );
    for key in ["RequestId", "HostId", "Code", "Message", "Recommend"] {
        assert!(v.get(key).is_some(), "{what}: error body lacks {key}: {v}");
    }
}

/// What a table case must get back.
#[derive(Debug, Clone, Copy)]
pub enum Expect<'a> {
    /// HTTP 200.
    Ok,
    /// This HTTP status and `Code`, in a complete error body.
    Error(u16, &'a str),
}

/// One row of an API table: a request (signature, caller, action,
/// parameters) and what it must get back.
#[derive(Debug, Clone)]
pub struct Case<'a> {
    pub sig: Sig,
    pub creds: Option<&'a Creds>,
    pub action: &'a str,
    pub params: Vec<(&'a str, &'a str)>,
    pub expect: Expect<'a>,
}

impl<'a> Case<'a> {
    /// `action` as the owner with signature V2, expected to succeed.
    pub fn v2(action: &'a str, params: &[(&'a str, &'a str)]) -> Case<'a> {
        Case::new(Sig::V2, action, params)
    }

    /// `action` as the owner with signature V3, expected to succeed.
    pub fn v3(action: &'a str, params: &[(&'a str, &'a str)]) -> Case<'a> {
        Case::new(Sig::V3, action, params)
    }

    /// `action` as the owner with signature `sig`, expected to succeed.
    pub fn new(sig: Sig, action: &'a str, params: &[(&'a str, &'a str)]) -> Case<'a> {
        Case {
            sig,
            creds: None,
            action,
            params: params.to_vec(),
            expect: Expect::Ok,
        }
    }

    /// Signed with `creds` instead of the owner's key.
    pub fn by(mut self, creds: &'a Creds) -> Case<'a> {
        self.creds = Some(creds);
        self
    }

    /// Expected to fail with `status` and `code`.
    pub fn fails(mut self, status: u16, code: &'a str) -> Case<'a> {
        self.expect = Expect::Error(status, code);
        self
    }
}

impl Harness {
    /// Sends the cases in order (a later row sees what an earlier one
    /// changed), checks each answer and returns the bodies.
    pub async fn run(&self, cases: &[Case<'_>]) -> Vec<Value> {
        let root = Creds::root();
        let mut bodies = Vec::with_capacity(cases.len());
        for c in cases {
            let creds = c.creds.unwrap_or(&root);
            let got = self.call(c.sig, creds, c.action, &c.params).await;
            let what = format!("{:?} {} {:?}", c.sig, c.action, c.params);
            match c.expect {
                Expect::Ok => assert_eq!(got.0, 200, "{what}: {}", got.1),
                Expect::Error(status, code) => check_error(&got, status, code, &what),
            }
            bodies.push(got.1);
        }
        bodies
    }
}
