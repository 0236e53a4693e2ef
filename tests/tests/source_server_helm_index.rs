//! How the source server reads a chart repository's `index.yaml`: the fast scanner for block
//! YAML reads real `helm repo index` output exactly as the general YAML parser (serde-saphyr)
//! does, and an index in another style (here JSON, which is flow-style YAML) is still served,
//! read by the general parser (counted in `ferry_source_helm_index_general_parses_total`).

mod source_server_support;

use anyhow::{Context, Result};
use ferry_source_server::helm::constraint::Constraint;
use ferry_source_server::helm::index::{Parser, Resolution, parse, parse_general};
use ferry_tests::upstream::ChartServer;
use ferry_tests::upstream::charts::{create_and_package, helm, index};
use source_server_support::*;

/// A Chart.yaml with what real charts carry (the fields that make an index large and varied).
fn chart_yaml(name: &str, version: &str) -> String {
    format!(
        r#"apiVersion: v2
name: {name}
version: {version}
appVersion: "1.0"
kubeVersion: ">=1.25.0-0"
type: application
deprecated: false
description: "A chart whose description is longer than eighty columns, so that the YAML writer wraps it, with \"quotes\", colons: like this, and a # hash"
home: https://example.com/{name}
icon: https://example.com/{name}.svg?size=64#top
keywords: [database, "cache: fast", '#1']
sources:
- https://github.com/example/{name}
maintainers:
- name: Example Maintainers
  email: maintainers@example.com
  url: https://example.com
annotations:
  artifacthub.io/images: |
    - name: {name}
      image: docker.io/example/{name}:{version}
  artifacthub.io/links: |-
    - name: docs
      url: https://example.com/docs
  category: Database
  licenses: Apache-2.0
"#
    )
}

#[test]
fn helm_repo_index_output_is_read_by_the_scanner_as_by_the_general_parser() -> Result<()> {
    let work = tempfile::tempdir()?;
    let home = work.path().join(".helm-home");
    let repo = work.path().join("repo");
    std::fs::create_dir_all(&repo)?;
    let versions = ["1.0.0", "1.1.0-rc.1", "2.0.0+build.7", "0.9.1"];
    for name in ["app", "db-operator", "web"] {
        let chart = work.path().join(name);
        helm(&home, &["create", &chart.display().to_string()])?;
        for version in versions {
            std::fs::write(chart.join("Chart.yaml"), chart_yaml(name, version))?;
            helm(
                &home,
                &[
                    "package",
                    &chart.display().to_string(),
                    "-d",
                    &repo.display().to_string(),
                ],
            )?;
        }
    }
    let spool = tempfile::tempdir()?;
    let any = Constraint::parse("*")?;
    for url in [None, Some("https://charts.example.com/sub")] {
        let _ = std::fs::remove_file(repo.join("index.yaml"));
        index(work.path(), &repo, url)?;
        let bytes = std::fs::read(repo.join("index.yaml"))?;
        let text = String::from_utf8_lossy(&bytes);
        // The output has what the scanner must handle: wrapped quoted scalars, block scalars,
        // sequences at the key's indentation.
        assert!(text.contains("description: 'A chart whose"), "{text}");
        assert!(text.contains("artifacthub.io/images: |"), "{text}");
        let fast = parse(&bytes[..], 50 << 20, spool.path())?;
        let general = parse_general(&bytes[..], 50 << 20)?;
        assert_eq!(fast.parser, Parser::Scanner, "{text}");
        assert_eq!(fast.table, general.table);
        assert_eq!((fast.digest, fast.size), (general.digest, general.size));
        assert_eq!((fast.table.charts(), fast.table.versions()), (3, 12));
        let Resolution::Found(v) = fast.table.resolve("db-operator", &any) else {
            panic!("db-operator not found in\n{text}");
        };
        assert_eq!(&*v.raw, "2.0.0+build.7");
        let file = "db-operator-2.0.0+build.7.tgz";
        let expected_url = match url {
            Some(u) => format!("{u}/{file}"),
            None => file.to_string(),
        };
        assert_eq!(
            v.urls.iter().map(|u| &**u).collect::<Vec<_>>(),
            [&*expected_url]
        );
        let tgz = std::fs::read(repo.join(file))?;
        assert_eq!(
            v.digest.as_deref(),
            Some(ferry_proto::Digest::of(&tgz).hex().as_str())
        );
        assert!(v.created.is_some());
    }
    Ok(())
}

