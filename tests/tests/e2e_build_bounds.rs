//! Kustomize builds are bounded and run off the agent's async workers (defect 3 of issue 12):
//! a base chain past the engine's depth bound is `BuildFailed` naming the Kustomization, with
//! the engine's message, and nothing is applied; two slow builds at once do not stop a third
//! Kustomization from reconciling (builds on the agent's two async workers would hold both, and
//! with them the watch and every other reconcile).

mod e2e_support;

use std::time::Duration;

use anyhow::{Context, Result};
use e2e_support::{Env, NS, seed_spec};
use ferry_tests::upstream::Upstream;

const LIMIT: Duration = Duration::from_secs(60);

/// The message of the Ready condition, when there is one.
fn ready_of(ks: &ferry_proto::kustomization::Kustomization) -> Option<(String, String)> {
    ks.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| (c.reason.clone(), c.message.clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_base_chain_past_the_depth_bound_is_build_failed_naming_the_kustomization() -> Result<()>
{
    let mut env = Env::new().await?;
    const LEVELS: usize = 150;
    for level in 0..LEVELS {
        let body = if level + 1 == LEVELS {
            env.upstream.write(
                &format!("deep/l{level}/cm.yaml"),
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: deep-leaf\n",
            )?;
            "resources:\n- cm.yaml\n".to_string()
        } else {
            format!("resources:\n- ../l{}\n", level + 1)
        };
        env.upstream
            .write(&format!("deep/l{level}/kustomization.yaml"), body)?;
    }
    env.upstream.commit_push("a chain of 150 bases")?;
    env.start_source()?;
    env.start_agent()?;
    env.apply_kustomization("deep", seed_spec("./deep/l0"))
        .await?;
    let ks = env
        .wait_ready("deep", "False", "BuildFailed", LIMIT)
        .await?;
    let (_, message) = ready_of(&ks).context("Ready")?;
    assert!(
        message.contains(&format!("Kustomization {NS}/deep")),
        "names the Kustomization: {message}"
    );
    assert!(
        message.contains("bases nest deeper than 100 kustomizations"),
        "the engine's bound: {message}"
    );
    assert!(
        env.get("v1", "ConfigMap", "deep-leaf").await?.is_none(),
        "nothing applied"
    );
    Ok(())
}

/// A tree within the engine's bounds: `levels` of two name-prefixed bases each (each level's
/// kustomization and its two bases are built once per path to it), `objects` ConfigMaps at the
/// bottom, and at the top one object for another
/// namespace, which tenancy refuses once the whole build is done: slow to build, then
/// `BuildFailed`, never applied.
fn heavy(up: &Upstream, dir: &str, levels: usize, objects: usize) -> Result<()> {
    for level in 0..levels {
        let mut k = String::from("resources:\n");
        if level == 0 {
            k.push_str("- elsewhere.yaml\n");
            up.write(
                &format!("{dir}/l0/elsewhere.yaml"),
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: elsewhere\n",
            )?;
        }
        if level + 1 == levels {
            k.push_str("- objects.yaml\n");
            let docs: Vec<String> = (0..objects)
                .map(|i| format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c{i}\n"))
                .collect();
            up.write(&format!("{dir}/l{level}/objects.yaml"), docs.join("---\n"))?;
        } else {
            for b in 0..2 {
                k.push_str(&format!("- b{b}\n"));
                up.write(
                    &format!("{dir}/l{level}/b{b}/kustomization.yaml"),
                    format!("namePrefix: b{b}-\nresources:\n- ../../l{}\n", level + 1),
                )?;
            }
        }
        up.write(&format!("{dir}/l{level}/kustomization.yaml"), k)?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_builds_do_not_hold_up_other_kustomizations() -> Result<()> {
    let mut env = Env::new().await?;
    // 1021 kustomizations built (of the engine's 2000) and 9728 objects each: seconds of CPU
    // in a debug build.
    heavy(&env.upstream, "heavy-a", 9, 38)?;
    heavy(&env.upstream, "heavy-b", 9, 38)?;
    env.upstream.write(
        "light/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: light\n",
    )?;
    env.upstream
        .commit_push("two slow builds and a quick one")?;
    env.start_source()?;
    env.start_agent()?;
    env.apply_kustomization("heavy-a", seed_spec("./heavy-a/l0"))
        .await?;
    env.apply_kustomization("heavy-b", seed_spec("./heavy-b/l0"))
        .await?;
    env.apply_kustomization("light", seed_spec("./light"))
        .await?;

    env.wait_ready("light", "True", "ReconciliationSucceeded", LIMIT)
        .await?;
    // Both builds are still running: had they held the async workers, the light one could
    // only have run once one of them had finished (and written its BuildFailed).
    for name in ["heavy-a", "heavy-b"] {
        let ks = env.kustomization(name).await?;
        assert_ne!(
            ready_of(&ks).map(|(reason, _)| reason).as_deref(),
            Some("BuildFailed"),
            "{name} finished its build before the light Kustomization was reconciled"
        );
    }
    // And they were real builds, refused by tenancy at the end.
    for name in ["heavy-a", "heavy-b"] {
        let ks = env
            .wait_ready(name, "False", "BuildFailed", Duration::from_secs(180))
            .await?;
        let (_, message) = ready_of(&ks).context("Ready")?;
        assert!(message.contains("elsewhere"), "{name}: {message}");
    }
    Ok(())
}
