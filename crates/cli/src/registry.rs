//! `sae-geometry registry`.

use sae_core::Registry;

/// Arguments of `registry`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A release whose SAEs to list; without it, list the releases.
    pub release: Option<String>,
}

/// Runs `registry`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let reg = Registry::get()?;
    match args.release {
        None => {
            // name, repo, SAE count, layout: `saelens` or SAELens's converter for a
            // third-party layout (every one loads; `temporal` SAEs encode sequences).
            for (name, r) in &reg.releases {
                let layout = match r.conversion_func {
                    None => "saelens".to_string(),
                    Some(c) => c.to_string(),
                };
                println!("{name}\t{}\t{} SAEs\t{layout}", r.repo_id, r.saes.len());
            }
        }
        Some(name) => {
            let r = reg.release(&name)?;
            println!(
                "# {name}: {} ({}; layout {})",
                r.repo_id,
                r.model.as_deref().unwrap_or("?"),
                r.conversion_func
                    .map_or_else(|| "saelens".to_string(), |c| c.to_string())
            );
            println!("id\tpath\tneuronpedia\tl0\tvariance_explained");
            let fmt = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
            for s in &r.saes {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    s.id,
                    s.path,
                    s.neuronpedia.as_deref().unwrap_or(""),
                    fmt(s.l0),
                    fmt(s.variance_explained)
                );
            }
        }
    }
    Ok(())
}
