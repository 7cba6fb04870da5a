use capstan::{ActionCtx, Doc, Id, MutationCtx, PaginationOpts, PaginationResult, QueryCtx};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, capstan::Table)]
#[table(name = "notes", index(by_notebook = [notebook]))]
pub struct Note {
    pub notebook: String,
    pub text: String,
    pub archived: bool,
}

/// Adds a note; the text must not be empty.
#[capstan::mutation]
pub fn add(ctx: &mut MutationCtx, notebook: String, text: String) -> capstan::Result<Id<Note>> {
    if text.trim().is_empty() {
        return Err(capstan::Error::data(
            capstan::json!({ "code": "EMPTY_NOTE" }),
        ));
    }
    ctx.db().insert(&Note {
        notebook,
        text,
        archived: false,
    })
}

/// A notebook's notes, newest first, one page at a time.
#[capstan::query]
pub fn page(
    ctx: &QueryCtx,
    notebook: String,
    pagination_opts: PaginationOpts,
) -> capstan::Result<PaginationResult<Doc<Note>>> {
    ctx.db()
        .query::<Note>()
        .with_index(Note::by_notebook, |q| q.eq(&notebook))
        .order(capstan::Order::Desc)
        .paginate(&pagination_opts)
}

/// Archives every note of a notebook. Internal: clients cannot call it.
#[capstan::mutation(internal)]
pub fn archive(ctx: &mut MutationCtx, notebook: String) -> capstan::Result<u32> {
    let mut db = ctx.db();
    let notes = db
        .query::<Note>()
        .with_index(Note::by_notebook, |q| q.eq(&notebook))
        .collect()?;
    let mut count = 0;
    for note in notes.iter().filter(|n| !n.archived) {
        db.patch(&note.id, NotePatch::new().archived(true))?;
        count += 1;
    }
    Ok(count)
}

/// An action: archives a notebook through the internal mutation.
#[capstan::action]
pub fn archive_notebook(ctx: &mut ActionCtx, notebook: String) -> capstan::Result<String> {
    let count = ctx.run_mutation::<archive>(&ArchiveArgs {
        notebook: notebook.clone(),
    })?;
    capstan::log!("archived {count} notes in {notebook}");
    Ok(format!("archived {count}"))
}
