//! HelmRelease: charts rendered with the real `helm` and applied through the same pipeline as
//! Kustomizations (staged server-side apply, inventory prune, drift, health, events, metrics).
//!
//! One module per stage: [`values`] merges `valuesFrom` and `values` and digests them;
//! [`render`] runs `helm template` as a bounded child process on a chart copied out of the
//! verified artifact; [`manifest`] takes the output apart into hooks and objects, [`chart`]
//! reads the CRDs Helm installs (subcharts a `condition`/`tags` disables left out);
//! [`postrender`] runs kustomize post-renderers with the native engine; [`hooks`] runs hook
//! phases; [`release`] is one reconcile end to end and [`status`] its conditions and history;
//! [`uninstall`] is removal with pre-/post-delete hooks; [`controller`] decides when. No Helm
//! storage Secret is written: the status (history snapshots, inventory) is the record of a
//! release.

pub mod chart;
pub mod controller;
pub mod desired;
pub mod hooks;
pub mod manifest;
pub mod postrender;
pub mod release;
pub mod render;
pub mod status;
pub mod uninstall;
pub mod values;

pub use release::{HelmContext, owner};
pub use render::HelmConfig;
