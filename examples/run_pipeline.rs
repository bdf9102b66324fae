//! Using `etl` as a library: load, validate and run a pipeline, then print the summary.
//!
//! `cargo run --example run_pipeline -- pipelines/web_logs.yaml`

use etl::load::{LoadOptions, load};
use etl::run::{RunOptions, report};
use etl::template::EnvMode;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let file = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "pipelines/web_logs.yaml".into());
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let opts = LoadOptions {
        vars: vec![],
        vars_file: None,
        extra_vars: Default::default(),
        ds: chrono::Utc::now().date_naive(),
        run_id: run_id.clone(),
        env_mode: EnvMode::Strict,
    };
    let loaded = load(file.as_ref(), &opts).map_err(|d| {
        anyhow::anyhow!(
            "{:?}",
            d.0.iter().map(|x| x.to_string()).collect::<Vec<_>>()
        )
    })?;
    let pipeline = etl::validate::validate(&loaded).map_err(|d| {
        anyhow::anyhow!(
            "{:?}",
            d.0.iter().map(|x| x.to_string()).collect::<Vec<_>>()
        )
    })?;
    match etl::run::run(&pipeline, &RunOptions::default(), &run_id).await {
        Ok(outcome) => println!("{}", report::summary_table(&outcome.steps)),
        Err(etl::run::RunError::Failed(outcome)) => {
            anyhow::bail!("run failed: {:?}", outcome.error.map(|d| d.to_string()))
        }
        Err(etl::run::RunError::Invalid(d)) => anyhow::bail!(
            "invalid: {:?}",
            d.0.iter().map(|x| x.to_string()).collect::<Vec<_>>()
        ),
        Err(etl::run::RunError::Locked(d)) => anyhow::bail!("locked: {d}"),
    }
    Ok(())
}
