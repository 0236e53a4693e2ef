//! The build pipeline (kustomize's `kusttarget.go`). [`build`] loads the top kustomization,
//! accumulates it recursively, then runs the top-level-only steps: content hashes,
//! name-reference fix-up, vars, local-config removal and the sort.

use std::cell::RefCell;

use crate::value::Value;

use crate::error::{Error, Location, Result};
use crate::fieldspec::{ConfigDef, FieldSpec, TransformerConfig};
use crate::fs::{EntryKind, FileSystem, RelPath};
use crate::kustomization::{FILE_NAMES, Kustomization};
use crate::loader::{KustCtx, LoadRestrictor};
use crate::preload;
use crate::resource::{IdIndex, ResMap, Resource};
use crate::{generators, nameref, patches, sort, transform, vars, yaml};

/// Build settings.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    pub load_restrictor: LoadRestrictor,
}

/// A finished build: objects in output order, plus warnings for stderr.
#[derive(Debug, Clone)]
pub struct Output {
    pub resources: ResMap,
    pub warnings: Vec<String>,
}

impl Output {
    /// Multi-document YAML, like `kustomize build`.
    pub fn to_yaml(&self) -> String {
        yaml::to_yaml_stream(self.resources.iter().map(|r| &r.obj))
    }
}

/// Resources plus what travels with them up the tree (kustomize's `ResAccumulator`).
#[derive(Default)]
struct Accumulator {
    resources: ResMap,
    /// Field specs from `configurations:`/`crds:` here and below; the builtin defaults are
    /// added only when transformers run (merging them at every level was quadratic).
    config_extra: TransformerConfig,
    vars: Vec<vars::VarDef>,
}

impl Accumulator {
    /// Builtin field specs plus any custom ones.
    fn config(&self) -> std::borrow::Cow<'static, TransformerConfig> {
        if self.config_extra == TransformerConfig::default() {
            std::borrow::Cow::Borrowed(TransformerConfig::builtin())
        } else {
            let mut c = TransformerConfig::builtin().clone();
            c.merge(&self.config_extra);
            std::borrow::Cow::Owned(c)
        }
    }

    fn merge(&mut self, other: Accumulator, at: &Location, index: &mut IdIndex) -> Result<()> {
        self.resources
            .append_all_indexed(other.resources, index)
            .map_err(|id| Error::Conflict {
                at: at.clone(),
                id: id.to_string(),
            })?;
        self.config_extra.merge(&other.config_extra);
        vars::merge(&mut self.vars, other.vars, at)
    }
}

struct Builder<'a> {
    fs: &'a dyn FileSystem,
    opts: &'a BuildOptions,
    warnings: RefCell<Vec<String>>,
    /// Directories being built, for cycle detection.
    stack: RefCell<Vec<RelPath>>,
    /// Kustomizations (bases, components, the root) built so far, counting repeats.
    visits: std::cell::Cell<usize>,
}

/// Bounds on hostile trees. A chain of bases deeper than this would only come from a
/// generator gone wrong (real trees nest a handful of levels), and each level costs native
/// stack. Kustomizations built in total, repeats included, bound the work of 2^N diamonds
/// that hold few objects; objects per build bound their memory.
pub const MAX_DEPTH: usize = 100;
pub const MAX_KUSTOMIZATIONS: usize = 2_000;
pub const MAX_OBJECTS: usize = 20_000;

/// Stops a build whose objects pass [`MAX_OBJECTS`], checked as each base is merged so the
/// excess is at most one base's worth.
fn check_objects(ra: &Accumulator, ctx: &KustCtx<'_>) -> Result<()> {
    if ra.resources.len() > MAX_OBJECTS {
        return Err(Error::TooLarge {
            file: ctx.file.to_string(),
            msg: format!("renders more than {MAX_OBJECTS} objects"),
        });
    }
    Ok(())
}

/// Stack for a build: each nested kustomization takes tens of KiB of it in debug builds, so
/// [`MAX_DEPTH`] levels would not fit the 2 MiB of a test or tokio worker thread. Only the
/// pages a build touches are committed.
const BUILD_STACK: usize = 64 << 20;

