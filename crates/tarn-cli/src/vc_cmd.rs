//! `tarn tag`, `tags`, `branch`, `branches` and `merge`: naming versions and lines of
//! versions (SPEC §1, §5, §11).

use crate::Ctx;
use anyhow::Result;
use clap::Args;
use serde_json::json;

#[derive(Debug, Args)]
pub struct TagArgs {
    /// The version to name (`tarn://x:v3`; the head without a ref). With -d, the dataset.
    pub uri: String,
    /// The tag: letters, digits and `_ . = -`, not a form a ref already has (v3, -1, a date).
    pub name: String,
    /// Delete the tag instead.
    #[arg(short = 'd', long = "delete", conflicts_with = "force")]
    pub delete: bool,
    /// Move the tag if it already exists (tags are otherwise immutable).
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct BranchArgs {
    /// Where the branch starts (`tarn://x:v3`, `tarn://x@dev`; the head without a ref).
    /// With -d, the branch to delete (`tarn://x@dev`).
    pub uri: String,
    /// The new branch's name.
    #[arg(required_unless_present = "delete")]
    pub new: Option<String>,
    /// Delete the branch the URI names.
    #[arg(short = 'd', long = "delete", conflicts_with = "new")]
    pub delete: bool,
}

fn table() -> comfy_table::Table {
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    table
}

pub async fn tag(ctx: &Ctx, args: TagArgs) -> Result<()> {
    let lake = ctx.lake().await?;
    if args.delete {
        lake.delete_tag(&args.uri, &args.name).await?;
        if ctx.json {
            return ctx.print_json(&json!({"deleted": args.name}));
        }
        if !ctx.quiet {
            outln!("deleted tag {}", args.name);
        }
        return Ok(());
    }
    let tag = lake.tag(&args.uri, &args.name, args.force).await?;
    if ctx.json {
        return ctx.print_json(&tag);
    }
    if !ctx.quiet {
        outln!("tagged {} as {}", tag.uri, tag.name);
    }
    Ok(())
}

pub async fn tags(ctx: &Ctx, dataset: &str) -> Result<()> {
    let lake = ctx.lake().await?;
    let tags = lake.tags(dataset).await?;
    if ctx.json {
        return ctx.print_json(&tags);
    }
    let mut t = table();
    t.set_header(["tag", "branch", "version", "created (UTC)"]);
    for tag in &tags {
        t.add_row([
            tag.name.clone(),
            tag.branch.clone(),
            format!("v{}", tag.version),
            tag.created.clone(),
        ]);
    }
    outln!("{t}");
    Ok(())
}

pub async fn branch(ctx: &Ctx, args: BranchArgs) -> Result<()> {
    let lake = ctx.lake().await?;
    let Some(new) = args.new.filter(|_| !args.delete) else {
        lake.delete_branch(&args.uri).await?;
        if ctx.json {
            return ctx.print_json(&json!({"deleted": args.uri}));
        }
        if !ctx.quiet {
            outln!("deleted branch {}", args.uri);
        }
        return Ok(());
    };
    let branch = lake.create_branch(&args.uri, &new).await?;
    if ctx.json {
        return ctx.print_json(&branch);
    }
    if !ctx.quiet {
        outln!(
            "created branch tarn://{}@{} at v{} of {}",
            branch.dataset,
            branch.name,
            branch.head,
            branch.parent.as_deref().unwrap_or("main")
        );
    }
    Ok(())
}

pub async fn branches(ctx: &Ctx, dataset: &str) -> Result<()> {
    let lake = ctx.lake().await?;
    let branches = lake.branches(dataset).await?;
    if ctx.json {
        return ctx.print_json(&branches);
    }
    let mut t = table();
    t.set_header(["branch", "head", "forked from", "created at commit"]);
    for b in &branches {
        t.add_row([
            b.name.clone(),
            format!("v{}", b.head),
            match (&b.parent, b.fork_version) {
                (Some(p), Some(v)) => format!("{p}:v{v}"),
                _ => "-".into(),
            },
            b.created_commit.map_or("-".into(), |c| c.to_string()),
        ]);
    }
    outln!("{t}");
    Ok(())
}

pub async fn merge(ctx: &Ctx, source: &str, target: &str) -> Result<()> {
    let lake = ctx.lake().await?;
    let info = lake.merge(source, target).await?;
    if ctx.json {
        return ctx.print_json(&info);
    }
    if ctx.quiet {
        return Ok(());
    }
    if info.outcome == "fast-forward" {
        outln!(
            "fast-forwarded {}@{} from v{} to v{} (commit {})",
            info.dataset,
            info.target,
            info.from_version,
            info.to_version,
            info.commit_id.unwrap_or_default()
        );
    } else {
        outln!(
            "{}@{} is up to date with {} (v{})",
            info.dataset,
            info.target,
            info.source,
            info.to_version
        );
    }
    Ok(())
}
