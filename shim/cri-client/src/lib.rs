//! A small blocking client for the Kubernetes Container Runtime Interface (CRI v1)
//! over a unix socket, e.g. containerd's CRI plugin. It wraps the generated
//! `runtime.v1` protos of the `k8s-cri` crate and a single-threaded tokio
//! runtime, so synchronous tests and tools can drive a CRI server the way the
//! kubelet does. Every call is bounded by the client's timeout.

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

/// The generated CRI v1 messages and services.
pub use k8s_cri::v1 as api;
/// gRPC status codes, for [`Error::code`].
pub use tonic::Code;

use api::image_service_client::ImageServiceClient;
use api::runtime_service_client::RuntimeServiceClient;

/// What went wrong with a CRI call.
#[derive(Debug)]
pub enum Error {
    /// The socket could not be reached.
    Connect(PathBuf, String),
    /// The server answered the call with an error status.
    Status(&'static str, tonic::Status),
    /// The call did not finish within the client's timeout.
    Timeout(&'static str, Duration),
    /// The tokio runtime could not be built.
    Runtime(std::io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Connect(p, e) => write!(f, "connect to CRI socket {}: {e}", p.display()),
            Error::Status(call, s) => write!(f, "{call}: {:?}: {}", s.code(), s.message()),
            Error::Timeout(call, d) => write!(f, "{call}: no answer within {d:?}"),
            Error::Runtime(e) => write!(f, "build tokio runtime: {e}"),
        }
    }
}

impl std::error::Error for Error {}

impl Error {
    /// The gRPC status code when the server answered with an error.
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            Error::Status(_, s) => Some(s.code()),
            _ => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

pub mod stream;

/// `e` and its sources, joined with ": ".
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        let text = inner.to_string();
        if !s.ends_with(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        source = inner.source();
    }
    s
}

/// A connection to one CRI server (runtime and image services).
pub struct Cri {
    rt: tokio::runtime::Runtime,
    runtime: RuntimeServiceClient<Channel>,
    image: ImageServiceClient<Channel>,
    timeout: Duration,
}

impl Cri {
    /// Connects to the CRI server listening on the unix socket `socket`.
    /// `timeout` bounds the connection and every later call.
    pub fn connect(socket: &Path, timeout: Duration) -> Result<Cri> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(Error::Runtime)?;
        let path = socket.to_path_buf();
        let channel = rt
            .block_on(async {
                // The URI is required by tonic but unused: the connector
                // always dials the socket.
                let endpoint = Endpoint::from_static("http://[::]:0").connect_timeout(timeout);
                let connect = endpoint.connect_with_connector(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move {
                        Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?))
                    }
                }));
                tokio::time::timeout(timeout, connect).await
            })
            .map_err(|_| {
                Error::Connect(socket.to_path_buf(), format!("timed out after {timeout:?}"))
            })?
            .map_err(|e| Error::Connect(socket.to_path_buf(), error_chain(&e)))?;
        Ok(Cri {
            rt,
            runtime: RuntimeServiceClient::new(channel.clone()),
            image: ImageServiceClient::new(channel),
            timeout,
        })
    }

    fn call<T, F>(&self, name: &'static str, fut: F) -> Result<T>
    where
        F: Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        let timeout = self.timeout;
        match self
            .rt
            .block_on(async move { tokio::time::timeout(timeout, fut).await })
        {
            Err(_) => Err(Error::Timeout(name, self.timeout)),
            Ok(Err(s)) => Err(Error::Status(name, s)),
            Ok(Ok(r)) => Ok(r.into_inner()),
        }
    }

    pub fn version(&mut self) -> Result<api::VersionResponse> {
        let mut c = self.runtime.clone();
        self.call("Version", async move {
            c.version(api::VersionRequest {
                version: "v1".into(),
            })
            .await
        })
    }

    pub fn status(&mut self) -> Result<api::StatusResponse> {
        let mut c = self.runtime.clone();
        self.call("Status", async move {
            c.status(api::StatusRequest { verbose: false }).await
        })
    }

    /// Runs a pod sandbox with `runtime_handler` (empty: the server's default);
    /// returns its id.
    pub fn run_pod_sandbox(
        &mut self,
        config: api::PodSandboxConfig,
        runtime_handler: &str,
    ) -> Result<String> {
        let mut c = self.runtime.clone();
        let req = api::RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: runtime_handler.into(),
        };
        self.call("RunPodSandbox", async move { c.run_pod_sandbox(req).await })
            .map(|r| r.pod_sandbox_id)
    }

    pub fn pod_sandbox_status(&mut self, id: &str) -> Result<api::PodSandboxStatusResponse> {
        let mut c = self.runtime.clone();
        let req = api::PodSandboxStatusRequest {
            pod_sandbox_id: id.into(),
            verbose: true,
        };
        self.call("PodSandboxStatus", async move {
            c.pod_sandbox_status(req).await
        })
    }

    pub fn list_pod_sandbox(&mut self) -> Result<Vec<api::PodSandbox>> {
        let mut c = self.runtime.clone();
        self.call("ListPodSandbox", async move {
            c.list_pod_sandbox(api::ListPodSandboxRequest { filter: None })
                .await
        })
        .map(|r| r.items)
    }

    pub fn stop_pod_sandbox(&mut self, id: &str) -> Result<()> {
        let mut c = self.runtime.clone();
        let req = api::StopPodSandboxRequest {
            pod_sandbox_id: id.into(),
        };
        self.call(
            "StopPodSandbox",
            async move { c.stop_pod_sandbox(req).await },
        )
        .map(|_| ())
    }

    pub fn remove_pod_sandbox(&mut self, id: &str) -> Result<()> {
        let mut c = self.runtime.clone();
        let req = api::RemovePodSandboxRequest {
            pod_sandbox_id: id.into(),
        };
        self.call("RemovePodSandbox", async move {
            c.remove_pod_sandbox(req).await
        })
        .map(|_| ())
    }

    /// Creates a container in pod `pod_id` (whose config was `sandbox_config`);
    /// returns its id.
    pub fn create_container(
        &mut self,
        pod_id: &str,
        config: api::ContainerConfig,
        sandbox_config: api::PodSandboxConfig,
    ) -> Result<String> {
        let mut c = self.runtime.clone();
        let req = api::CreateContainerRequest {
            pod_sandbox_id: pod_id.into(),
            config: Some(config),
            sandbox_config: Some(sandbox_config),
        };
        self.call(
            "CreateContainer",
            async move { c.create_container(req).await },
        )
        .map(|r| r.container_id)
    }

    pub fn start_container(&mut self, id: &str) -> Result<()> {
        let mut c = self.runtime.clone();
        let req = api::StartContainerRequest {
            container_id: id.into(),
        };
        self.call(
            "StartContainer",
            async move { c.start_container(req).await },
        )
        .map(|_| ())
    }

    /// Stops a container: its stop signal, then SIGKILL after `timeout_secs`.
    pub fn stop_container(&mut self, id: &str, timeout_secs: i64) -> Result<()> {
        let mut c = self.runtime.clone();
        let req = api::StopContainerRequest {
            container_id: id.into(),
            timeout: timeout_secs,
        };
        self.call("StopContainer", async move { c.stop_container(req).await })
            .map(|_| ())
    }

    pub fn remove_container(&mut self, id: &str) -> Result<()> {
        let mut c = self.runtime.clone();
        let req = api::RemoveContainerRequest {
            container_id: id.into(),
        };
        self.call(
            "RemoveContainer",
            async move { c.remove_container(req).await },
        )
        .map(|_| ())
    }

    pub fn list_containers(&mut self) -> Result<Vec<api::Container>> {
        let mut c = self.runtime.clone();
        self.call("ListContainers", async move {
            c.list_containers(api::ListContainersRequest { filter: None })
                .await
        })
        .map(|r| r.containers)
    }

    pub fn container_status(&mut self, id: &str) -> Result<api::ContainerStatusResponse> {
        let mut c = self.runtime.clone();
        let req = api::ContainerStatusRequest {
            container_id: id.into(),
            verbose: true,
        };
        self.call(
            "ContainerStatus",
            async move { c.container_status(req).await },
        )
    }

    pub fn container_stats(&mut self, id: &str) -> Result<api::ContainerStats> {
        let mut c = self.runtime.clone();
        let req = api::ContainerStatsRequest {
            container_id: id.into(),
        };
        self.call(
            "ContainerStats",
            async move { c.container_stats(req).await },
        )
        .map(|r| r.stats.unwrap_or_default())
    }

    /// Changes a running container's Linux resources (the kubelet's in-place
    /// resize and CPU manager use this).
    pub fn update_container_resources(
        &mut self,
        id: &str,
        linux: api::LinuxContainerResources,
    ) -> Result<()> {
        let mut c = self.runtime.clone();
        let req = api::UpdateContainerResourcesRequest {
            container_id: id.into(),
            linux: Some(linux),
            ..Default::default()
        };
        self.call("UpdateContainerResources", async move {
            c.update_container_resources(req).await
        })
        .map(|_| ())
    }

    /// Runs `cmd` in a running container and waits for it (at most
    /// `timeout_secs`, 0: no limit on the server's side).
    pub fn exec_sync(
        &mut self,
        id: &str,
        cmd: &[&str],
        timeout_secs: i64,
    ) -> Result<api::ExecSyncResponse> {
        let mut c = self.runtime.clone();
        let req = api::ExecSyncRequest {
            container_id: id.into(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout: timeout_secs,
        };
        self.call("ExecSync", async move { c.exec_sync(req).await })
    }

    /// The streaming URL for port-forwarding into pod `pod_id` (to `ports`).
    pub fn port_forward(&mut self, pod_id: &str, ports: &[i32]) -> Result<String> {
        let mut c = self.runtime.clone();
        let req = api::PortForwardRequest {
            pod_sandbox_id: pod_id.into(),
            port: ports.to_vec(),
        };
        self.call("PortForward", async move { c.port_forward(req).await })
            .map(|r| r.url)
    }

    /// The streaming URL for attaching to container `id`'s process.
    pub fn attach(&mut self, id: &str, stdin: bool, stdout: bool, stderr: bool) -> Result<String> {
        let mut c = self.runtime.clone();
        let req = api::AttachRequest {
            container_id: id.into(),
            stdin,
            tty: false,
            stdout,
            stderr,
        };
        self.call("Attach", async move { c.attach(req).await })
            .map(|r| r.url)
    }

    /// Asks the runtime to reopen container `id`'s log file (after the
    /// kubelet rotated it).
    pub fn reopen_container_log(&mut self, id: &str) -> Result<()> {
        let mut c = self.runtime.clone();
        let req = api::ReopenContainerLogRequest {
            container_id: id.into(),
        };
        self.call("ReopenContainerLog", async move {
            c.reopen_container_log(req).await
        })
        .map(|_| ())
    }

    pub fn list_images(&mut self) -> Result<Vec<api::Image>> {
        let mut c = self.image.clone();
        self.call("ListImages", async move {
            c.list_images(api::ListImagesRequest { filter: None }).await
        })
        .map(|r| r.images)
    }

    /// The image `reference` as the server knows it (`None`: not present).
    pub fn image_status(&mut self, reference: &str) -> Result<Option<api::Image>> {
        let mut c = self.image.clone();
        let req = api::ImageStatusRequest {
            image: Some(api::ImageSpec {
                image: reference.into(),
                ..Default::default()
            }),
            verbose: false,
        };
        self.call("ImageStatus", async move { c.image_status(req).await })
            .map(|r| r.image)
    }
}
