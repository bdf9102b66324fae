//! Object stores for `s3://`, `gs://`, `az://` and `http(s)://` paths.
//!
//! A store is registered with the session the first time a pipeline names its bucket.
//! Credentials come from the usual environment variables (`AWS_ACCESS_KEY_ID`,
//! `GOOGLE_APPLICATION_CREDENTIALS`, `AZURE_STORAGE_ACCOUNT_NAME`, ...), or from a
//! connection's `options` when a source or sink names one.

use std::sync::Arc;

use datafusion::prelude::SessionContext;
use indexmap::IndexMap;
use object_store::ObjectStore;
use url::Url;

/// A store could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL does not parse.
    #[error("`{url}` is not a valid URL: {reason}")]
    BadUrl {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The scheme is not supported.
    #[error(
        "`{scheme}://` URLs are not supported (use s3://, gs://, az://, http(s):// or a local path)"
    )]
    Scheme {
        /// The scheme.
        scheme: String,
    },
    /// The store builder failed (bad option, missing credentials).
    #[error("cannot open {url}: {reason}")]
    Build {
        /// The bucket URL.
        url: String,
        /// Why.
        reason: String,
    },
}

/// Registers the store that serves `location` (a URL) and returns its base URL.
/// Local paths need nothing and return `None`.
pub fn ensure_store(
    ctx: &SessionContext,
    location: &str,
    options: Option<&IndexMap<String, String>>,
) -> Result<Option<Url>, StoreError> {
    if !crate::validate::is_url(location) || location.starts_with("file://") {
        return Ok(None);
    }
    let url = Url::parse(location).map_err(|e| StoreError::BadUrl {
        url: location.to_string(),
        reason: e.to_string(),
    })?;
    let host = url.host_str().unwrap_or_default().to_string();
    let base = Url::parse(&format!("{}://{}", url.scheme(), url.authority())).map_err(|e| {
        StoreError::BadUrl {
            url: location.to_string(),
            reason: e.to_string(),
        }
    })?;
    let store_url = datafusion::execution::object_store::ObjectStoreUrl::parse(base.as_str())
        .map_err(|e| StoreError::BadUrl {
            url: location.to_string(),
            reason: e.to_string(),
        })?;
    if ctx.runtime_env().object_store(&store_url).is_ok() {
        return Ok(Some(base));
    }
    let build_err = |e: object_store::Error| StoreError::Build {
        url: base.to_string(),
        reason: e.to_string(),
    };
    let opts: Vec<(String, String)> = options
        .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let store = match url.scheme() {
        "s3" | "s3a" | "gs" | "gcs" | "az" | "azure" | "abfs" | "abfss" | "http" | "https"
        | "memory" => build_store(url.scheme(), &host, &base, &opts).map_err(build_err)?,
        other => {
            return Err(StoreError::Scheme {
                scheme: other.to_string(),
            });
        }
    };
    ctx.register_object_store(&base, store);
    Ok(Some(base))
}

/// Applies `key = value` settings to an object-store builder.
fn configure<B, K>(
    mut builder: B,
    opts: &[(String, String)],
    set: impl Fn(B, K, &str) -> B,
) -> Result<B, object_store::Error>
where
    K: std::str::FromStr<Err = object_store::Error>,
{
    for (k, v) in opts {
        builder = set(builder, k.parse()?, v);
    }
    Ok(builder)
}

/// Builds the store for a bucket (or container, or HTTP host).
fn build_store(
    scheme: &str,
    host: &str,
    base: &Url,
    opts: &[(String, String)],
) -> Result<Arc<dyn ObjectStore>, object_store::Error> {
    use object_store::{aws, azure, gcp, http, memory};
    Ok(match scheme {
        "s3" | "s3a" => {
            let b = aws::AmazonS3Builder::from_env().with_bucket_name(host);
            Arc::new(configure(b, opts, |b, k, v| b.with_config(k, v))?.build()?)
        }
        "gs" | "gcs" => {
            let b = gcp::GoogleCloudStorageBuilder::from_env().with_bucket_name(host);
            Arc::new(configure(b, opts, |b, k, v| b.with_config(k, v))?.build()?)
        }
        "az" | "azure" | "abfs" | "abfss" => {
            let b = azure::MicrosoftAzureBuilder::from_env().with_container_name(host);
            Arc::new(configure(b, opts, |b, k, v| b.with_config(k, v))?.build()?)
        }
        "http" | "https" => {
            let client = object_store::ClientOptions::new().with_allow_http(scheme == "http");
            Arc::new(
                http::HttpBuilder::new()
                    .with_url(base.as_str())
                    .with_client_options(client)
                    .build()?,
            )
        }
        _ => Arc::new(memory::InMemory::new()),
    })
}
