//! What the EC2 inventory and Route 53 publishing share about AWS: acting as another
//! account's role, and what an SDK error says on one line (the service's code, message and
//! HTTP status, or the cause chain of a request that never got an answer, never the request's
//! debug form). Every SDK crate re-exports the same types.

use aws_config::SdkConfig;
use aws_config::sts::AssumeRoleProvider;
#[cfg(feature = "ec2")]
use aws_sdk_ec2 as sdk;
#[cfg(all(feature = "route53", not(feature = "ec2")))]
use aws_sdk_route53 as sdk;
use sdk::config::SharedCredentialsProvider;
use sdk::config::http::HttpResponse;
use sdk::error::{ProvideErrorMetadata, SdkError};

/// The SDK's defaults (credential chain, region, retries) with our HTTPS client: rustls with
/// ring, the one TLS stack in the binary.
pub(crate) fn defaults() -> aws_config::ConfigLoader {
    let https = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(https)
}

/// `config` acting as `role` (another account), its credentials from STS as `session`.
pub(crate) async fn assume_role(config: &SdkConfig, role: &str, session: &str) -> SdkConfig {
    let provider = AssumeRoleProvider::builder(role)
        .session_name(session)
        .configure(config)
        .build()
        .await;
    config
        .to_builder()
        .credentials_provider(SharedCredentialsProvider::new(provider))
        .build()
}

/// `Code: message (HTTP status)` for a service error, else the causes joined, each once.
pub(crate) fn error_line<E>(e: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    if let SdkError::ServiceError(service) = e {
        let status = service.raw().status().as_u16();
        let err = service.err();
        return match (err.code(), err.message()) {
            (Some(code), Some(message)) => format!("{code}: {message} (HTTP {status})"),
            (Some(code), None) => format!("{code} (HTTP {status})"),
            _ => format!("HTTP {status}, with no error code the SDK could read"),
        };
    }
    let mut line = String::new();
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        let text = c.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
        cause = c.source();
    }
    line
}