fn general_parses(name: &str) -> String {
    format!(
        "ferry_source_helm_index_general_parses_total{{namespace=\"ns\",name=\"{name}\",kind=\"HelmRepository\"}}"
    )
}

fn repo_doc(name: &str, url: &str) -> String {
    format!(
        "apiVersion: source.ferry.dev/v1\nkind: HelmRepository\nmetadata:\n  name: {name}\n  \
         namespace: ns\nspec:\n  url: {url}\n  interval: 1h\n  timeout: 30s\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_in_flow_style_is_served_through_the_general_parser() -> Result<()> {
    let work = tempfile::tempdir()?;
    let block_dir = work.path().join("block");
    let flow_dir = work.path().join("flow");
    for dir in [&block_dir, &flow_dir] {
        create_and_package(work.path(), dir, "app", "1.0.0")?;
        create_and_package(work.path(), dir, "app", "1.2.0")?;
        index(work.path(), dir, None)?;
    }
    // The same index as JSON: valid YAML, all flow style, nothing the scanner recognises.
    let path = flow_dir.join("index.yaml");
    let value: serde_json::Value = serde_yaml::from_str(&std::fs::read_to_string(&path)?)?;
    std::fs::write(&path, serde_json::to_vec_pretty(&value)?)?;
    let flow_bytes = std::fs::read(&path)?;
    assert!(flow_bytes.starts_with(b"{"));

    let block = ChartServer::start(&block_dir, None).await?;
    let flow = ChartServer::start(&flow_dir, None).await?;
    let mut h = Harness::new(&join_docs(&[
        repo_doc("block", &block.url()),
        repo_doc("flow", &flow.url()),
    ]))?;
    h.start().await?;
    for name in ["block", "flow"] {
        let v: ferry_proto::api::HelmRepositoryView = ferry_tests::poll::until(
            &format!("HelmRepository ns/{name} to have an index"),
            WAIT,
            std::time::Duration::from_millis(20),
            || async {
                let v: ferry_proto::api::HelmRepositoryView = h
                    .get_json(&format!("/v1/helmrepositories/ns/{name}"))
                    .await?;
                Ok(v.status.artifact.is_some().then_some(v))
            },
        )
        .await?;
        let idx = v.status.artifact.context("index artifact")?;
        assert_eq!((idx.charts, idx.versions), (1, 2), "{name}");
        let a: ferry_proto::api::HelmChartArtifact = h
            .get_json(&format!(
                "/v1/helmrepositories/ns/{name}/charts/app?version=%5E1"
            ))
            .await?;
        assert_eq!(a.version, "1.2.0", "{name}");
        let gz = h.download(&a.url).await?;
        assert_eq!(digest_of(&gz)?, a.digest, "{name}");
    }
    // The count is taken before the index is published, so it is final here.
    assert_eq!(h.metric(&general_parses("flow")).await?, 1.0);
    assert_eq!(h.metric(&general_parses("block")).await?, 0.0);
    let revision: ferry_proto::api::HelmRepositoryView =
        h.get_json("/v1/helmrepositories/ns/flow").await?;
    assert_eq!(
        revision
            .status
            .artifact
            .context("artifact")?
            .revision
            .to_string(),
        format!("sha256:{}", ferry_proto::Digest::of(&flow_bytes).hex())
    );
    Ok(())
}
