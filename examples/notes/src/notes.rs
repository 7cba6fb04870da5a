use capstan::{ActionCtx, Doc, Id, MutationCtx, PaginationOpts, PaginationResult, QueryCtx, Table};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Note {
    pub notebook: String,
    pub text: String,
    pub archived: bool,
}

impl Table for Note {
    const NAME: &'static str = "notes";
}

#[derive(Deserialize)]
pub struct NewNote {
    pub notebook: String,
    pub text: String,
}

/// Adds a note; the text must not be empty.
#[capstan::mutation]
pub fn add(ctx: &mut MutationCtx, args: NewNote) -> capstan::Result<Id<Note>> {
    if args.text.trim().is_empty() {
        return Err(capstan::Error::data(serde_json_error("EMPTY_NOTE")));
    }
    ctx.db().insert(&Note {
        notebook: args.notebook,
        text: args.text,
        archived: false,
    })
}

fn serde_json_error(code: &str) -> std::collections::BTreeMap<&'static str, String> {
    std::collections::BTreeMap::from([("code", code.to_owned())])
}

#[derive(Deserialize)]
pub struct PageArgs {
    pub notebook: String,
    #[serde(rename = "paginationOpts")]
    pub pagination: PaginationOpts,
}

/// A notebook's notes, newest first, one page at a time.
#[capstan::query]
pub fn page(ctx: &QueryCtx, args: PageArgs) -> capstan::Result<PaginationResult<Doc<Note>>> {
    ctx.db()
        .query::<Note>()
        .with_index("by_notebook", |q| q.eq("notebook", &args.notebook))
        .order(capstan::Order::Desc)
        .paginate(&args.pagination)
}

#[derive(Deserialize)]
pub struct NotebookArgs {
    pub notebook: String,
}

#[derive(Serialize)]
struct Archived {
    archived: bool,
}

/// Archives every note of a notebook. Internal: clients cannot call it.
#[capstan::mutation(internal)]
pub fn archive(ctx: &mut MutationCtx, args: NotebookArgs) -> capstan::Result<u32> {
    let mut db = ctx.db();
    let notes = db
        .query::<Note>()
        .with_index("by_notebook", |q| q.eq("notebook", &args.notebook))
        .collect()?;
    let mut count = 0;
    for note in notes.iter().filter(|n| !n.archived) {
        db.patch(&note.id, &Archived { archived: true })?;
        count += 1;
    }
    Ok(count)
}

/// An action: archives a notebook through the internal mutation.
#[capstan::action]
pub fn archive_notebook(ctx: &mut ActionCtx, args: NotebookArgs) -> capstan::Result<String> {
    let count: u32 = ctx.run_mutation("notes:archive", &serde_json_args(&args.notebook))?;
    capstan::log!("archived {count} notes in {}", args.notebook);
    Ok(format!("archived {count}"))
}

fn serde_json_args(notebook: &str) -> std::collections::BTreeMap<&'static str, &str> {
    std::collections::BTreeMap::from([("notebook", notebook)])
}