/// Builds the kustomization in `dir` (relative to the root of `fs`), on a thread of its own
/// with a stack sized for [`MAX_DEPTH`].
pub fn build(fs: &dyn FileSystem, dir: &RelPath, opts: &BuildOptions) -> Result<Output> {
    std::thread::scope(|s| {
        match std::thread::Builder::new()
            .name("kustomize-build".into())
            .stack_size(BUILD_STACK)
            .spawn_scoped(s, || build_here(fs, dir, opts))
        {
            Ok(handle) => handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            // No thread to be had (resource limits): build on this one; MAX_DEPTH still holds.
            Err(_) => build_here(fs, dir, opts),
        }
    })
}

fn build_here(fs: &dyn FileSystem, dir: &RelPath, opts: &BuildOptions) -> Result<Output> {
    let b = Builder {
        fs,
        opts,
        warnings: RefCell::new(Vec::new()),
        stack: RefCell::new(Vec::new()),
        visits: std::cell::Cell::new(0),
    };
    let (file, kust) = b.load(dir, None)?;
    let ctx = b.ctx(dir, &file);
    let mut ra = b.accumulate(dir, &file, &kust, Accumulator::default())?;
    generators::add_hashes(&mut ra.resources);
    let cfg = ra.config();
    nameref::fix(&mut ra.resources, &cfg.name_reference, &ctx.loc(""))?;
    vars::resolve(&mut ra.resources, &ra.vars, &cfg.var_reference)?;
    crate::metadata::finish(&mut ra.resources, &kust, &ctx)?;
    crate::metadata::normalize_annotations(&mut ra.resources);
    sort::sort(&mut ra.resources, &kust.sort_options);
    Ok(Output {
        resources: ra.resources,
        warnings: b.warnings.into_inner(),
    })
}

impl<'a> Builder<'a> {
    fn ctx<'b>(&'b self, dir: &RelPath, file: &RelPath) -> KustCtx<'b> {
        KustCtx {
            fs: self.fs,
            dir: dir.clone(),
            file: file.clone(),
            restrictor: self.opts.load_restrictor,
            warnings: &self.warnings,
        }
    }

    fn load(&self, dir: &RelPath, from: Option<Location>) -> Result<(RelPath, Kustomization)> {
        let mut found = Vec::new();
        for name in FILE_NAMES {
            let p = dir.join(name).map_err(|e| Error::PathEscape {
                at: from
                    .clone()
                    .unwrap_or_else(|| Location::new(dir.to_string(), "")),
                path: name.to_string(),
                why: e.to_string(),
            })?;
            match self.fs.kind(&p) {
                Ok(Some(EntryKind::File)) => found.push(p),
                Ok(_) => {}
                Err(crate::fs::FsError::Escapes(why)) => {
                    return Err(Error::PathEscape {
                        at: from
                            .clone()
                            .unwrap_or_else(|| Location::new(dir.to_string(), "")),
                        path: p.to_string(),
                        why,
                    });
                }
                Err(e) => {
                    return Err(Error::Yaml {
                        file: p.to_string(),
                        msg: e.to_string(),
                    });
                }
            }
        }
        let file = match found.len() {
            0 => {
                return Err(Error::MissingKustomization {
                    dir: dir.to_string(),
                    from,
                });
            }
            1 => found.remove(0),
            _ => {
                return Err(Error::MultipleKustomizations {
                    dir: dir.to_string(),
                });
            }
        };
        let data = self
            .fs
            .read(&file)
            .map_err(|e| Error::yaml(file.to_string(), e.to_string()))?;
        let text = String::from_utf8(data)
            .map_err(|_| Error::yaml(file.to_string(), "not valid UTF-8"))?;
        let kust = parse_kustomization(&text).map_err(|msg| Error::yaml(file.to_string(), msg))?;
        Ok((file, kust))
    }

    fn warn_deprecated(&self, kust: &Kustomization) {
        let mut w = self.warnings.borrow_mut();
        let mut dep = |used: bool, old: &str, new: &str| {
            if used {
                w.push(format!(
                    "# Warning: '{old}' is deprecated. Please use '{new}' instead. Run 'kustomize edit fix' to update your Kustomization automatically."
                ));
            }
        };
        dep(!kust.bases.is_empty(), "bases", "resources");
        dep(!kust.image_tags.is_empty(), "imageTags", "images");
        dep(!kust.common_labels.is_empty(), "commonLabels", "labels");
        dep(
            !kust.patches_json6902.is_empty(),
            "patchesJson6902",
            "patches",
        );
        dep(
            !kust.patches_strategic_merge.is_empty(),
            "patchesStrategicMerge",
            "patches",
        );
        if !kust.vars.is_empty() {
            w.push("# Warning: 'vars' is deprecated. Please use 'replacements' instead. [EXPERIMENTAL] Run 'kustomize edit fix' to update your Kustomization automatically.".to_string());
        }
    }

    fn refuse_unsupported(&self, ctx: &KustCtx<'_>, kust: &Kustomization) -> Result<()> {
        let refuse = |field: &str, msg: &str| {
            Err(Error::Refused {
                at: ctx.loc(field),
                msg: msg.to_string(),
            })
        };
        if !kust.helm_charts.is_empty()
            || kust.helm_globals.is_some()
            || !kust.helm_chart_inflation_generator.is_empty()
        {
            return refuse(
                "helmCharts",
                "helmCharts are rendered by the agent's Helm support, not inside kustomize",
            );
        }
        if !kust.generators.is_empty() {
            return refuse(
                "generators",
                "generator plugins (exec/KRM functions or plugin configs) are not run",
            );
        }
        if !kust.validators.is_empty() {
            return refuse("validators", "validator plugins are not run");
        }
        if kust.open_api.is_some() {
            return refuse("openapi", "custom OpenAPI schemas are not supported");
        }
        Ok(())
    }

    fn accumulate(
        &self,
        dir: &RelPath,
        file: &RelPath,
        kust: &Kustomization,
        mut ra: Accumulator,
    ) -> Result<Accumulator> {
        if self.stack.borrow().contains(dir) {
            let chain = self
                .stack
                .borrow()
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(" -> ");
            return Err(Error::Cycle {
                dir: dir.to_string(),
                chain,
            });
        }
        let depth = self.stack.borrow().len();
        if depth >= MAX_DEPTH {
            return Err(Error::TooLarge {
                file: file.to_string(),
                msg: format!(
                    "bases nest deeper than {MAX_DEPTH} kustomizations (built from {})",
                    self.stack
                        .borrow()
                        .first()
                        .map(|d| d.to_string())
                        .unwrap_or_default()
                ),
            });
        }
        self.visits.set(self.visits.get() + 1);
        if self.visits.get() > MAX_KUSTOMIZATIONS {
            return Err(Error::TooLarge {
                file: file.to_string(),
                msg: format!(
                    "more than {MAX_KUSTOMIZATIONS} kustomizations built in one build (bases \
                     included repeatedly, e.g. diamonds of diamonds)"
                ),
            });
        }
        self.stack.borrow_mut().push(dir.clone());
        let result = self.accumulate_inner(dir, file, kust, &mut ra);
        self.stack.borrow_mut().pop();
        result.map(|()| ra)
    }

    fn accumulate_inner(
        &self,
        dir: &RelPath,
        file: &RelPath,
        kust: &Kustomization,
        ra: &mut Accumulator,
    ) -> Result<()> {
        let ctx = self.ctx(dir, file);
        self.warn_deprecated(kust);
        self.refuse_unsupported(&ctx, kust)?;

        let entries: Vec<(String, &String)> = kust
            .resources
            .iter()
            .enumerate()
            .map(|(i, p)| (format!("resources[{i}]"), p))
            .chain(
                kust.bases
                    .iter()
                    .enumerate()
                    .map(|(i, p)| (format!("bases[{i}]"), p)),
            )
            .collect();
        let parsed = preload::parse_files(&ctx, &entries);
        // Only appends change `ra.resources` in this loop, so one index serves all of them.
        let mut index = IdIndex::of(&ra.resources);
        for ((field, path), parsed) in entries.iter().zip(parsed) {
            self.accumulate_resource(&ctx, field, path, ra, &mut index, parsed)?;
        }

        let mut config = TransformerConfig::default();
        for (i, c) in kust.configurations.iter().enumerate() {
            let field = format!("configurations[{i}]");
            let (_, text) = ctx.read_text(c, &field)?;
            let def: ConfigDef = serde_yaml::from_str(&text)
                .map_err(|e| Error::field(&ctx.loc(&field), format!("{c}: {e}")))?;
            config.merge(&TransformerConfig::from(&def));
        }
        config.merge(&crate::crds::load(&ctx, &kust.crds)?);
        ra.config_extra.merge(&config);

        let cms = generators::generate(
            generators::Kind::ConfigMap,
            &kust.config_map_generator,
            &kust.generator_options,
            &ctx,
        )?;
        generators::absorb(&mut ra.resources, cms, &ctx, generators::Kind::ConfigMap)?;
        let secrets = generators::generate(
            generators::Kind::Secret,
            &kust.secret_generator,
            &kust.generator_options,
            &ctx,
        )?;
        generators::absorb(&mut ra.resources, secrets, &ctx, generators::Kind::Secret)?;

        for (i, c) in kust.components.iter().enumerate() {
            let field = format!("components[{i}]");
            let cdir = ctx.resolve(c, &field)?;
            match ctx.kind(&cdir, c, &field)? {
                Some(EntryKind::Dir) => {}
                _ => {
                    return Err(Error::field(
                        &ctx.loc(&field),
                        format!("component '{c}' must be a directory"),
                    ));
                }
            }
            let (cfile, ckust) = self.load(&cdir, Some(ctx.loc(&field)))?;
            if ckust.kind.as_deref() != Some("Component") {
                return Err(Error::field(
                    &ctx.loc(&field),
                    format!(
                        "expected kind 'Component' in '{cfile}' but got '{}'",
                        ckust.kind.as_deref().unwrap_or("Kustomization")
                    ),
                ));
            }
            let taken = std::mem::take(ra);
            *ra = self.accumulate(&cdir, &cfile, &ckust, taken)?;
        }

        self.run_transformers(&ctx, kust, ra)?;
        vars::merge(&mut ra.vars, vars::defs(&kust.vars, &ctx), &ctx.loc("vars"))?;
        drop_local_config(&mut ra.resources);
        Ok(())
    }

    fn accumulate_resource(
        &self,
        ctx: &KustCtx<'_>,
        field: &str,
        path: &str,
        ra: &mut Accumulator,
        index: &mut IdIndex,
        parsed: Option<preload::Parsed>,
    ) -> Result<()> {
        let p = ctx.resolve(path, field)?;
        match ctx.kind(&p, path, field)? {
            Some(EntryKind::File) => {
                let (p, objs) = match parsed {
                    Some(done) => done,
                    None => {
                        let (p, text) = ctx.read_text(path, field)?;
                        let objs = yaml::parse_resources(text);
                        (p, objs)
                    }
                };
                let objs = objs.map_err(|e| Error::yaml(p.to_string(), e))?;
                for obj in objs {
                    let r =
                        Resource::new(obj, p.clone()).map_err(|e| Error::yaml(p.to_string(), e))?;
                    if r.name().is_empty() {
                        return Err(Error::yaml(
                            p.to_string(),
                            format!("missing metadata.name in a {} object", r.kind()),
                        ));
                    }
                    ra.resources
                        .append_indexed(r, index)
                        .map_err(|id| Error::Conflict {
                            at: ctx.loc(field),
                            id: id.to_string(),
                        })?;
                }
                Ok(())
            }
            Some(EntryKind::Dir) => {
                if ctx.dir.is_within(&p) {
                    return Err(Error::Cycle {
                        dir: p.to_string(),
                        chain: format!(
                            "{} refers to its own directory or a parent of it in {field}",
                            ctx.file
                        ),
                    });
                }
                let (sfile, skust) = self.load(&p, Some(ctx.loc(field)))?;
                if skust.kind.as_deref() == Some("Component") {
                    return Err(Error::field(
                        &ctx.loc(field),
                        format!("'{path}' is a Component; list it under components, not {field}"),
                    ));
                }
                let sub = self.accumulate(&p, &sfile, &skust, Accumulator::default())?;
                ra.merge(sub, &ctx.loc(field), index)?;
                check_objects(ra, ctx)
            }
            None => Err(Error::NotFound {
                at: ctx.loc(field),
                path: path.to_string(),
            }),
        }
    }

    fn run_transformers(
        &self,
        ctx: &KustCtx<'_>,
        kust: &Kustomization,
        ra: &mut Accumulator,
    ) -> Result<()> {
        let cfg = ra.config();
        let cfg = cfg.as_ref();
        let res = &mut ra.resources;
        patches::apply_patches_strategic_merge(res, &kust.patches_strategic_merge, ctx)?;
        patches::apply_patches(res, &kust.patches, ctx)?;
        if let Some(ns) = &kust.namespace {
            transform::namespace(res, ns, &cfg.namespace, &ctx.loc("namespace"))?;
        }
        transform::prefix_suffix(
            res,
            kust.name_prefix.as_deref().unwrap_or(""),
            kust.name_suffix.as_deref().unwrap_or(""),
            &cfg.name_prefix,
            &ctx.loc("namePrefix"),
        )?;
        for (i, label) in kust.labels.iter().enumerate() {
            let mut specs: Vec<FieldSpec> = label.fields.iter().map(FieldSpec::from).collect();
            let extra: Vec<FieldSpec> = if label.include_selectors {
                cfg.common_labels.clone()
            } else {
                let mut e = Vec::new();
                if label.include_templates {
                    e.extend(cfg.template_labels.iter().cloned());
                }
                e.push(FieldSpec::new("metadata/labels", true));
                e
            };
            for s in extra {
                if !specs.iter().any(|x| x.gvk == s.gvk && x.path == s.path) {
                    specs.push(s);
                }
            }
            transform::set_map_entries(
                res,
                &label.pairs,
                &specs,
                &ctx.loc(format!("labels[{i}]")),
            )?;
        }
        transform::set_map_entries(
            res,
            &kust.common_labels,
            &cfg.common_labels,
            &ctx.loc("commonLabels"),
        )?;
        transform::set_map_entries(
            res,
            &kust.common_annotations,
            &cfg.common_annotations,
            &ctx.loc("commonAnnotations"),
        )?;
        patches::apply_patches_json6902(res, &kust.patches_json6902, ctx)?;
        transform::replicas(res, &kust.replicas, &cfg.replicas, &ctx.loc("replicas"))?;
        let images: Vec<_> = kust
            .images
            .iter()
            .chain(kust.image_tags.iter())
            .cloned()
            .collect();
        transform::images(res, &images, &cfg.images, &ctx.loc("images"))?;
        crate::replacements::apply(res, &kust.replacements, ctx)?;
        crate::builtins::apply(res, &kust.transformers, ctx)?;
        Ok(())
    }
}

/// Objects annotated `config.kubernetes.io/local-config: "true"` are not output.
fn drop_local_config(resources: &mut ResMap) {
    resources.resources.retain(|r| {
        r.get_path(&[
            "metadata",
            "annotations",
            "config.kubernetes.io/local-config",
        ])
        .and_then(Value::as_str)
            != Some("true")
    });
}

/// Parses kustomization YAML (an empty file is an empty kustomization).
pub fn parse_kustomization(text: &str) -> std::result::Result<Kustomization, String> {
    let docs = yaml::parse_documents(text)?;
    let only_type_meta = |d: &Value| {
        d.as_object()
            .is_some_and(|m| m.keys().all(|k| k == "apiVersion" || k == "kind"))
    };
    if docs.is_empty() || (docs.len() == 1 && only_type_meta(&docs[0])) {
        return Err("kustomization file is empty".to_string());
    }
    match docs.len() {
        // The path names the field at fault (`commonAnnotations.replicas: …`).
        1 => serde_path_to_error::deserialize(serde_json::Value::from(
            docs.into_iter().next().expect("one document"),
        ))
        .map_err(|e: serde_path_to_error::Error<serde_json::Error>| {
            let path = e.path().to_string();
            if path == "." {
                e.inner().to_string()
            } else {
                format!("{path}: {}", e.inner())
            }
        }),
        n => Err(format!(
            "a kustomization file holds one document, found {n}"
        )),
    }
}
